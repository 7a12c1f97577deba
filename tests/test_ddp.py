"""Two CPU processes (torchrun, gloo) train like one process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import synthetic_dataset, tiny_args
from safetensors.torch import load_file

from agents.training.command import cli

REPO = Path(__file__).resolve().parents[1]
STEPS = 4


def _losses(run: Path) -> list[float]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss/total"] for r in recs if "loss/total" in r]


@pytest.mark.slow
def test_two_process_run_matches_single_process(tmp_path):
    # windows of 8 frames from 20-frame episodes tile them without padding (stride 4, starts
    # 0/4/8/12), so per-rank means average exactly to the global mean; the cuts and the
    # stochastic BYOG targets (sample_temperature 1, the default) are both drawn per window
    # from (seed, episode, start, step), so each rank draws what the single process draws
    data = synthetic_dataset(tmp_path / "ds", episodes=6, length=20)
    extra = ("--loader.stride", "4", "--logging.log_every", "1",
             "--model.loss.sample_temperature", "1.0")
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert cli(tiny_args(data, single, STEPS, *extra)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "agents.training", *tiny_args(data, multi, STEPS, *extra)],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads((multi / "summary.json").read_text())
    assert s["world_size"] == 2 and s["ranks_identical"] is True
    l1, l2 = _losses(single), _losses(multi)
    assert len(l1) == len(l2) == STEPS and len(set(l1)) > 1
    for a, b in zip(l1, l2):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-4)
    w1 = load_file(str(single / "checkpoints" / f"step_{STEPS:06d}" / "agent" / "model.safetensors"))
    w2 = load_file(str(multi / "checkpoints" / f"step_{STEPS:06d}" / "agent" / "model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-3, atol=1e-4, msg=k)
