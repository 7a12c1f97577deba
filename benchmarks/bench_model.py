"""Benchmark: KV-cached narration sampling vs a teacher-forced forward and vs no cache.

Measured side by side in one run on the same model and window:
1. sampling a window's k tokens per frame with the KV cache (all B sequences in parallel, one
   model call per token position) vs ONE teacher-forced forward of the same window, at the
   training batch size (>= 16; target ratio <= 4x) and at batch 1 (reported);
2. cached sampling vs naive re-computation of the whole prefix per token (no cache) at 256
   positions (target: cache >= 5x faster).
The last line printed is one JSON object with the figures.

    python benchmarks/bench_model.py [--size tiny] [--batch 16] [--quick]
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal

import torch
import tyro

from agents.config import make_model_config
from agents.model import BYOGAgent
from agents.text import train_tokenizer


@dataclass
class Args:
    """Benchmark options."""

    size: Literal["tiny", "small", "base"] = "tiny"
    """Model size."""
    batch: int = 16
    """Training batch size for the sampling-vs-forward comparison (>= 16)."""
    frames: int = 16
    """Frames per window (x tokens_per_frame positions)."""
    tokens_per_frame: int = 8
    """Slot size k."""
    naive_positions: int = 256
    """Token positions for the cached-vs-naive comparison."""
    repeats: int = 3
    """Timed repeats (the best is kept)."""
    threads: int = 1
    """torch CPU threads."""
    quick: bool = False
    """Fewer repeats and a shorter naive run (smoke test)."""


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(args: Args) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    words = ["collected 1 wood", "tree in view", "made wood pickaxe", "health dropped"]
    tok = train_tokenizer(words)
    cfg = make_model_config(args.size, "byog", text={"tokens_per_frame": args.tokens_per_frame})
    agent = BYOGAgent(cfg, tok).eval()
    enc = agent.encoder
    reps = 1 if args.quick else args.repeats
    out: dict[str, float] = {"size": args.size, "positions": args.frames * args.tokens_per_frame}

    for B, tag in ((args.batch, f"b{args.batch}"), (1, "b1")):
        frames = torch.randint(0, 256, (B, args.frames, 64, 64, 3), dtype=torch.uint8)
        with torch.no_grad():
            e = enc.frame_embeddings(frames)
            ids, _ = enc.sample(e)
            t_sample = best_time(lambda: enc.sample(e), reps)
            t_forward = best_time(lambda: enc(ids, e), reps)
        out[f"{tag}_sample_s"] = t_sample
        out[f"{tag}_forward_s"] = t_forward
        out[f"{tag}_sample_over_forward"] = t_sample / t_forward
        print(f"batch {B:3d}: cached sampling {t_sample * 1e3:8.1f} ms | one teacher-forced "
              f"forward {t_forward * 1e3:7.1f} ms | ratio {t_sample / t_forward:5.2f}x")

    n_frames = (64 if args.quick else args.naive_positions) // args.tokens_per_frame
    frames = torch.randint(0, 256, (1, n_frames, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        e = enc.frame_embeddings(frames)
        t_cached = best_time(lambda: enc.sample(e, greedy=True), reps)
        t_naive = best_time(lambda: enc.sample_uncached(e, greedy=True), 1)
        same = torch.equal(enc.sample(e, greedy=True)[0], enc.sample_uncached(e, greedy=True))
    out.update(naive_positions=n_frames * args.tokens_per_frame, cached_s=t_cached,
               naive_s=t_naive, cache_speedup=t_naive / t_cached, cached_equals_naive=float(same))
    print(f"{n_frames * args.tokens_per_frame} positions, batch 1: cached {t_cached * 1e3:.1f} ms | "
          f"no cache {t_naive * 1e3:.1f} ms | speed-up {t_naive / t_cached:.1f}x | same tokens: {same}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
