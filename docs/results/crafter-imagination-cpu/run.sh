#!/usr/bin/env bash
# Crafter imagination at demo scale on one CPU thread (the commands this result ran, in order).
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
R=runs/cimg
# 1. data: 24 scripted Crafter episodes of at most 300 steps
python collect/rollout.py --env crafter --policy crafter-scripted --episodes 24 \
  --max-episode-steps 300 --vector-mode sync --out $R/data
# 2. the narrator (the demo's settings, 200 steps)
python -m agents.train --data $R/data --out $R/run --size tiny --preset byog --steps 200 \
  --loader.window 8 --loader.batch_size 32 --model.text.tokens_per_frame 8 \
  --model.nil_threshold 0.5 --optim.lr 5e-3 --schedule.warmup_steps 10 \
  --loader.num_workers 0 --checkpoint.every 100 --logging.eval_every 0
# 3. imagination: fit a VQ-VAE, read BYOG states from the frozen narrator, train the world model
#    (and the action-only / nothing ablations), evaluate on the narrator's validation episodes
python -m agents.imagine --checkpoint $R/run --data $R/data --train-steps 800 \
  --compare-conditions --compare-decoding --steps 16 --context 8 --clips 16 --samples 4 \
  --threads 1 --out docs/results/crafter-imagination-cpu
