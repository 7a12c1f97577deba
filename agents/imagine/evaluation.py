"""Scoring imagination on clips of real frames: pictures (PSNR, SSIM, code accuracy) and words (event
F1 of the narration of imagined frames against that of the real ones), against copy-last-frame
and the tokenizer's ceiling; and the decoding schemes' quality per CPU second.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.imagine.config import WorldModelError
from agents.imagine.dynamics import (
    WorldModel,
)
from agents.imagine.metrics import code_accuracy, psnr, ssim
from agents.imagine.rollout import imagine
from agents.narrate.clip_narration import narrate_clips, sentence_event


# ---------------------------------------------------------------------------------------------
# Evaluation against the baselines
# ---------------------------------------------------------------------------------------------
@dataclass
class Clips:
    """Evaluation clips: ``context`` uint8 [B, C, H, W, 3], ``future`` uint8 [B, K, H, W, 3]
    (the real continuation), ``actions`` long [B, K] (taken at the last context frame and at
    each future frame but the last); ``start`` long [B] the episode step of each clip's first
    frame (for facts that depend on it, such as the daylight a frame is drawn at)."""

    context: torch.Tensor
    future: torch.Tensor
    actions: torch.Tensor
    start: torch.Tensor | None = None


def make_clips(episodes: list[tuple[np.ndarray, np.ndarray]], *, context: int, horizon: int,
               max_clips: int) -> Clips:
    """Non-overlapping clips of ``context + horizon`` frames, taken round-robin over episodes
    (frames uint8 [L, H, W, 3], actions long [L]) so that every episode contributes.

    Episode j's candidate clips are rotated to start ``j / len(episodes)`` of the way into it,
    so that the first clips of the episodes spread over the episodes' time (in Crafter: day
    and night) instead of all being their openings."""
    per_ep = []
    n = context + horizon
    for j, (frames, actions) in enumerate(episodes):
        starts = list(range(0, len(frames) - n + 1, n))
        r = j * len(starts) // len(episodes)
        starts = starts[r:] + starts[:r]
        per_ep.append([(frames[s:s + n], actions[s + context - 1: s + n - 1], s) for s in starts])
    chosen: list[tuple[np.ndarray, np.ndarray, int]] = []
    i = 0
    while len(chosen) < max_clips and any(i < len(c) for c in per_ep):
        chosen += [c[i] for c in per_ep if i < len(c)]
        i += 1
    chosen = chosen[:max_clips]
    if not chosen:
        raise WorldModelError(f"No episode has {n} frames (--context {context} + --steps "
                              f"{horizon}); use longer episodes or smaller values.")
    f = torch.as_tensor(np.stack([c[0] for c in chosen]))
    a = torch.as_tensor(np.stack([c[1] for c in chosen]), dtype=torch.long)
    return Clips(context=f[:, :context], future=f[:, context:], actions=a,
                 start=torch.tensor([c[2] for c in chosen], dtype=torch.long))


def event_f1(pred: list[list[list[str]]], true: list[list[list[str]]], *, tolerance: int,
             ) -> tuple[float, list[float]]:
    """Event F1 of narrations ``pred`` against ``true`` (B lists of K sentence lists): over the
    whole clips within ``tolerance`` frames, and per horizon (same frame only); pooled counts."""
    from agents.model.monitors import combine_prf, event_prf

    whole = combine_prf(event_prf(p, t, tolerance=tolerance, parser=sentence_event)
                        for p, t in zip(pred, true))
    K = len(true[0])
    per_h = [float(combine_prf(event_prf([p[h]], [t[h]], tolerance=0, parser=sentence_event)
                               for p, t in zip(pred, true))["f1"]) for h in range(K)]
    return float(whole["f1"]), per_h


def frame_metrics(pred: torch.Tensor, real: torch.Tensor, pred_codes: torch.Tensor,
                  real_codes: torch.Tensor) -> dict[str, torch.Tensor]:
    """psnr / ssim / code_accuracy [B, K] of frames [B, K, H, W, 3] and codes [B, K, h, w]."""
    B, K = real.shape[:2]
    pred, real = pred.flatten(0, 1), real.flatten(0, 1)  # [B*K, ...]
    return {"psnr": psnr(pred, real).view(B, K),
            "ssim": ssim(pred, real).view(B, K),
            "code_accuracy": code_accuracy(pred_codes.flatten(0, 1),
                                           real_codes.flatten(0, 1)).view(B, K)}


@torch.no_grad()
def evaluate(agent: Any, wm: WorldModel, clips: Clips, *, samples: int = 4,
             temperature: float = 1.0, tolerance: int = 2, seed: int = 0,
             narration: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Imagine every clip's future and score it against copy-last-frame and the ceiling.

    Returns:
        ``(metrics, rollouts)``: ``metrics["per_horizon"][h-1]`` holds, for h = 1..K,
        ``{metric: {"imagined", "best_of_k", "copy_last", "ceiling"}}`` for psnr, ssim and
        code_accuracy, and ``{"event_f1": {"imagined", "copy_last", "ceiling"}}`` (with
        ``narration``; without, the real, copied and reconstructed clips are not narrated);
        ``rollouts`` holds the frames and narrations for the video and contact sheet, and
        ``scores[name][metric]`` float [B, K] per clip and horizon (for paired intervals).
    """
    real, ctx = clips.future, clips.context
    B, K = real.shape[:2]
    window = wm.cfg.window_for(agent)
    t0, c0 = time.perf_counter(), time.process_time()
    img = imagine(agent, ctx, clips.actions, K, world_model=wm, greedy=True, seed=seed)
    imag_cpu = time.process_time() - c0
    tok = wm.tokens
    real_codes = tok.encode_all(real.flatten(0, 1)).view(B, K, *tok.grid)
    recon = tok.decode(real_codes.flatten(0, 1)).view_as(real)
    last = ctx[:, -1:].expand_as(real)
    last_codes = tok.encode(ctx[:, -1]).unsqueeze(1).expand_as(real_codes)
    scores = {
        "imagined": frame_metrics(img.frames, real, img.codes, real_codes),
        "copy_last": frame_metrics(last, real, last_codes, real_codes),
        "ceiling": frame_metrics(recon, real, real_codes, real_codes),
    }
    sampled = [imagine(agent, ctx, clips.actions, K, world_model=wm, greedy=False,
                       temperature=temperature, seed=seed + 1 + j) for j in range(samples)]
    if sampled:  # best of k, per frame and per metric (an oracle pick: an upper bound)
        per = [frame_metrics(s.frames, real, s.codes, real_codes) for s in sampled]
        scores["best_of_k"] = {m: torch.stack([p[m] for p in per]).max(0).values for m in per[0]}
    from agents.model.text import unslot

    imag_s = unslot(img.narration_ids, agent.tokenizer)
    real_s, f1 = _narration_f1(agent, ctx, real, {"imagined": imag_s, "copy_last": last.contiguous(),
                                                  "ceiling": recon}, window, tolerance) \
        if narration else ([], {})
    per_horizon = _per_horizon(scores, f1, K)
    metrics = {
        "clips": B, "context": ctx.shape[1], "horizon": K, "samples": samples,
        "condition": wm.cfg.condition, "decoding": wm.cfg.decoding, "tokens": wm.tokens.name,
        "per_horizon": per_horizon,
        "tolerance": tolerance,
        "imagined_frames_per_cpu_s": B * K / max(imag_cpu, 1e-9),
        "eval_wall_s": time.perf_counter() - t0,
    }
    if f1:
        metrics["event_f1_whole_clip"] = {name: v[0] for name, v in f1.items()}
    rollouts = {"context": ctx, "real": real, "imagined": img.frames, "copy_last": last,
                "real_narration": real_s, "imagined_narration": imag_s, "scores": scores}
    return metrics, rollouts


