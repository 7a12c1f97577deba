"""Training throughput, peak memory and the share of step time spent waiting for data.

Two runs of the same training steps side by side, in one process:

1. ``loader``: batches come from the trainer's real DataLoader (``loader.num_workers`` worker
   processes reading Parquet windows lazily), as in ``python -m agents.training``;
2. ``in_memory``: the same batches pre-loaded into memory first (the no-wait baseline).

The data-wait share is the loader run's time blocked in ``next(loader)`` over its total step
time (target < 10 %); ``slowdown`` is the loader run's time per step over the in-memory one's.

    python benchmarks/bench_train.py                 # default TrainConfig, synthetic 64x64 data
    python benchmarks/bench_train.py --data data/crafter --steps 20
    python benchmarks/bench_train.py --quick         # fewer steps
    python benchmarks/bench_train.py --device cuda --size small   # on a GPU (peak GPU memory too)

The last line is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.training.config import TrainConfig
from agents.training.data import build_data, train_loader
from agents.training.distributed import DistInfo
from agents.training.evaluate import to_device
from agents.training.loop import _train_step, make_optimizer, make_scheduler, seed_everything


def synthetic_crafter_like(path: Path, episodes: int = 8, length: int = 200) -> Path:
    """A Crafter-shaped dataset (64x64 frames, annotated every few steps) via the writer."""
    from collect.writer import DatasetWriter

    rng = np.random.default_rng(0)
    words = ["tree", "water", "stone", "cow", "zombie", "grass", "sand", "table"]
    w = DatasetWriter(path, {"env": "synthetic", "env_id": "synthetic",
                             "action_space": {"type": "Discrete", "n": 17, "start": 0}})
    for i in range(episodes):
        frames = rng.integers(0, 255, (length, 64, 64, 3), dtype=np.uint8)
        ann = [[f"{words[(t // 5) % len(words)]} in view"] if t % 5 == 0 else [] for t in range(length)]
        w.write_episode(i, frames, rng.integers(0, 17, length - 1), annotations=ann, seed=i)
    w.finalize(frame_shape=[64, 64, 3])
    return path


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # kernels run asynchronously: time them, not their launch


def run(agent, batches, cfg, steps: int, device: str = "cpu") -> dict[str, float]:
    """Train ``steps`` steps pulling batches from the iterable; time waiting vs computing."""
    opt = make_optimizer(agent, cfg)
    sched = make_scheduler(opt, cfg)
    params = [p for p in agent.parameters() if p.requires_grad]
    info = DistInfo()
    waited = busy = 0.0
    it = iter(batches)
    t0 = time.perf_counter()
    for step in range(steps):
        raw = next(it)
        t1 = time.perf_counter()
        _train_step(agent, opt, sched, params, to_device(raw, device), step, cfg, info)
        _sync(device)
        t2 = time.perf_counter()
        waited, busy = waited + (t1 - t0), busy + (t2 - t1)
        t0 = t2
    frames = steps * cfg.loader.batch_size * cfg.loader.window
    return {"frames_per_s": frames / (waited + busy), "s_per_step": (waited + busy) / steps,
            "data_wait_frac": waited / (waited + busy)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line (see the module docstring for examples)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="dataset directory (default: synthetic 64x64)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--workers", type=int, default=None, help="override loader.num_workers")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--quick", action="store_true", help="2 timed steps")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    ap.add_argument("--size", default="tiny", choices=("tiny", "small", "base"), help="model size")
    return ap.parse_args(argv)


def print_summary(figures: dict[str, Any]) -> None:
    """The human-readable lines above the JSON: both runs' throughput, the loader run's
    data-wait share and the peak memory."""
    print(f"loader:    {figures['frames_per_s']:.0f} frames/s, {figures['s_per_step']:.2f} s/step, "
          f"waiting for data {100 * figures['data_wait_frac']:.1f} % of the step")
    print(f"in memory: {figures['frames_per_s_in_memory']:.0f} frames/s, "
          f"{figures['s_per_step_in_memory']:.2f} s/step "
          f"(loader/in-memory time per step = {figures['slowdown_vs_in_memory']:.2f}x)")
    gpu_mb = figures["peak_gpu_mb"]
    print(f"peak RSS {figures['peak_rss_mb']:.0f} MB" + (f", peak GPU memory {gpu_mb:.0f} MB" if gpu_mb else ""))


def main() -> None:
    """Times the loader run and the in-memory run of the same steps and prints the figures."""
    args = parse_args()
    steps = 2 if args.quick else args.steps
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(data="", out="", size=args.size, device=args.device,
                      model=make_model_config(args.size, "byog"))
    if args.workers is not None:
        cfg.loader.num_workers = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(synthetic_crafter_like(Path(tmp) / "ds"))
        seed_everything(0)
        bundle = build_data(data, cfg.loader, label_fraction=1.0, label_seed=0)
        agent = BYOGAgent(cfg.model, bundle.tokenizer).to(args.device)
        loader, _ = train_loader(bundle.train, cfg.loader, seed=0)
        n = args.warmup + steps

        def cycle():
            while True:
                yield from loader

        stream = cycle()  # one iterator: worker start-up is paid in the warm-up, not timed
        run(agent, stream, cfg, args.warmup, args.device)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        live = run(agent, stream, cfg, steps, args.device)
        cached = []
        for b in stream:
            cached.append(b)
            if len(cached) == n:
                break
        mem = run(agent, iter(cached[args.warmup:]), cfg, steps, args.device)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gpu_mb = (torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda")
                  else None)
    figures = {
        "config": {"size": cfg.size, "preset": cfg.preset, "window": cfg.loader.window,
                   "batch_size": cfg.loader.batch_size, "num_workers": cfg.loader.num_workers,
                   "tokens_per_frame": cfg.model.text.tokens_per_frame, "steps": steps,
                   "threads": args.threads, "device": args.device,
                   "data": "synthetic-64x64" if not args.data else args.data},
        "frames_per_s": live["frames_per_s"], "frames_per_s_in_memory": mem["frames_per_s"],
        "s_per_step": live["s_per_step"], "s_per_step_in_memory": mem["s_per_step"],
        "data_wait_frac": live["data_wait_frac"],
        "slowdown_vs_in_memory": live["s_per_step"] / mem["s_per_step"],
        "peak_rss_mb": peak_mb, "rss_before_timed_mb": rss0 / 1024, "peak_gpu_mb": gpu_mb,
        "data_wait_target_met": live["data_wait_frac"] < 0.10,
    }
    print_summary(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
