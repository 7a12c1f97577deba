#!/usr/bin/env bash
# Live narration of 8 Crafter episodes of 2,000 steps (crafter-survivor, seeds 0-7) by the demo's
# checkpoint: live vs offline on the same frames, per-bucket monitors, and the drift from steps
# 0-500 to 1,500-2,000. Needs `make demo` first (runs/demo/run). ~4 min on one CPU thread.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-runs/narration-2000}
.venv/bin/python -m agents.narrate --env crafter --checkpoint runs/demo/run --policy crafter-survivor \
  --episodes 8 --steps 2000 --greedy --no-video --quiet --threads 1 --out "$OUT"
cp "$OUT/summary.json" "$OUT/narration_over_time.png" docs/results/crafter-live-narration-2000/
# The same with the sentence gate the demo narrates with (--sentence-share 0.8).
.venv/bin/python -m agents.narrate --env crafter --checkpoint runs/demo/run --policy crafter-survivor \
  --episodes 8 --steps 2000 --greedy --no-video --quiet --threads 1 --sentence-share 0.8 --out "$OUT-gate"
cp "$OUT-gate/summary.json" docs/results/crafter-live-narration-2000/summary_sentence_gate_0.8.json
cp "$OUT-gate/narration_over_time.png" \
  docs/results/crafter-live-narration-2000/narration_over_time_sentence_gate_0.8.png
