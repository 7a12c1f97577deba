"""Benchmark: KV-cached narration sampling vs a teacher-forced forward and vs no cache.

Measured side by side in one run on the same model and window (one CPU thread by default):
1. sampling a window's k tokens per frame with the KV cache (all B sequences in parallel, one
   model call per token position, temperature sampling) vs ONE teacher-forced forward of the
   same window (the training code path), at the trainer's default batch (32; target ratio <= 4x),
   16 and 64, and at
   batch 1 (reported only: one forward is a single parallel pass, sampling is sequential);
2. cached greedy sampling vs naive re-computation without a cache (a teacher-forced forward
   over the growing prefix for every token, the training code path) at 256 positions
   (target: cache >= 5x faster), checking both give the same tokens.

Both sides run under ``torch.inference_mode``. The machine may be shared, so each comparison
is repeated with the two sides interleaved and the MEDIAN of the per-repeat ratios is reported
(wall clock, and process CPU time, which excludes time the OS gave to other processes); the
verdicts use the median wall-clock ratio. The last line printed is one JSON object with the
figures.

    python benchmarks/bench_model.py [--size tiny] [--batches 16 32 64] [--quick]
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import tyro

from agents.config import make_model_config
from agents.model.agent import BYOGAgent
from agents.model.lm import sample_tokens
from agents.model.text import train_tokenizer
from agents.training.config import LoaderConfig

_DEFAULT = LoaderConfig()  # the trainer's defaults: the target is held at its batch and window


@dataclass
class Args:
    """Benchmark options."""

    size: Literal["tiny", "small", "base"] = "tiny"
    """Model size."""
    batches: tuple[int, ...] = tuple(dict.fromkeys((_DEFAULT.batch_size, 16, 32, 64)))
    """Batch sizes for sampling vs one forward (the first, the trainer's default, is held to the target)."""
    frames: int = _DEFAULT.window
    """Frames per window (x tokens_per_frame positions)."""
    tokens_per_frame: int = 8
    """Slot size k."""
    naive_positions: int = 256
    """Token positions for the cached-vs-naive comparison."""
    repeats: int = 5
    """Interleaved timed repeats per comparison (the median ratio is reported)."""
    naive_repeats: int = 3
    """Interleaved repeats of the (slow) cached-vs-naive comparison."""
    threads: int = 1
    """torch CPU threads."""
    quick: bool = False
    """One repeat, batch 16 only and a 64-position naive run (smoke test)."""

    def __post_init__(self) -> None:
        if not self.batches or min(self.batches) < 1:
            raise SystemExit(f"--batches needs sizes >= 1, got {self.batches}.")
        for name in ("frames", "tokens_per_frame", "naive_positions", "repeats", "naive_repeats",
                     "threads"):
            if getattr(self, name) < 1:
                raise SystemExit(f"--{name.replace('_', '-')} must be >= 1.")


def sample_uncached(enc: object, e: torch.Tensor, *, greedy: bool = True) -> torch.Tensor:
    """The no-cache baseline: re-run the whole prefix for every new token.

    Each position runs the teacher-forced ``NarrationEncoder.forward`` (the training code path)
    over the frames so far, under the same ``torch.inference_mode`` as ``enc.sample``.
    """
    B, T, _ = e.shape
    L = T * enc.k
    with torch.inference_mode():
        ids = torch.full((B, T, enc.k), enc.bos_id, dtype=torch.long, device=e.device)
        flat = ids.view(B, L)
        for p in range(L):
            t = p // enc.k + 1
            _, z = enc(ids[:, :t], e[:, :t])
            flat[:, p] = sample_tokens(z[:, p], greedy=greedy, banned=enc.banned,
                                       nil_rule=enc.nil_rule)
    return ids.clone()  # an ordinary tensor


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def compare(ours: Callable[[], object], base: Callable[[], object], repeats: int) -> dict[str, float]:
    """Time ``ours`` and ``base`` interleaved ``repeats`` times (after one warm-up each).

    Returns medians of: ours_s, base_s (wall), ratio (ours/base, wall) and cpu_ratio.
    """
    ours()
    base()
    rows = []
    for _ in range(repeats):
        ow, oc = _timed(ours)
        bw, bc = _timed(base)
        rows.append((ow, bw, ow / bw, oc / max(bc, 1e-9)))
    med = [statistics.median(col) for col in zip(*rows)]
    return {"ours_s": med[0], "base_s": med[1], "ratio": med[2], "cpu_ratio": med[3]}


def sample_vs_forward(enc: object, B: int, frames: int, positions: int,
                      reps: int) -> tuple[dict[str, float], float]:
    """Comparison 1 at batch ``B``: cached sampling of a random window against ONE
    teacher-forced forward of the same window; prints the batch's line.

    Returns:
        The ``b{B}_*`` figures, and the largest gap between the cached logits and the
        teacher-forced logits on the sampled tokens (a correctness check: they must agree).
    """
    pixels = torch.randint(0, 256, (B, frames, 64, 64, 3), dtype=torch.uint8)
    with torch.inference_mode():
        e = enc.frame_embeddings(pixels)
    ids, logits = enc.sample(e)
    with torch.inference_mode():
        _, z = enc(ids, e)  # cached logits == teacher-forced logits on the sampled tokens
    # The sampler hands back its banned ids (<pad>, <bos>, <unk>) at -inf by design: compare the
    # ids it may say (comparing all gave inf, a check that could never pass).
    sayable = torch.isfinite(logits)
    err = float((z.view_as(logits) - logits)[sayable].abs().max())

    def forward() -> None:
        with torch.inference_mode():
            enc(ids, e)

    r = compare(lambda: enc.sample(e), forward, reps)
    tag = f"b{B}"
    print(f"batch {B:3d}: cached sampling {r['ours_s'] * 1e3:8.1f} ms "
          f"({r['ours_s'] / positions * 1e6:5.0f} us/step) | one teacher-forced forward "
          f"{r['base_s'] * 1e3:7.1f} ms | ratio {r['ratio']:5.2f}x (cpu {r['cpu_ratio']:5.2f}x)")
    return {f"{tag}_sample_s": r["ours_s"], f"{tag}_forward_s": r["base_s"],
            f"{tag}_sample_over_forward": r["ratio"],
            f"{tag}_sample_over_forward_cpu": r["cpu_ratio"],
            f"{tag}_ms_per_token_step": r["ours_s"] / positions * 1e3}, err


def cache_vs_naive(enc: object, n_frames: int, tokens_per_frame: int, repeats: int) -> dict[str, float]:
    """Comparison 2: cached greedy sampling against re-running the growing prefix for every
    token, at batch 1, and whether both give the same tokens; prints its line."""
    frames = torch.randint(0, 256, (1, n_frames, 64, 64, 3), dtype=torch.uint8)
    with torch.inference_mode():
        e = enc.frame_embeddings(frames)
    r = compare(lambda: sample_uncached(enc, e, greedy=True), lambda: enc.sample(e, greedy=True), repeats)
    same = torch.equal(enc.sample(e, greedy=True)[0], sample_uncached(enc, e, greedy=True))
    n = n_frames * tokens_per_frame
    print(f"{n} positions, batch 1: cached {r['base_s'] * 1e3:.1f} ms | no cache "
          f"{r['ours_s'] * 1e3:.1f} ms | speed-up {r['ratio']:.1f}x (cpu {r['cpu_ratio']:.1f}x) | "
          f"same tokens: {same}")
    return {"naive_positions": n, "cached_s": r["base_s"], "naive_s": r["ours_s"],
            "cache_speedup": r["ratio"], "cache_speedup_cpu": r["cpu_ratio"],
            "cached_equals_naive": float(same), "target_cache_speedup": 5.0,
            "cache_target_met": float(r["ratio"] >= 5.0)}


def main(args: Args) -> dict[str, float]:
    """Runs both comparisons on one freshly built model and prints the figures and verdicts."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    words = ["collected 1 wood", "tree in view", "made wood pickaxe", "health dropped"]
    tok = train_tokenizer(words)
    cfg = make_model_config(args.size, "byog", text={"tokens_per_frame": args.tokens_per_frame})
    agent = BYOGAgent(cfg, tok).eval()
    enc = agent.encoder
    reps = 1 if args.quick else args.repeats
    batches = args.batches[:1] if args.quick else args.batches
    L = args.frames * args.tokens_per_frame
    out: dict[str, float] = {"size": args.size, "positions": L, "threads": args.threads,
                             "repeats": reps}
    print(f"{args.size} model, {L} positions ({args.frames} frames x {args.tokens_per_frame}), "
          f"{args.threads} thread(s), median of {reps} interleaved repeats")

    max_err = 0.0
    for B in (*batches, 1):
        figures, err = sample_vs_forward(enc, B, args.frames, L, reps)
        out.update(figures)
        max_err = max(max_err, err)
    out["cached_vs_forward_max_abs_logit_diff"] = max_err
    target_b = batches[0]
    out["target_sample_over_forward"] = 4.0
    out["sample_target_met"] = float(out[f"b{target_b}_sample_over_forward"] <= 4.0)

    n_frames = (64 if args.quick else args.naive_positions) // args.tokens_per_frame
    out.update(cache_vs_naive(enc, n_frames, args.tokens_per_frame, 1 if args.quick else args.naive_repeats))
    print(f"targets: sampling/forward at batch {target_b} <= 4x: "
          f"{'met' if out['sample_target_met'] else 'NOT met'}; cache speed-up >= 5x: "
          f"{'met' if out['cache_target_met'] else 'NOT met'}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(tyro.cli(Args))
