"""--precision bf16 (autocast, on CPU too) and --compile in training and narration; the GPU
benchmark skips cleanly without a GPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import synthetic_dataset, tiny_args

from agents.config import make_model_config
from agents.model.accel import autocast, compile_agent
from agents.model.agent import BYOGAgent
from agents.model.text import train_tokenizer
from agents.narrate.narrator import Narrator

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_agent():
    torch.manual_seed(0)
    tok = train_tokenizer(["collected 1 wood", "tree in view", "cow in view"])
    agent = BYOGAgent(make_model_config("tiny", text={"tokens_per_frame": 3},
                                       obs={"cnn_arch": "conv"}), tok)
    agent.encoder.projector[1].weight.data.mul_(8.0)
    return agent.eval()


def test_bf16_training_runs_on_cpu_and_differs_only_by_rounding(tmp_path):
    from agents.training.command import cli

    data = synthetic_dataset(tmp_path / "data")
    losses = {}
    for prec in ("fp32", "bf16"):
        out = tmp_path / prec
        assert cli(tiny_args(data, out, 3, "--precision", prec, "--logging.log_every", "1")) == 0
        summary = json.loads((out / "summary.json").read_text())
        losses[prec] = summary["train"]["loss/total"]
        assert np.isfinite(losses[prec])
    # autocast really ran in bf16 (other rounding), and bf16 rounding only
    assert losses["bf16"] != losses["fp32"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * abs(losses["fp32"])


def test_bf16_autocast_runs_matmuls_in_bf16_and_narrates():
    agent = tiny_agent()
    frames = np.random.default_rng(0).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    with autocast("bf16", "cpu"):
        e = agent.encoder.frame_embeddings(torch.as_tensor(frames)[None])
        n = Narrator(agent, window=4)
        n.reset()
        ids = [n.step(f[None]).ids for f in frames]  # through the fused decode path and a slide
    assert e.dtype == torch.bfloat16 and n.reencodes == 1
    assert all(i.shape == (1, 3) for i in ids)
    with autocast("fp32", "cpu"):
        assert agent.encoder.frame_embeddings(torch.as_tensor(frames)[None]).dtype == torch.float32
    with pytest.raises(ValueError, match="choose from fp32, bf16"):
        autocast("fp16", "cpu")


def test_bench_gpu_skips_cleanly_without_a_gpu():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gpu.py")], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("bench_gpu: skipped: no CUDA GPU")
    assert "skipped" in json.loads(lines[1])


def test_bench_gpu_code_runs_on_cpu():
    """The measurement code itself (training + vector narration, fp32 and bf16) on the CPU."""
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--device",
                          "cpu", "--sizes", "tiny", "--quick", "--batch", "2", "--window", "4",
                          "--envs", "2", "--frame", "16", "--variants", "fp32,bf16"],
                         capture_output=True, text=True, timeout=600, check=False,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for v in ("fp32", "bf16"):
        assert res[f"tiny/{v}/train_fps"] > 0 and res[f"tiny/{v}/narrate_fps"] > 0


@pytest.mark.slow
def test_compiled_agent_narrates_and_trains_like_the_eager_one(tmp_path):
    agent = tiny_agent()
    frames = torch.as_tensor(np.random.default_rng(1).integers(0, 256, (1, 5, 64, 64, 3),
                                                                dtype=np.uint8))
    eager = agent.narrate(frames, greedy=True)
    compile_agent(agent)
    assert torch.equal(agent.narrate(frames, greedy=True), eager)
    from agents.training.command import cli

    data = synthetic_dataset(tmp_path / "data")
    assert cli(tiny_args(data, tmp_path / "run", 2, "--compile")) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2


def test_bench_model_checks_cached_logits_against_a_forward(capsys):
    """The benchmark's correctness figure compares the ids the sampler may say: the sampler's
    banned ids sit at -inf by design and made the figure infinite (a check that never passed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_model", REPO / "benchmarks" / "bench_model.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_model"] = bench  # its dataclasses look their module up there
    n = torch.get_num_threads()
    try:
        spec.loader.exec_module(bench)  # in-process: no second interpreter to start
        res = bench.main(bench.Args(quick=True, batches=(2,), frames=2, naive_positions=8))
    finally:
        torch.set_num_threads(n)
        sys.modules.pop("bench_model", None)
    assert res["cached_vs_forward_max_abs_logit_diff"] < 1e-4
    assert res["cached_equals_naive"] == 1.0
    assert "same tokens: True" in capsys.readouterr().out
