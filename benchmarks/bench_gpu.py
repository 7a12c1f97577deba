"""GPU throughput: training and narration frames/s at the ``small`` and ``base`` sizes, fp32 vs
bf16 (autocast) vs compiled (``torch.compile`` of the encoder/predictor forward).

Needs a CUDA GPU; without one it prints ONE line saying so (and a JSON line ``{"skipped": ...}``)
and exits 0, so ``make bench`` runs everywhere.

* training: in-memory optimizer steps of ``agent.training_step`` on random frames and tokens
  (batch ``--batch`` windows of ``--window`` frames; data loading is measured elsewhere, by
  ``bench_train.py``), frames/s = batch x window / step time;
* narration: :class:`agents.narrate.vector_narration.VectorNarrator` over ``--envs`` streams of random
  frames (one batched decode per step), frames/s = envs x steps / time.

    python benchmarks/bench_gpu.py [--quick] [--sizes small,base]

The last line is one JSON object; commit a GPU run's output under ``docs/results/``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.bench_narrate import SENTENCES

VARIANTS = ("fp32", "bf16", "compiled")  # compiled: torch.compile, in fp32


def gpu_or_none() -> str | None:
    """The GPU's name, or None when there is no usable CUDA device."""
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def make_agent(size: str, device: str, k: int):
    from agents.config import make_model_config
    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer

    torch.manual_seed(0)
    cfg = make_model_config(size, text={"tokens_per_frame": k})
    return BYOGAgent(cfg, train_tokenizer(SENTENCES)).to(device)


def batch(n: int, window: int, size: int, device: str) -> dict:
    """A random training batch in the ``collate_windows`` layout (every window labelled)."""
    g = torch.Generator().manual_seed(0)
    ann = [[[SENTENCES[(i + t) % len(SENTENCES)]] if t % 3 == 0 else [] for t in range(window)]
           for i in range(n)]
    return {"frames": torch.randint(0, 256, (n, window, size, size, 3), generator=g,
                                    dtype=torch.uint8).to(device),
            "annotations": ann, "labelled": torch.ones(n, dtype=torch.bool, device=device),
            "valid": torch.ones(n, window, dtype=torch.bool, device=device)}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_fps(agent, variant: str, b: dict, steps: int, device: str) -> float:
    from agents.model.accel import autocast

    opt = torch.optim.AdamW([p for p in agent.parameters() if p.requires_grad], lr=1e-4)
    prec = "bf16" if variant == "bf16" else "fp32"
    agent.train()

    def step() -> None:
        with autocast(prec, device):
            loss, _ = agent.training_step(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up (and compilation)
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    n, w = b["frames"].shape[:2]
    return n * w * steps / (time.perf_counter() - t0)


@torch.no_grad()
def narrate_fps(agent, variant: str, envs: int, steps: int, size: int, device: str) -> float:
    from agents.model.accel import autocast
    from agents.narrate.vector_narration import VectorNarrator

    frames = torch.randint(0, 256, (steps + 4, envs, size, size, 3), dtype=torch.uint8,
                           device=device)
    nar = VectorNarrator(agent, num_envs=envs, greedy=True, decode=False)
    nar.reset(0)
    with autocast("bf16" if variant == "bf16" else "fp32", device):
        for t in range(4):
            nar.step(frames[t])
        sync()
        t0 = time.perf_counter()
        for t in range(4, steps + 4):
            nar.step(frames[t])
        sync()
    return envs * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    ap.add_argument("--sizes", default="small,base")
    ap.add_argument("--batch", type=int, default=32, help="training windows per step")
    ap.add_argument("--window", type=int, default=16, help="frames per training window")
    ap.add_argument("--envs", type=int, default=64, help="narrated streams")
    ap.add_argument("--frame", type=int, default=64, help="frame side (pixels)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="of fp32,bf16,compiled")
    ap.add_argument("--device", default="cuda",
                    help="cuda; cpu runs the same code on the CPU (a smoke test of the script)")
    args = ap.parse_args()
    gpu = gpu_or_none() if args.device == "cuda" else f"{args.device} (smoke run)"
    if gpu is None:
        reason = "no CUDA GPU visible (torch.cuda.is_available() is False)"
        print(f"bench_gpu: skipped: {reason}; run it on a GPU machine to measure.")
        print(json.dumps({"skipped": reason}))
        return
    from agents.model.accel import compile_agent

    steps = 2 if args.quick else 30
    out: dict[str, object] = {"gpu": gpu, "torch": torch.__version__, "batch": args.batch,
                              "window": args.window, "envs": args.envs}
    dev = args.device
    for size in args.sizes.split(","):
        for variant in args.variants.split(","):
            agent = make_agent(size, dev, 8)
            if variant == "compiled":
                compile_agent(agent)
            b = batch(args.batch, args.window, args.frame, dev)
            tr = train_fps(agent, variant, b, steps, dev)
            na = narrate_fps(agent.eval(), variant, args.envs, steps, args.frame, dev)
            out[f"{size}/{variant}/train_fps"] = round(tr, 1)
            out[f"{size}/{variant}/narrate_fps"] = round(na, 1)
            print(f"[{gpu}] {size:>5} {variant:>8}: training {tr:9.1f} frames/s, "
                  f"narration ({args.envs} streams) {na:9.1f} frames/s")
            del agent
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
