#!/usr/bin/env bash
# Crafter imagination at demo scale on one CPU thread (the commands this result ran, in order).
# Steps 1-2 are `make demo`'s collect and train steps (Makefile DEMO_COLLECT / DEMO_TRAIN); the
# result reused the narrator a `make demo` run had just trained (runs/demo/run, 900 steps).
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
R=runs/demo
# 1. data: 48 scripted Crafter episodes of at most 400 steps (the demo's)
python collect/rollout.py --env crafter --policy crafter-scripted --episodes 48 \
  --max-episode-steps 400 --vector-mode sync --out $R/data
# 2. the narrator (the demo's settings, 900 steps)
python -m agents.training --data $R/data --out $R/run --size tiny --preset byog --steps 900 \
  --loader.window 8 --loader.batch_size 32 --model.text.tokens_per_frame 8 \
  --model.nil_threshold 0.5 --optim.lr 5e-3 --schedule.warmup_steps 10 --loader.num_workers 1
# 3. imagination: grid tokens (crafter's 7 px tiles), BYOG states from the frozen narrator,
#    world models for 3 conditions x 3 seeds, evaluation on 16 clips of the narrator's
#    validation episodes, 4 prompts for the steering score
python -m agents.imagine --checkpoint $R/run --data $R/data --world-model.tokens grid \
  --world-model.full-mask-fraction 1.0 --train-steps 500 --compare-conditions --seeds 3 \
  --prompts 4 --steps 16 --context 8 --clips 16 --samples 4 --threads 1 \
  --out docs/results/crafter-imagination-cpu
