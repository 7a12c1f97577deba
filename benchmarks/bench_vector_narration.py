"""Narrating N envs at once: one batched decode (VectorNarrator) vs N single-env narrators.

Measured side by side in one run, on one CPU thread (the tiny model, its default k tokens per
frame, the training window; envs reset at their own steps so windows slide out of step):

1. **Narration only** (frames collected beforehand): frames/s of
   :class:`agents.narrate.vector_narration.VectorNarrator` at N = 1, 4, 16 against N single-env
   :class:`agents.narrate.narrator.Narrator` s stepped one after the other on the same frames
   (goal: >= 5x at N = 16), and where the batched step's time goes: the observation encoder
   (N frames through the CNN: as costly batched as one by one, so it bounds the ratio), the
   window re-encodes (envs slide at different steps, so these are not batched away), the k
   batched decode steps.
2. **The whole live loop** at N = 16: N Crafter envs stepped by a random policy, plain and with
   vector narration (env stepping included), frames/s; per-step latency p50/p99 (what a frame
   waits for its narration: one batched step narrates N frames).
3. **RSS over a long run**: the process's resident memory after the first tenth and at the end
   of a long vector-narration run (the cache is preallocated for the window: it must stay flat).

The machine may be shared: the 1-minute load average before and after is printed with the
figures. Run: ``python benchmarks/bench_vector_narration.py [--quick]``; the last line is one
JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from benchmarks.bench_narrate import crafter_frames, make_agent


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def episode_starts(steps: int, n: int) -> np.ndarray:
    """bool [steps, n]: env i restarts every 23 + 7 i steps (out of step with the others)."""
    t = np.arange(steps)[:, None]
    return t % (23 + 7 * np.arange(n))[None] == 0


@torch.no_grad()
def narration_only(agent, frames: np.ndarray, n: int, steps: int) -> dict[str, float]:
    """frames/s of one VectorNarrator(n) and of n Narrators on the same frames."""
    from agents.narrate.narrator import Narrator
    from agents.narrate.vector_narration import VectorNarrator

    T = frames.shape[0]
    streams = np.stack([frames[(np.arange(steps) + 17 * i) % T] for i in range(n)], 1)
    starts = episode_starts(steps, n)
    vec = VectorNarrator(agent, num_envs=n, greedy=True, decode=False)
    vec.reset(0)
    spent = {"embed": 0.0, "slide": 0.0}  # where the batched step's time goes
    for part, obj, name in (("embed", vec.enc, "embed_frame"), ("slide", vec, "_slide")):
        setattr(obj, name, _timed(getattr(obj, name), spent, part))
    t0 = time.perf_counter()
    for t in range(steps):
        vec.step(streams[t], starts=starts[t])
    vec_s = time.perf_counter() - t0
    del vec.enc.embed_frame, vec._slide  # the instance attributes set above
    singles = [Narrator(agent, greedy=True, decode=False) for _ in range(n)]
    t0 = time.perf_counter()
    for t in range(steps):
        for i, nar in enumerate(singles):
            if starts[t, i]:
                nar.reset(0)
            nar.step(streams[t, i][None])
    single_s = time.perf_counter() - t0
    return {"vector_fps": n * steps / vec_s, "singles_fps": n * steps / single_s,
            "ratio": single_s / vec_s, "slides": vec.reencodes,
            "vector_share_embed": spent["embed"] / vec_s, "vector_share_slide": spent["slide"] / vec_s}


def _timed(fn, spent: dict[str, float], part: str):
    def run(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[part] += time.perf_counter() - t0
    return run


@torch.no_grad()
def live_loop(agent, n: int, steps: int) -> dict[str, float]:
    """The N-env Crafter loop (random policy), plain and narrated; narrated step latencies."""
    import byog_env
    from agents.narrate.vector_narration import VectorNarrator

    envs = [byog_env.make("crafter") for _ in range(n)]
    rng = np.random.default_rng(0)

    def run(vec: VectorNarrator | None) -> tuple[float, list[float]]:
        obs = [e.reset(seed=i)[0] for i, e in enumerate(envs)]
        starts = np.ones(n, bool)
        if vec is not None:
            vec.reset(0)
        lat = []
        t0 = time.perf_counter()
        for _ in range(steps):
            if vec is not None:
                t1 = time.perf_counter()
                vec.step(np.stack(obs), starts=starts)
                lat.append(time.perf_counter() - t1)
            starts = np.zeros(n, bool)
            for i, e in enumerate(envs):
                obs[i], _, term, trunc, _ = e.step(int(rng.integers(e.action_space.n)))
                if term or trunc:
                    obs[i], starts[i] = e.reset()[0], True
        return n * steps / (time.perf_counter() - t0), lat

    plain, _ = run(None)
    narrated, lat = run(VectorNarrator(agent, num_envs=n, greedy=True, decode=True))
    ms = 1e3 * np.asarray(lat)
    return {"env_fps": plain, "env_with_narration_fps": narrated,
            "step_latency_ms_p50": float(np.percentile(ms, 50)),
            "step_latency_ms_p99": float(np.percentile(ms, 99))}


@torch.no_grad()
def rss_over_run(agent, frames: np.ndarray, n: int, steps: int) -> dict[str, float]:
    """RSS after a tenth of a long run and at its end (MB)."""
    from agents.narrate.vector_narration import VectorNarrator

    vec = VectorNarrator(agent, num_envs=n, greedy=True, decode=True)
    vec.reset(0)
    starts = episode_starts(steps, n)
    T = frames.shape[0]
    early = None
    for t in range(steps):
        vec.step(np.stack([frames[(t + 17 * i) % T] for i in range(n)]), starts=starts[t])
        if t == steps // 10:
            early = rss_mb()
    return {"rss_mb_early": early, "rss_mb_end": rss_mb(), "rss_growth_mb": rss_mb() - early,
            "rss_steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--size", default="tiny", help="model size")
    args = ap.parse_args()
    from agents.narrate.narrator import training_window

    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    agent = make_agent(args.size)
    frames = crafter_frames(200)
    steps = 40 if args.quick else 120
    out: dict[str, float] = {"threads": 1, "size": args.size, "tokens_per_frame": agent.encoder.k,
                             "window": training_window(agent)}
    for n in (1, 4, 16):
        r = narration_only(agent, frames, n, steps)
        out.update({f"n{n}/{k}": round(v, 2) for k, v in r.items()})
        print(f"narration only, N = {n:>2}: one batched decode {r['vector_fps']:.1f} frames/s, "
              f"{n} single narrators {r['singles_fps']:.1f} frames/s -> {r['ratio']:.2f}x; the "
              f"batched step's time: {100 * r['vector_share_embed']:.0f}% observation encoder, "
              f"{100 * r['vector_share_slide']:.0f}% window re-encodes ({r['slides']} env "
              f"slides), the rest the k batched decode steps")
    live = live_loop(agent, 16, steps // 2 if args.quick else steps)
    out.update({f"live16/{k}": round(v, 2) for k, v in live.items()})
    print(f"live loop, 16 Crafter envs: {live['env_fps']:.1f} frames/s plain, "
          f"{live['env_with_narration_fps']:.1f} with vector narration; a narration step "
          f"(16 frames) p50 {live['step_latency_ms_p50']:.1f} ms, p99 {live['step_latency_ms_p99']:.1f} ms")
    rss = rss_over_run(agent, frames, 16, 300 if args.quick else 2000)
    out.update({k: round(v, 1) for k, v in rss.items()})
    print(f"RSS over {rss['rss_steps']} steps of 16 envs: {rss['rss_mb_early']:.1f} MB after a "
          f"tenth, {rss['rss_mb_end']:.1f} MB at the end ({rss['rss_growth_mb']:+.1f} MB)")
    out["load_1min_before"], out["load_1min_after"] = round(load0, 2), round(os.getloadavg()[0], 2)
    print(f"machine load (1-min average) {out['load_1min_before']} before, "
          f"{out['load_1min_after']} after, on {os.cpu_count()} cores (shared machine)")
    out["narration_only_ratio_n16"] = out["n16/ratio"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
