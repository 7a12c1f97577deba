"""Imagination: roll a world model forward from real frames, in pictures and in words.

``python -m agents.imagine --checkpoint RUN --data DIR|--env ENV [--policy P] --steps K --out DIR``

* ``--train-steps N`` (with ``--data``) first trains the world model (a second stage reading the
  frozen agent, :mod:`agents.imagine.world_model`) on the agent's training episodes and saves it beside
  the agent's checkpoint (``<checkpoint>/world_model/``); without it the saved one is used.
* Clips of ``--context`` real frames are taken from the agent's validation episodes (``--data``)
  or from ``--episodes`` live episodes played by ``--policy`` (``--env``); from the last real
  frame the model imagines ``--steps`` frames under the actions actually taken, and the agent
  narrates the imagined frames as it narrates real ones.
* ``--out`` receives ``imagination.mp4`` (real | imagined side by side, both narrations as
  subtitles), ``contact_sheet.png`` and ``metrics.json``: per horizon 1..K, PSNR / SSIM and code
  accuracy of the imagined frames (argmax decoding, and best of ``--samples`` sampled rollouts)
  against copy-the-last-frame and the tokenizer's own reconstruction (the ceiling), and event
  F1 between the narration of the imagined frames and that of the real ones.
* ``--compare-conditions`` also trains world models that read the action only and nothing
  (the language ablation) and evaluates them on the same clips; ``--compare-decoding`` measures
  the decoding schemes' quality per CPU second.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.narrate.clip_narration import narrate_clips, sentence_event
from agents.imagine.study import model_key
from agents.imagine.world_model import (  # Imagination/imagine/attach_*: re-exported (they live there)
    CONDITIONS,
    WORLD_MODEL_DIR,
    Imagination,
    WorldModel,
    WorldModelConfig,
    WorldModelError,
    attach_world_model,
    attached_world_model,
    build_transitions,
    code_accuracy,
    frame_tokens_for,
    imagine,
    narrator_states,
    psnr,
    ssim,
    train_world_model,
)

__all__ = ["Imagination", "ImagineConfig", "attach_world_model", "attached_world_model", "cli",
           "evaluate", "imagine", "main", "world_model_dir"]

METRICS, VIDEO, SHEET, REPORT = "metrics.json", "imagination.mp4", "contact_sheet.png", "report.md"


# ---------------------------------------------------------------------------------------------
# Where the world model lives
# ---------------------------------------------------------------------------------------------
def world_model_dir(checkpoint: str | Path) -> Path:
    """Where a checkpoint's world model lives: ``<checkpoint>/world_model`` (the newest
    checkpoint of a run directory)."""
    from agents.training.checkpoint import resolve_checkpoint

    return resolve_checkpoint(checkpoint) / WORLD_MODEL_DIR


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
    # narration: of the real future, of the imagined one, of copy-last and of the reconstruction
    from agents.model.text import unslot

    imag_s = unslot(img.narration_ids, agent.tokenizer)
    real_s: list = []
    f1: dict[str, tuple[float, list[float]]] = {}
    if narration:
        real_s = narrate_clips(agent, ctx, real, window=window)
        copy_s = narrate_clips(agent, ctx, last.contiguous(), window=window)
        recon_s = narrate_clips(agent, ctx, recon, window=window)
        f1 = {name: event_f1(s, real_s, tolerance=tolerance)
              for name, s in (("imagined", imag_s), ("copy_last", copy_s), ("ceiling", recon_s))}
    per_horizon = []
    for h in range(K):
        row: dict[str, Any] = {"horizon": h + 1}
        for m in ("psnr", "ssim", "code_accuracy"):
            row[m] = {name: float(sc[m][:, h].mean()) for name, sc in scores.items()}
        if f1:
            row["event_f1"] = {name: v[1][h] for name, v in f1.items()}
        per_horizon.append(row)
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


# ---------------------------------------------------------------------------------------------
# Outputs: video, contact sheet, table
# ---------------------------------------------------------------------------------------------
def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 2) -> np.ndarray:
    """Two frame sequences [L, H, W, 3] -> [L, H, 2W + gap, 3] with a white gap."""
    sep = np.full((*left.shape[:2], gap, 3), 255, np.uint8)
    return np.concatenate([left, sep, right], axis=2)


def write_outputs(out: Path, rollouts: dict[str, Any], *, clips: int = 4, fps: float = 4.0,
                  scale: int = 4, video: bool = True) -> list[str]:
    """The side-by-side video (real | imagined, both narrations as subtitles) of the first
    ``clips`` clips, and a contact sheet; returns the file names written."""
    import cv2

    from collect.video import hold_subtitles, write_video

    ctx, real, imag = (rollouts[k].numpy() for k in ("context", "real", "imagined"))
    n = min(clips, len(real))
    written = []
    if video:
        frames, subs = [], []
        for b in range(n):
            C, K = ctx.shape[1], real.shape[1]
            frames.append(side_by_side(ctx[b], ctx[b]))
            frames.append(side_by_side(real[b], imag[b]))
            real_lines = [["real: " + "; ".join(s)] if s else [] for s in rollouts["real_narration"][b]]
            imag_lines = [["imagined: " + "; ".join(s)] if s else []
                          for s in rollouts["imagined_narration"][b]]
            held_r = hold_subtitles(real_lines, hold=3, max_lines=1)
            held_i = hold_subtitles(imag_lines, hold=3, max_lines=1)
            subs += [[f"clip {b}: context {t + 1}/{C} (real | real)"] for t in range(C)]
            subs += [[f"clip {b}: t+{h + 1} (real | imagined)", *held_r[h], *held_i[h]]
                     for h in range(K)]
        write_video(out / VIDEO, np.concatenate(frames), subs, scale=scale, fps=fps, band_lines=3)
        written.append(VIDEO)
    # contact sheet: per clip a row of real frames over a row of imagined ones at chosen horizons
    K = real.shape[1]
    hs = sorted({h for h in (1, 2, 4, 8, 16, 32, K) if h <= K})
    H, W = real.shape[2:4]
    pad = 2
    rows = []
    for b in range(n):
        for seq, first in ((real[b], ctx[b, -1]), (imag[b], ctx[b, -1])):
            tiles = [first] + [seq[h - 1] for h in hs]
            row = np.full((H + pad, (W + pad) * len(tiles), 3), 255, np.uint8)
            for i, tile in enumerate(tiles):
                row[:H, i * (W + pad): i * (W + pad) + W] = tile
            rows.append(row)
    sheet = np.concatenate(rows)
    sheet = np.repeat(np.repeat(sheet, scale // 2 or 1, 0), scale // 2 or 1, 1)
    label = np.zeros((18, sheet.shape[1], 3), np.uint8)
    cv2.putText(label, "rows: real / imagined per clip; cols: last real, t+" + ", t+".join(map(str, hs)),
                (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(out / SHEET), cv2.cvtColor(np.concatenate([label, sheet]), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    written.append(SHEET)
    return written


def table(metrics: dict[str, Any], horizons: tuple[int, ...] = (1, 4, 16)) -> str:
    """A markdown table of the per-horizon metrics at ``horizons``."""
    rows = ["| horizon | metric | imagined | best of k | copy last | ceiling (recon) |",
            "|---:|---|---:|---:|---:|---:|"]
    for r in metrics["per_horizon"]:
        if r["horizon"] not in horizons:
            continue
        for m in ("psnr", "ssim", "code_accuracy", "event_f1"):
            v = r[m]
            cells = [v.get(k) for k in ("imagined", "best_of_k", "copy_last", "ceiling")]
            rows.append(f"| {r['horizon']} | {m} | " + " | ".join(
                "–" if c is None else f"{c:.3f}" for c in cells) + " |")
    return "\n".join(rows)


def report(out: dict[str, Any], horizons: tuple[int, ...] = (1, 4, 16)) -> str:
    """The run's markdown report: metrics vs the baselines, the language ablation, the decoding
    schemes (whichever the run has)."""
    m = out["metrics"]
    hs = tuple(h for h in horizons if h <= m["horizon"]) or (m["horizon"],)
    parts = [(f"## Imagined vs baselines ({m['condition']}, {m['decoding']} decoding, {m['tokens']}"
             f" tokens; {m['clips']} clips, context {m['context']}, best of {m['samples']})"),
             table(m, hs)]
    if "language_ablation" in out:
        rows = ["| condition | horizon | psnr | ssim | code acc | event F1 | best-of-k psnr |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for cond, r in out["language_ablation"].items():
            for row in r["per_horizon"]:
                if row["horizon"] in hs:
                    cells = [row["psnr"]["imagined"], row["ssim"]["imagined"],
                             row["code_accuracy"]["imagined"], row["event_f1"]["imagined"],
                             row["psnr"].get("best_of_k")]
                    rows.append(f"| {cond} | {row['horizon']} | " + " | ".join(
                        "–" if c is None else f"{c:.3f}" for c in cells) + " |")
        parts += ["## Language ablation (imagined frames, argmax decoding)", "\n".join(rows)]
    if "decoding" in out:
        rows = ["| decoding | passes | code acc | psnr | ssim | CPU ms / frame |",
                "|---|---:|---:|---:|---:|---:|"]
        rows += [f"| {r['decoding']} | {r['passes']} | {r['code_accuracy']:.3f} | {r['psnr']:.2f} "
                 f"| {r['ssim']:.3f} | {r['cpu_ms_per_frame']:.2f} |" for r in out["decoding"]]
        parts += ["## Decoding schemes (1-step predictions from real frames)", "\n".join(rows)]
    from agents.imagine.study import report_sections

    parts += report_sections(out)
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------------------------
@dataclass
class ImagineConfig:
    """Settings of one imagination run (saved in ``metrics.json``)."""

    checkpoint: str
    """Run directory of ``python -m agents.training`` (its newest checkpoint) or a checkpoint
    directory; the world model lives in ``<checkpoint>/world_model``. (required)"""
    data: str | None = None
    """Dataset directory: the world model trains on the agent's training episodes and clips come
    from its validation episodes (the trainer's split). Give --data or --env."""
    env: str | None = None
    """Environment to play live (``crafter``, ...): clips come from --episodes episodes."""
    policy: str = "random"
    """Policy playing --env (``random``, ``crafter-scripted``, ``sb3:<zip>``, ...)."""
    steps: int = 16
    """K: frames imagined after each clip's context."""
    out: Path = Path("runs/imagine")
    """Output directory (metrics.json, imagination.mp4, contact_sheet.png)."""
    context: int = 8
    """Real frames narrated before imagination starts."""
    clips: int = 16
    """Clips evaluated (non-overlapping, spread over the episodes)."""
    episodes: int = 4
    """Episodes played with --env."""
    samples: int = 4
    """Sampled rollouts per clip for the best-of-k metrics (0: none)."""
    temperature: float = 1.0
    """Temperature of the sampled rollouts."""
    tolerance: int = 2
    """Timing tolerance (frames) of the whole-clip event F1."""
    train_steps: int = 0
    """> 0: (re)train the world model for this many steps on --data first (overrides
    --world-model.steps); 0: use the saved one."""
    max_train_episodes: int | None = None
    """Train the world model on at most this many training episodes (None: all)."""
    compare_conditions: bool = False
    """Also train world models reading the action only and nothing (language ablation) with the
    same settings, and evaluate them on the same clips (needs --data and --train-steps)."""
    seeds: int = 1
    """World-model seeds per condition; with > 1 the condition ablation (--compare-conditions)
    is reported as paired differences with intervals over seeds and clips."""
    prompts: int = 0
    """Prompted imagination ("words that steer pictures", :mod:`agents.imagine.steering`): the N most
    frequent training annotation sentences, each teacher-forced into every clip's last context
    slot (0: none; needs --data)."""
    compare_decoding: bool = False
    """Measure the decoding schemes (quality per CPU second) on 1-step predictions."""
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    """World-model settings (used when training)."""
    video_clips: int = 4
    """Clips shown in the video and contact sheet."""
    fps: float = 4.0
    """Video frames per second."""
    scale: int = 4
    """Upscaling of the video frames."""
    video: bool = True
    """Write imagination.mp4 (``--no-video`` to skip)."""
    seed: int = 0
    """Seed of the env resets, the policy and the sampling."""
    threads: int = 0
    """torch CPU threads (0 = the cores this process may use, ``os.sched_getaffinity``)."""

    def __post_init__(self) -> None:
        if (self.data is None) == (self.env is None):
            raise WorldModelError("Give exactly one of --data DIR (a dataset) or --env ENV "
                                  "(play live).")
        for name in ("steps", "context", "clips", "episodes", "video_clips", "scale"):
            if getattr(self, name) < 1:
                raise WorldModelError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}.")
        if self.seeds < 1:
            raise WorldModelError(f"--seeds must be >= 1, got {self.seeds}.")
        if self.prompts and self.data is None:
            raise WorldModelError("--prompts reads its sentences from the training episodes: "
                                  "pass --data DIR.")
        if self.seeds > 1 and not self.train_steps:
            raise WorldModelError("--seeds trains world models: pass --train-steps N too.")
        for name in ("samples", "train_steps", "tolerance", "prompts"):
            if getattr(self, name) < 0:
                raise WorldModelError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}.")
        if self.temperature <= 0 or self.fps <= 0:
            raise WorldModelError("--temperature and --fps must be > 0.")
        if (self.train_steps or self.compare_conditions) and self.data is None:
            raise WorldModelError("Training the world model (--train-steps, --compare-conditions)"
                                  " needs --data DIR.")
        if self.compare_conditions and not self.train_steps:
            raise WorldModelError("--compare-conditions trains the ablation models: pass "
                                  "--train-steps N too.")
        self.out = Path(self.out)


