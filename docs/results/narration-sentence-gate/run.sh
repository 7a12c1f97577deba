#!/usr/bin/env bash
# The sentence gate (--sentence-share) on the demo checkpoint: 16 Crafter episodes of the scripted
# player used by no earlier measurement (seeds 200-215), greedy, one thread each; off vs 0.7 vs
# 0.8 on the same episodes. Needs `make demo` first (runs/demo/run). ~3 min.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CKPT=${CKPT:-runs/demo/run}
OUT=docs/results/narration-sentence-gate
for share in off 0.7 0.8; do
  flag=(); [ "$share" = off ] || flag=(--sentence-share "$share")
  .venv/bin/python -m agents.narrate --env crafter --checkpoint "$CKPT" --policy crafter-scripted \
    --episodes 16 --seed 200 --steps 300 --greedy --no-video --quiet --threads 1 \
    "${flag[@]}" --out "/tmp/sentence-gate-$share"
done
.venv/bin/python docs/results/narration-word-gate/compare.py /tmp/sentence-gate-off \
  /tmp/sentence-gate-0.7 /tmp/sentence-gate-0.8 --plot="$OUT/sentence_gate.png" > "$OUT/summary.md"
.venv/bin/python docs/results/narration-sentence-gate/random_control.py /tmp/sentence-gate-off \
  /tmp/sentence-gate-0.8 > "$OUT/random_control.md"