def _narration_f1(agent: Any, ctx: torch.Tensor, real: torch.Tensor, arms: dict[str, Any],
                  window: int, tolerance: int) -> tuple[list, dict[str, tuple[float, list[float]]]]:
    """The narration of the real future and each arm's event F1 against it (whole clip, per
    horizon); an arm is its narration already (sentences) or frames to narrate after ``ctx``."""
    real_s = narrate_clips(agent, ctx, real, window=window)
    f1 = {}
    for name, arm in arms.items():
        said = arm if isinstance(arm, list) else narrate_clips(agent, ctx, arm, window=window)
        f1[name] = event_f1(said, real_s, tolerance=tolerance)
    return real_s, f1


def _per_horizon(scores: dict[str, dict[str, torch.Tensor]],
                 f1: dict[str, tuple[float, list[float]]], K: int) -> list[dict[str, Any]]:
    """Per horizon h = 1..K: each frame metric's mean per arm, and the arms' event F1."""
    rows = []
    for h in range(K):
        row: dict[str, Any] = {"horizon": h + 1}
        for m in ("psnr", "ssim", "code_accuracy"):
            row[m] = {name: float(sc[m][:, h].mean()) for name, sc in scores.items()}
        if f1:
            row["event_f1"] = {name: v[1][h] for name, v in f1.items()}
        rows.append(row)
    return rows


@torch.no_grad()
def compare_decoding(wm: WorldModel, codes: torch.Tensor, next_codes: torch.Tensor,
                     next_frames: torch.Tensor, states: torch.Tensor | None,
                     actions: torch.Tensor, *, schemes: list[tuple[str, int]] | None = None,
                     ) -> list[dict[str, Any]]:
    """Quality per CPU second of each decoding scheme on 1-step predictions from real frames.

    Args:
        codes, next_codes: long [N, h, w] codes of frames t and t+1.
        next_frames: uint8 [N, H, W, 3] the real frames t+1.
        states: float [N, D] BYOG states at t (None without a state condition).
        actions: long [N] actions at t.
        schemes: ``(name, steps)`` pairs (default parallel, maskgit 4 and 8, autoregressive).

    Returns:
        One row per scheme: code_accuracy, psnr, ssim (argmax decoding), cpu_ms_per_frame.
    """
    n = codes.shape[1] * codes.shape[2]
    schemes = schemes or [("parallel", 1), ("maskgit", 4), ("maskgit", 8), ("autoregressive", n)]
    rows = []
    for name, steps in schemes:
        c0 = time.process_time()
        pred = wm.predict(codes, states, actions, greedy=True, decoding=name, steps=steps)
        cpu = time.process_time() - c0
        frames = wm.tokens.decode(pred)
        rows.append({"decoding": name, "passes": steps if name != "parallel" else 1,
                     "code_accuracy": float(code_accuracy(pred, next_codes).mean()),
                     "psnr": float(psnr(frames, next_frames).mean()),
                     "ssim": float(ssim(frames, next_frames).mean()),
                     "cpu_ms_per_frame": 1000 * cpu / len(codes)})
    return rows