def _discrete_actions(space: dict[str, Any] | Any) -> int:
    n = space.get("n") if isinstance(space, dict) else getattr(space, "n", None)
    kind = space.get("type") if isinstance(space, dict) else type(space).__name__
    if kind != "Discrete" or n is None:
        raise WorldModelError(f"Imagination needs a Discrete action space, this one is {kind}; "
                              "use a dataset or env with discrete actions.")
    return int(n)


def dataset_episodes(agent: Any, data: str, *, max_train: int | None,
                     ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]], int]:
    """(train episodes, validation episodes, n_actions) of a dataset, split as the agent's
    trainer split it (``loader.val_fraction`` / ``loader.split_seed`` of its checkpoint)."""
    from collect.dataset import open_dataset

    ds = open_dataset(data)
    n_actions = _discrete_actions(ds.info.get("action_space") or {})
    train, val = _split(agent, ds, max_train)

    def read(ids: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        eps = [ds.episode(i) for i in ids]
        return [(e.frames, np.asarray(e.actions, np.int64)) for e in eps]

    return read(train), read(val), n_actions


def _split(agent: Any, ds: Any, max_train: int | None) -> tuple[list[int], list[int]]:
    """Training and validation episode ids of ``ds`` as the agent's trainer split them."""
    from collect.dataset import split_episodes

    loader = ((getattr(agent, "metadata", None) or {}).get("config") or {}).get("loader") or {}
    train, val = split_episodes(ds.num_episodes, float(loader.get("val_fraction", 0.2)),
                                int(loader.get("split_seed", 0)))
    return train[:max_train] if max_train is not None else train, val or train[-1:]


def training_prompts(agent: Any, data: str, n: int, max_train: int | None = None) -> list[str]:
    """The ``n`` most frequent annotation sentences of the agent's training episodes (prompts
    for :mod:`agents.imagine.steering`; never read from the validation episodes it is scored on)."""
    from agents.imagine.steering import frequent_sentences
    from collect.dataset import open_dataset

    ds = open_dataset(data)
    train, _ = _split(agent, ds, max_train)
    return frequent_sentences([ds.episode(i).annotations for i in train], n)


def _dataset_env(data: str | None) -> str | None:
    """The env name a dataset was collected from (its ``meta/info.json``), if any."""
    from collect.dataset import open_dataset

    return None if data is None else open_dataset(data).info.get("env")


def play_episodes(cfg: ImagineConfig) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Play ``cfg.episodes`` episodes of ``cfg.env`` with ``cfg.policy`` (context + steps frames
    per clip, enough for ``cfg.clips`` clips in all)."""
    import byog_env
    from collect.policies import make_policy

    env = byog_env.make(cfg.env)
    n_actions = _discrete_actions(env.action_space)
    policy = make_policy(cfg.policy, env, seed=cfg.seed)
    per_ep = -(-cfg.clips // cfg.episodes) * (cfg.context + cfg.steps)
    episodes = []
    try:
        for ep in range(cfg.episodes):
            obs, info = env.reset(seed=cfg.seed + ep)
            policy.reset(obs, info)
            frames, actions = [np.asarray(obs)], []
            for _ in range(per_ep - 1):
                a = int(policy.act(obs, info))
                obs, _, term, trunc, info = env.step(a)
                actions.append(a)
                frames.append(np.asarray(obs))
                if term or trunc:
                    break
            episodes.append((np.stack(frames), np.array(actions + [-1], np.int64)))
    finally:
        env.close()
    return episodes, n_actions


def fit_world_models(agent: Any, wcfg: WorldModelConfig,
                     train_eps: list[tuple[np.ndarray, np.ndarray]], n_actions: int,
                     conditions: list[str], printer: Any = print, progress: bool = False,
                     seeds: int = 1) -> tuple[dict[str, WorldModel], dict[str, Any]]:
    """Stage 2 on a frozen agent: frame tokens (the agent's VQ-VAE, or fitted on the training
    frames), BYOG states read by narrating the training episodes, then one world model per
    condition and seed (same data, same settings); returns the models and the costs.

    The model of ``wcfg.seed`` is keyed by its condition, those of the ``seeds - 1`` following
    seeds by :func:`model_key` (``"action@seed1"``)."""
    frames = [f for f, _ in train_eps]
    costs: dict[str, Any] = {"train_episodes": len(train_eps),
                             "train_frames": int(sum(len(f) for f in frames))}
    t0 = time.perf_counter()
    tokens, info = frame_tokens_for(agent, np.concatenate(frames), wcfg, progress=progress)
    costs.update(info, tokens_wall_s=time.perf_counter() - t0)
    printer(f"frame tokens: {tokens.name}, grid {tokens.grid}, {tokens.vocab} ids "
            f"({costs['tokens_wall_s']:.1f} s)")
    states = None
    if any(CONDITIONS[c].state for c in conditions):
        c0 = time.process_time()
        states, _ = narrator_states(agent, frames, window=wcfg.window_for(agent))
        costs["states_cpu_s"] = time.process_time() - c0
    data = build_transitions(tokens, frames, [a for _, a in train_eps], states)
    costs.update(data.info)
    state_dim = int(states[0].shape[-1]) if states is not None else 0
    models = {}
    for seed, cond in itertools.product(range(wcfg.seed, wcfg.seed + seeds), conditions):
        key = model_key(cond, seed - wcfg.seed)
        wm = WorldModel(replace(wcfg, condition=cond, seed=seed), tokens, n_actions=n_actions,
                        state_dim=state_dim)
        printer(f"training the world model ({key}) for {wcfg.steps} steps on "
                f"{len(data.pairs)} transitions")
        res = train_world_model(wm, data, log_every=max(1, wcfg.steps // 5), printer=printer)
        costs[f"train/{key}"] = {"cpu_s": res["cpu_s"], "wall_s": res["wall_s"],
                                 **{f"final_{k.split('/')[-1]}": float(np.mean(v[-50:]))
                                    for k, v in res["history"].items()}}
        models[key] = wm.eval()
    return models, costs


def decoding_inputs(agent: Any, wm: WorldModel, episodes: list[tuple[np.ndarray, np.ndarray]],
                    max_pairs: int = 64) -> tuple[torch.Tensor, ...]:
    """1-step prediction inputs from real episodes: codes_t, codes_t+1, frames_t+1, states_t,
    actions_t (at most ``max_pairs``, spread evenly)."""
    frames = [f for f, _ in episodes]
    states = narrator_states(agent, frames, window=wm.cfg.window_for(agent))[0] \
        if wm.cfg.conditioning.state else None
    data = build_transitions(wm.tokens, frames, [a for _, a in episodes], states)
    pick = data.pairs[torch.linspace(0, len(data.pairs) - 1, min(max_pairs, len(data.pairs))).long()]
    allf = torch.as_tensor(np.concatenate(frames))
    return (data.codes[pick], data.codes[pick + 1], allf[pick + 1],
            None if data.states is None else data.states[pick], data.actions[pick])


def main(cfg: ImagineConfig) -> dict[str, Any]:
    """Train (optionally) and evaluate the world model; write the outputs; return the metrics."""
    from agents.training.loading import load_agent

    if cfg.threads:  # the CLI resolves 0 to the cores this process may use
        from byog_env.threads import set_threads

        set_threads(cfg.threads, import_torch=True)
    wall0 = time.perf_counter()
    agent = load_agent(cfg.checkpoint)
    wm_path = world_model_dir(cfg.checkpoint)
    train_eps: list = []
    if cfg.data is not None:
        train_eps, eval_eps, n_actions = dataset_episodes(agent, cfg.data,
                                                          max_train=cfg.max_train_episodes)
    else:
        eval_eps, n_actions = play_episodes(cfg)
    costs: dict[str, Any] = {}
    if cfg.train_steps:
        from agents.imagine.grid_tokens import with_family_tile_size

        env_name = cfg.env or _dataset_env(cfg.data)
        cfg.world_model = with_family_tile_size(cfg.world_model, env_name)
        conds = [cfg.world_model.condition]
        if cfg.compare_conditions:
            conds += [c for c in ("state+action", "action", "none") if c not in conds]
        wcfg = replace(cfg.world_model, steps=cfg.train_steps)
        models, costs = fit_world_models(agent, wcfg, train_eps, n_actions, conds, progress=True,
                                         seeds=cfg.seeds)
        wm = models[cfg.world_model.condition]
        wm.save(wm_path, trained_on=str(cfg.data), costs=costs)  # the ablation models are not kept
    else:
        wm = WorldModel.load(wm_path)
        models = {wm.cfg.condition: wm}
        if wm.n_actions != n_actions:
            raise WorldModelError(f"The world model at {wm_path} has {wm.n_actions} actions, this "
                                  f"data has {n_actions}; retrain it with --train-steps N.")
    attach_world_model(agent, wm)
    clips = make_clips(eval_eps, context=cfg.context, horizon=cfg.steps, max_clips=cfg.clips)
    cfg.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    rollouts = None
    for key, m in models.items():
        first_seed = "@" not in key  # later seeds: PSNR for the intervals only
        metrics, r = evaluate(agent, m, clips, samples=cfg.samples if m is wm else 0,
                              temperature=cfg.temperature, tolerance=cfg.tolerance,
                              seed=cfg.seed, narration=first_seed)
        if first_seed:
            results[key] = metrics
        scores[key] = r["scores"]
        if m is wm:
            rollouts = r
    out: dict[str, Any] = {
        "config": _jsonable(asdict(cfg)), "world_model": str(wm_path),
        "metrics": results[wm.cfg.condition], "costs": costs,
    }
    if len(results) > 1:
        out["language_ablation"] = results
    out.update(_studies(cfg, agent, wm, models, scores, clips, eval_eps))
    if cfg.compare_decoding:
        out["decoding"] = compare_decoding(wm, *decoding_inputs(agent, wm, eval_eps))
    written = write_outputs(cfg.out, rollouts, clips=cfg.video_clips, fps=cfg.fps,
                            scale=cfg.scale, video=cfg.video)
    out["wall_s"] = time.perf_counter() - wall0
    out["files"] = written
    (cfg.out / METRICS).write_text(json.dumps(_jsonable(out), indent=2))
    text = report(out)
    (cfg.out / REPORT).write_text(text)
    print(text)
    print(f"wrote {', '.join(str(cfg.out / f) for f in [METRICS, REPORT, *written])} "
          f"in {out['wall_s']:.1f} s")
    return out


def _studies(cfg: ImagineConfig, agent: Any, wm: WorldModel, models: dict[str, WorldModel],
             scores: dict[str, Any], clips: Clips, eval_eps: list) -> dict[str, Any]:
    """Tokenizer day/night report, clip day/night split, seed ablation and steering
    (:mod:`agents.imagine.study`), whichever the run asks for."""
    import byog_env
    from agents.imagine import study as S

    env = cfg.env or _dataset_env(cfg.data)
    try:
        fam = byog_env.family(env) if env else None
    except byog_env.UnknownEnvError:
        fam = None
    daylight = (fam.daylight_at if fam is not None and fam.daylight else None)
    hs = tuple(h for h in (1, 4, 16) if h <= cfg.steps)
    c0 = time.process_time()
    out: dict[str, Any] = {
        "tokenizer": S.tokenizer_report(wm.tokens, eval_eps, daylight),
        "day_night": S.day_night(scores[model_key(wm.cfg.condition, 0)], clips.start,
                                 cfg.context, daylight, hs)}
    if cfg.compare_conditions:
        out["ablation"] = S.ablation(scores, cfg.seeds, hs)
    if cfg.prompts:
        if "state+action" not in models:
            raise WorldModelError("--prompts steers through the narrator's state: train a "
                                  "state+action world model (the default condition).")
        prompts = training_prompts(agent, cfg.data, cfg.prompts, cfg.max_train_episodes)
        out["steering"] = S.steering_study(agent, models, cfg.seeds, clips, prompts,
                                           steps=max(1, min(cfg.steps, cfg.tolerance)),
                                           tolerance=cfg.tolerance)
    out["studies_cpu_s"] = time.process_time() - c0
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point, under the agents CLIs' exit-code policy (:mod:`byog_core.cli`):
    bad input prints one ``error:`` line (exit 2), a failure while running exits 1, Ctrl-C 130."""
    import tyro

    from byog_core.cli import run_cli
    from byog_env.threads import resolve_threads

    def body() -> int:
        cfg = tyro.cli(ImagineConfig, args=argv, description=__doc__.split("\n")[0])
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        main(cfg)
        return 0

    try:
        return run_cli(body, on_interrupt="interrupted; outputs already written are kept.")
    except SystemExit as exit_:  # tyro's --help / its own usage errors
        return int(exit_.code or 0)


if __name__ == "__main__":
    sys.exit(cli())
