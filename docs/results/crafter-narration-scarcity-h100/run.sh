#!/usr/bin/env bash
# BYOG vs the supervised captioner (w_byog = 0) on Crafter narration under label scarcity.
# Run from the repository root; DEVICE=cpu works too (about 10x slower per run).
set -euo pipefail
DEVICE=${DEVICE:-cuda}
python collect/rollout.py --env crafter --policy crafter-scripted --episodes 96 \
    --max-episode-steps 400 --seed 1 --num-envs 14 --out /tmp/scarcity/data
COMMON="--size tiny --loader.window 8 --loader.batch_size 32 --model.text.tokens_per_frame 8 \
  --model.nil_threshold 0.5 --optim.lr 5e-3 --schedule.warmup_steps 10 --loader.num_workers 1 \
  --logging.no-progress --device $DEVICE --threads 1 --steps 1200"
for p in byog captioner; do for lf in 0.05 0.25; do for s in 0 1; do
  python -m agents.training --data /tmp/scarcity/data --out /tmp/scarcity/r_${p}_${lf}_${s} \
      --preset $p --label-fraction $lf --seed $s --label-seed $s $COMMON &
done; done; done
wait  # then read /tmp/scarcity/r_*/summary.json
