#!/usr/bin/env bash
# The word gate (--word-share) on the demo checkpoint: 16 Crafter episodes of the scripted player
# that neither the demo's training (its own collection) nor its README figures (seeds 0-7) use
# (seeds 100-115), greedy, one thread each; off vs 0.6 vs 0.8 on the same episodes.
set -euo pipefail
CKPT=${CKPT:-runs/demo/run}
OUT=${OUT:-docs/results/narration-word-gate}
for share in off 0.6 0.8; do
  flag=(); [ "$share" = off ] || flag=(--word-share "$share")
  python -m agents.narrate --env crafter --checkpoint "$CKPT" --policy crafter-scripted \
    --episodes 16 --seed 100 --steps 300 --greedy --no-video --quiet --threads 1 \
    "${flag[@]}" --out "/tmp/word-gate-$share"
done
python docs/results/narration-word-gate/compare.py /tmp/word-gate-off /tmp/word-gate-0.6 /tmp/word-gate-0.8 \
  --plot="$OUT/word_gate.png" > "$OUT/summary.md"
