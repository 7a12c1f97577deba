"""Imagination speed: imagined frames/s beside the cost of narrating a real frame (informational).

On one CPU thread, Crafter frames (64x64), the tiny narrator and the world model of the Crafter
imagination result (8x8 grid of VQ-VAE codes, d_model 64, 2 layers; weights untrained: the
speed does not depend on them):

* ``narrate_real_ms``: the agent narrating one real frame (live ``Narrator.step``, B = 1);
* ``imagine_ms_per_frame[B, scheme]``: one imagined frame per stream with ``agent.imagine``
  (world-model decoding + VQ-VAE decoder + narrating the imagined frame, whose state conditions
  the next step), for B = 1 and 16 streams, parallel and MaskGIT-8 decoding;
* ``world_model_only_ms``: the same without the narration (predict + decode).

Run: ``python benchmarks/bench_imagine.py [--quick]``; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from bench_narrate import crafter_frames, make_agent

from agents.imagine.rollout import imagine
from agents.imagine.world_model import VQFrameTokens, WorldModel, WorldModelConfig
from agents.narrate.narrator import Narrator


def build_world_model(frames: np.ndarray, state_dim: int) -> WorldModel:
    """The Crafter result's world-model shape, with a VQ-VAE fitted for 2 steps (speed only)."""
    cfg = WorldModelConfig(d_model=64, layers=2, heads=4, vqvae_steps=2, vqvae_hidden=32,
                           vqvae_batch_size=8)
    tokens, _ = VQFrameTokens.fit(frames, cfg)
    return WorldModel(cfg, tokens, n_actions=17, state_dim=state_dim).eval()


def cpu_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.process_time()
    for _ in range(repeat):
        fn()
    return 1e3 * (time.process_time() - t0) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames = crafter_frames(64)
    agent = make_agent("tiny")
    wm = build_world_model(frames, agent.encoder.tlm.hidden_size)
    steps = 4 if args.quick else 8
    out: dict[str, float] = {"threads": 1, "grid": wm.tokens.grid[0] * wm.tokens.grid[1],
                             "imagined_steps": steps}

    nar = Narrator(agent, batch_size=1, window=16)
    nar.reset()
    it = iter(frames)
    out["narrate_real_ms"] = round(cpu_ms(lambda: nar.step(next(it)[None]), 32 if args.quick else 60), 2)
    print(f"narrating a real frame: {out['narrate_real_ms']:.2f} ms (B = 1)")
    for B in (1, 16):
        ctx = torch.as_tensor(np.stack([frames[i: i + 4] for i in range(B)]))
        acts = torch.randint(17, (B, steps))
        for scheme in ("parallel", "maskgit"):
            def run(k: int, scheme: str = scheme, ctx: torch.Tensor = ctx,
                    acts: torch.Tensor = acts) -> float:
                return cpu_ms(lambda: imagine(agent, ctx, acts, k, world_model=wm,
                                              decoding=scheme), 1 if args.quick else 2)

            # the call also narrates the 4 context frames: the difference of two horizons
            # leaves the cost of the imagined frames alone
            per = (run(steps) - run(1)) / (B * (steps - 1))
            out[f"imagine_ms_per_frame/B{B}/{scheme}"] = round(per, 2)
            out[f"imagined_fps/B{B}/{scheme}"] = round(1e3 / per, 1)
            print(f"imagine B={B:>2} {scheme:<8}: {per:.2f} ms per imagined frame "
                  f"({1e3 / per:.1f} frames/s, narration of the imagined frame included)")
    codes = wm.tokens.encode(torch.as_tensor(frames[:16]))
    state = torch.randn(16, wm.state_dim)
    acts = torch.randint(17, (16,))
    wm_ms = cpu_ms(lambda: wm.tokens.decode(wm.predict(codes, state, acts)), 5 if args.quick else 20)
    out["world_model_only_ms/B16/parallel"] = round(wm_ms / 16, 2)
    print(f"world model only (predict + VQ decode), B=16 parallel: {wm_ms / 16:.2f} ms per frame")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
