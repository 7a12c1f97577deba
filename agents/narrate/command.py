"""Narrate a live environment: ``python -m agents.narrate --env crafter --checkpoint runs/x``.

A policy plays ``--episodes`` episodes of ``--env``; a trained BYOG agent narrates every frame
(:class:`agents.narrate.narration.NarrationWrapper`). The narration streams to the terminal beside the
env's true annotations; ``--out`` receives ``narration.mp4`` (frames enlarged, narration,
forecast and annotations as subtitles), ``narration.jsonl`` (one line per step) and
``summary.json``: event precision/recall/F1 of the narration against the annotations (timing
tolerance ``--tolerance`` frames, a 95% bootstrap interval over episodes), the signed lag of each
narrated event to the nearest true event of its kind (``lag``: p50/p90 of |lag|, the paired
share) and the collapse monitors per time bucket of ``--bucket`` steps (does the language
degenerate as the episode goes on?), plotted against time in ``narration_over_time.png``.

Live vs offline on the same episodes: the very frames narrated live are narrated again
*offline* (non-overlapping training-length windows from frame 0, as the trainer's validation
does) and scored the same way (``offline/...`` keys), so ``live - offline`` reads the cost of
live narration (its bounded, sliding context) apart from the sample of episodes; with
``--steps >= 2 * --drift`` also the paired change of that difference from the first ``--drift``
steps to the last (``drift/...``: does live narration fall behind as the episode goes on?).
Live and offline decoders keep the training targets' slot format (:mod:`agents.model.slot_rule`):
the tokens its carry bound cut and the slots its early exit found ill-formed are reported.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from agents.narrate.narration import (
    NarrationError,
    NarrationWrapper,
    check_frame_shape,
    load_narrating_agent,
)

MP4, JSONL, SUMMARY = "narration.mp4", "narration.jsonl", "summary.json"
PLOT = "narration_over_time.png"
LAG_WINDOW = 16  # frames: a narrated event pairs with the nearest true event this close
EMPTY = "–"  # printed for a value a bucket does not have (no true event: no F1)


@dataclass
class NarrateConfig:
    """Settings of one live narration run (saved in ``summary.json``)."""

    checkpoint: str
    """Run directory of ``python -m agents.training`` (its newest checkpoint), a checkpoint
    directory, or a ``save_pretrained`` directory. (required)"""
    env: str = "crafter"
    """Environment name for ``byog_env.make`` (``crafter``, ``babyai-gotolocal``, ...)."""
    policy: str = "random"
    """Policy that plays: ``random``, ``crafter-scripted``, ``babyai-bot``, ``sb3:<path.zip>``,
    ``mixed:<policy>:<eps>``."""
    steps: int = 300
    """Most environment steps per episode (fewer when the episode ends first)."""
    episodes: int = 1
    """Number of episodes; episode i is reset with seed ``seed + i``."""
    seed: int = 0
    """Seed of the env resets, the policy and the narration sampling."""
    greedy: bool = False
    """Argmax narration instead of sampling."""
    temperature: float = 1.0
    """Sampling temperature of the narration (ignored with ``--greedy``)."""
    top_k: int | None = None
    """Sample among the k most likely tokens only (None = all)."""
    forecast: int = 0
    """Frames of future narration the predictor forecasts each step (0 = none)."""
    window: int | None = None
    """Context window in frames; memory stays bounded by it on long episodes (None = the
    checkpoint's training window: a longer context is one the model never saw)."""
    keep: int | None = None
    """Frames re-encoded when the window slides (None = window // 2)."""
    out: Path = Path("runs/narration")
    """Output directory for narration.mp4, narration.jsonl and summary.json."""
    tolerance: int = 2
    """Timing tolerance (frames) of the event agreement with the annotations."""
    bucket: int = 50
    """Steps per time bucket of the monitors."""
    scale: int = 4
    """Upscaling factor of the frames in the video."""
    fps: float = 10.0
    """Frames per second of the video."""
    video: bool = True
    """Write narration.mp4 (``--no-video`` to skip)."""
    quiet: bool = False
    """Do not stream the narration to the terminal."""
    device: str = "cpu"
    """Torch device of the agent."""
    num_envs: int = 1
    """Envs played side by side and narrated by ONE batched decode per step
    (:class:`agents.narrate.vector_narration.VectorNarrator`); env i plays episodes i, i+N, ...
    (episode j still reset with seed ``seed + j``). 1 = the single-env wrapper."""
    threads: int = 0
    """torch CPU threads (0 = the cores this process may use, ``os.sched_getaffinity``)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``fp32`` or ``bf16``: narrate under ``torch.autocast`` in bf16 (the observation encoder,
    projector, window re-encodes' inputs and logits; the per-token decode path stays in the
    weights' dtype, see agents.model.accel)."""
    compile: bool = False
    """``torch.compile`` the observation encoder and the encoder's teacher-forced forward (the
    per-token decode stays the hand-fused CPU path)."""
    cut: bool = True
    """End a narrated sentence that runs on past the training targets' carry bound (``--no-cut``
    narrates without it; agents.model.slot_rule)."""
    early_exit: bool = True
    """After a slot's first ``<nil>`` write ``<nil>`` and fill the rest of the slot in one pass
    (``--no-early-exit``: decode every position)."""
    offline: bool = True
    """Also narrate the same frames offline (training-length windows) and report live - offline
    (``--no-offline`` to skip)."""
    stream: bool = False
    """Narrate ``--steps`` per episode as one stream: when the env's episode ends first, the
    next one starts (a new seed) and the narrator goes on with its context, not reset (long-run
    narration where the player dies early). Single env only."""
    drift: int = 500
    """Steps of the early span (from step 0) and the late span (the last ``drift`` of
    ``--steps``) whose paired live - offline F1 change is reported when ``--steps >= 2 * drift``."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise NarrationError(f"--threads must be >= 0 (0 = the cores this process may use), "
                                 f"got {self.threads}.")
        if self.precision not in ("fp32", "bf16"):
            raise NarrationError(f"--precision must be fp32 or bf16, got {self.precision!r}.")
        for name in ("steps", "episodes", "bucket", "scale", "num_envs", "drift"):
            if getattr(self, name) < 1:
                raise NarrationError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.tolerance < 0:
            raise NarrationError(f"--tolerance must be >= 0 frames, got {self.tolerance}.")
        if self.stream and self.num_envs > 1:
            raise NarrationError("--stream narrates one env (its episodes as one stream); pass "
                                 "--num-envs 1.")
        if self.fps <= 0:
            raise NarrationError(f"--fps must be > 0, got {self.fps}.")
        self.out = Path(self.out)


@dataclass
class EpisodeLog:
    """What one narrated episode recorded, step by step."""

    frames: list[np.ndarray] = field(default_factory=list)
    ids: list[np.ndarray] = field(default_factory=list)  # int64 [k] per step
    entropy: list[float] = field(default_factory=list)
    annotations: list[list[str]] = field(default_factory=list)
    narration: list[str] = field(default_factory=list)
    forecast: list[list[str]] = field(default_factory=list)
    annotated: bool = False  # the env put ``annotations`` in info
    cut: int = 0  # word tokens the carry bound cut (agents.model.slot_rule)
    ill_formed: int = 0  # slots where the early exit wrote <nil> over a word
    resets: int = 0  # --stream: env episodes that ended and were followed by the next


# --------------------------------------------------------------------------- the loop


def run_episodes(cfg: NarrateConfig, env: NarrationWrapper, policy: Any, printer: Any,
                 jsonl: Any) -> tuple[list[EpisodeLog], float]:
    """Play and narrate; returns the logs and the seconds spent narrating. With ``--stream`` an
    episode that ends before ``--steps`` is followed by the next (seed ``seed + episodes *
    (resets + 1) + episode``) in the same log, the narrator keeping its context."""
    logs: list[EpisodeLog] = []
    narrate_s = 0.0
    for ep in range(cfg.episodes):
        log = EpisodeLog()
        t0 = time.perf_counter()
        obs, info = env.reset(seed=cfg.seed + ep)
        narrate_s += time.perf_counter() - t0
        policy.reset(obs, info)
        step = 0
        _record(cfg, log, ep, step, obs, info, printer, jsonl)
        while step < cfg.steps:
            action = policy.act(obs, info)
            t0 = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            narrate_s += time.perf_counter() - t0
            step += 1
            _record(cfg, log, ep, step, obs, info, printer, jsonl)
            if not (terminated or truncated):
                continue
            if not cfg.stream or step == cfg.steps:
                break
            log.resets += 1
            t0 = time.perf_counter()
            obs, info = env.reset_env(seed=cfg.seed + cfg.episodes * log.resets + ep)
            narrate_s += time.perf_counter() - t0
            policy.reset(obs, info)
            step += 1
            _record(cfg, log, ep, step, obs, info, printer, jsonl)
        logs.append(log)
    return logs, narrate_s


def run_episodes_vector(cfg: NarrateConfig, agent: Any, envs: list[gym.Env], policies: list[Any],
                        printer: Any, jsonl: Any) -> tuple[list[EpisodeLog], float]:
    """:func:`run_episodes` with ``len(envs)`` envs narrated by one batched decode per step.

    An env that finished its episode takes the next one not yet played; once none is left it
    idles (its last frame is narrated again, not recorded) until every env is done."""
    from agents.narrate.vector_narration import VectorNarrator

    N = len(envs)
    vec = VectorNarrator(agent, num_envs=N, window=cfg.window, keep=cfg.keep,
                         forecast=cfg.forecast, greedy=cfg.greedy, temperature=cfg.temperature,
                         top_k=cfg.top_k, seed=cfg.seed, cut=cfg.cut, early_exit=cfg.early_exit)
    vec.reset(cfg.seed)
    logs = [EpisodeLog() for _ in range(cfg.episodes)]
    episode, step = [-1] * N, [0] * N
    obs: list[Any] = [None] * N
    info: list[dict] = [{}] * N
    finished, next_ep, narrate_s = [True] * N, 0, 0.0
    while True:
        t0 = time.perf_counter()
        starts, record = np.zeros(N, bool), np.zeros(N, bool)
        for i in range(N):
            if finished[i] and next_ep < cfg.episodes:  # the env's next episode
                episode[i], step[i], next_ep = next_ep, 0, next_ep + 1
                obs[i], info[i] = envs[i].reset(seed=cfg.seed + episode[i])
                policies[i].reset(obs[i], info[i])
                starts[i], record[i], finished[i] = True, True, False
            elif not finished[i]:
                obs[i], _, term, trunc, info[i] = envs[i].step(policies[i].act(obs[i], info[i]))
                step[i] += 1
                record[i], finished[i] = True, bool(term or trunc) or step[i] == cfg.steps
        if not record.any():
            break
        out = vec.step(np.stack(obs), starts=starts)
        narrate_s += time.perf_counter() - t0
        for i in np.flatnonzero(record):
            narrated = dict(info[i], narration=out.text[i], narration_tokens=out.ids[i].numpy(),
                            narration_entropy=float(out.entropy[i]), forecast=out.forecast[i],
                            narration_cut=int(out.cut[i]),
                            narration_ill_formed=bool(out.ill_formed[i]),
                            forecast_tokens=out.forecast_ids[i].numpy())
            _record(cfg, logs[episode[i]], episode[i], step[i], obs[i], narrated, printer, jsonl)
    return logs, narrate_s


def _record(cfg: NarrateConfig, log: EpisodeLog, ep: int, step: int, obs: np.ndarray,
            info: dict[str, Any], printer: Any, jsonl: Any) -> None:
    ann = [str(s) for s in info.get("annotations", [])]
    log.annotated |= "annotations" in info
    log.frames.append(np.asarray(obs))
    log.ids.append(info["narration_tokens"])
    log.entropy.append(info["narration_entropy"])
    log.annotations.append(ann)
    log.narration.append(info["narration"])
    log.cut += int(info.get("narration_cut", 0))
    log.ill_formed += int(info.get("narration_ill_formed", False))
    line: dict[str, Any] = {"episode": ep, "step": step, "narration": info["narration"],
                            "narration_tokens": info["narration_tokens"].tolist(),
                            "annotations": ann}
    if cfg.forecast:
        log.forecast.append(list(info["forecast"]))
        line["forecast"] = list(info["forecast"])
    jsonl.write(json.dumps(line) + "\n")
    jsonl.flush()
    printer(ep, step, info["narration"], ann, line.get("forecast"))


def make_printer(cfg: NarrateConfig, console: Any):
    """A function printing one step (narration beside the true annotations) with rich."""
    from rich.text import Text

    def show(ep: int, step: int, narration: str, ann: list[str], forecast: list[str] | None) -> None:
        if cfg.quiet or not (narration or ann):
            return  # all-<nil> frames without events stay silent
        row = Text(f"{ep}:{step:>5} ", style="dim")
        row.append(f"{narration or '·':<40.40}", style="bold cyan")
        row.append(" │ ", style="dim")
        row.append("; ".join(ann) or "·", style="green")
        if forecast:
            row.append("  ⇢ " + " / ".join(f or "·" for f in forecast), style="magenta")
        console.print(row)

    return show


# --------------------------------------------------------------------------- outputs


def video_subtitles(log: EpisodeLog, hold: int = 8) -> list[list[str]]:
    """Per frame: held narration lines, the forecast and the true annotations."""
    from collect.video import hold_subtitles

    narr = hold_subtitles([[f"> {n}"] if n else [] for n in log.narration], hold=hold, max_lines=2)
    truth = hold_subtitles([["true: " + "; ".join(a)] if a else [] for a in log.annotations],
                           hold=hold, max_lines=1)
    out = []
    for t in range(len(log.frames)):
        lines = list(narr[t])
        if log.forecast:
            lines.append("next: " + " / ".join(f or "-" for f in log.forecast[t]))
        out.append(lines + list(truth[t]))
    return out


def offline_narration(cfg: NarrateConfig, agent: Any, logs: list[EpisodeLog],
                      batch: int = 32) -> tuple[list[np.ndarray], dict[str, int], int]:
    """The recorded frames narrated offline, as the trainer's validation narrates: each
    episode cut into non-overlapping windows of the checkpoint's training length from frame 0
    (each window carrying the frame before it; an episode's first frame at its start), the
    windows narrated ``batch`` at a time with the live run's sampling settings and slot rule.

    Returns:
        (ids int64 [T, k] per episode, slot counts ``cut_tokens``/``ill_formed_slots``, window).
    """
    from agents.narrate.narrator import training_window
    from agents.model.slot_rule import narration_rule

    W = training_window(agent)
    device = next(agent.parameters()).device
    pieces = [(e, s) for e, lg in enumerate(logs) for s in range(0, len(lg.frames), W)]
    out = [np.zeros((len(lg.frames), agent.encoder.k), np.int64) for lg in logs]
    rule = narration_rule(agent, cut=cfg.cut, early_exit=cfg.early_exit)
    counts = {"cut_tokens": 0, "ill_formed_slots": 0}
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    for b in range(0, len(pieces), batch):
        part = pieces[b:b + batch]
        shape = logs[0].frames[0].shape
        frames = np.zeros((len(part), W, *shape), np.uint8)
        prev = np.zeros((len(part), *shape), np.uint8)
        valid = np.zeros((len(part), W), bool)
        for r, (e, s) in enumerate(part):
            clip = np.stack(logs[e].frames[s:s + W])
            frames[r, :len(clip)], valid[r, :len(clip)] = clip, True
            prev[r] = logs[e].frames[max(s - 1, 0)]
        track = None if rule is None else rule.start(len(part), device)
        with torch.no_grad():
            e_ = agent.encoder.frame_embeddings(
                torch.as_tensor(frames, device=device), torch.as_tensor(valid, device=device),
                prev_frame=torch.as_tensor(prev, device=device))
            ids, _ = agent.encoder.sample(e_, greedy=cfg.greedy, temperature=cfg.temperature,
                                          top_k=cfg.top_k or 0, generator=gen, rule=rule,
                                          track=track)  # [n, W, k]
        ids = ids.cpu().numpy()
        for r, (e, s) in enumerate(part):
            n = int(valid[r].sum())
            out[e][s:s + n] = ids[r, :n]
        if track is not None:  # padded frames after an episode's end are not counted
            counts["cut_tokens"] += int(track.cut.sum())
            counts["ill_formed_slots"] += int(track.ill_formed.sum())
    return out, counts, W


def _arm(cfg: NarrateConfig, ids: list[np.ndarray], logs: list[EpisodeLog], tokenizer: Any,
         has_annotations: bool) -> dict[str, Any]:
    """One arm's (live or offline) scores over the episodes: pooled events with a 95% interval
    over episodes, the lag summary, the monitors overall and per bucket, and per episode the
    sentences (for the paired statistics)."""
    from agents.model import monitors as M
    from agents.model.text import special_ids, unslot

    sp = special_ids(tokenizer)
    eps = [(torch.as_tensor(i), lg.annotations, lg.entropy) for i, lg in zip(ids, logs)]
    said = [unslot(e[0], tokenizer) for e in eps]

    def monitors(parts: list[tuple], words: list[list[list[str]]]) -> dict[str, float]:
        """Collapse monitors, event P/R/F1 and |lag| over (ids [n, k], true, entropy) pieces."""
        n = max(p[0].shape[0] for p in parts)
        k = parts[0][0].shape[1]
        pid = torch.full((len(parts), n, k), sp.pad, dtype=torch.long)
        valid = torch.zeros(len(parts), n, dtype=torch.bool)
        for i, p in enumerate(parts):
            pid[i, : p[0].shape[0]] = p[0]
            valid[i, : p[0].shape[0]] = True
        ann = [list(p[1]) + [[]] * (n - len(p[1])) for p in parts] if has_annotations else None
        m = M.narration_metrics(pid, tokenizer, valid, annotations=ann, tolerance=cfg.tolerance)
        out = {f"narration/{key}": m[key] for key in ("distinct_1", "distinct_2", "nil_rate")}
        ent = [e for p in parts for e in p[2]]  # the narrator's per-step entropy
        out["narration/entropy"] = float(np.mean(ent)) if ent else float("nan")
        if has_annotations:
            out.update({f"events/{key}": m[f"event_{key}"] for key in ("precision", "recall", "f1")})
            lags = [M.event_lags(w, p[1], LAG_WINDOW) for w, p in zip(words, parts)]
            out["lag/abs_p50"] = M.lag_summary([x for lg, _ in lags for x in lg],
                                               sum(n for _, n in lags))["abs_p50"]
        return out

    per_ep = [M.bucketed(lambda *x: x, *ep, w, bucket=cfg.bucket) for ep, w in zip(eps, said)]
    buckets = []
    for i in range(max(len(b) for b in per_ep)):
        parts = [b[i] for b in per_ep if i < len(b)]
        buckets.append({"start_step": i * cfg.bucket, "episodes": len(parts),
                        **monitors([p[:3] for p in parts], [p[3] for p in parts])})
    arm: dict[str, Any] = {"monitors": monitors(eps, said), "buckets": buckets, "said": said,
                           "events": None, "lag": None}
    if has_annotations:
        per = [M.event_prf(w, lg.annotations, tolerance=cfg.tolerance) for w, lg in zip(said, logs)]
        prf = M.combine_prf(per)
        arm["events"] = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in prf.items()}
        arm["events"]["f1_ci"] = list(M.bootstrap_ci(lambda ix: M.pooled_f1([per[i] for i in ix]),
                                                     len(per), seed=cfg.seed))
        arm["per_episode"] = per
        lags = [M.event_lags(w, lg.annotations, LAG_WINDOW) for w, lg in zip(said, logs)]
        arm["lag"] = {**M.lag_summary([x for lg, _ in lags for x in lg], sum(n for _, n in lags)),
                      "window": LAG_WINDOW}
    return arm


def span_prf(said: list[list[str]], true: list[list[str]], a: int, b: int,
             tolerance: int) -> dict[str, float] | None:
    """Event counts of one episode's steps ``[a, b)`` (None when the episode ends before b)."""
    from agents.model import monitors as M

    if len(true) < b:
        return None
    return M.event_prf(said[a:b], true[a:b], tolerance=tolerance)


def drift_summary(cfg: NarrateConfig, live: dict[str, Any], off: dict[str, Any],
                  logs: list[EpisodeLog]) -> dict[str, Any] | None:
    """Paired change of (live - offline) F1 from the first ``drift`` steps to the last ``drift``
    of ``--steps``, pooled over the episodes that reach the late span, with a 95% bootstrap
    interval over those episodes (None when ``--steps < 2 * drift`` or no episode lasts)."""
    from agents.model import monitors as M

    d, n = cfg.drift, cfg.steps
    if n < 2 * d:
        return None
    spans = {"early": (0, d), "late": (n - d, n)}
    cells = []  # per lasting episode: {(arm, span): counts}
    for e, lg in enumerate(logs):
        c = {(arm, k): span_prf(src["said"][e], lg.annotations, a, b, cfg.tolerance)
             for arm, src in (("live", live), ("offline", off)) for k, (a, b) in spans.items()}
        if all(v is not None for v in c.values()):
            cells.append(c)
    if not cells:
        return None

    def change(ix: list[int]) -> float:
        f = {key: M.pooled_f1([cells[i][key] for i in ix]) for key in cells[0]}
        return ((f["live", "late"] - f["offline", "late"])
                - (f["live", "early"] - f["offline", "early"]))

    whole = list(range(len(cells)))
    f = {f"{arm}/{k}_f1": M.pooled_f1([c[arm, k] for c in cells])
         for arm in ("live", "offline") for k in spans}
    return {"early_steps": list(spans["early"]), "late_steps": list(spans["late"]),
            "episodes": len(cells), **f, "f1_change": change(whole),
            "f1_change_ci": list(M.bootstrap_ci(change, len(cells), seed=cfg.seed))}


def summarize(cfg: NarrateConfig, logs: list[EpisodeLog], tokenizer: Any, narrate_s: float,
              has_annotations: bool, offline: tuple | None = None) -> dict[str, Any]:
    """Event agreement with the annotations, event lags and the collapse monitors, overall and
    per bucket; with ``offline`` (:func:`offline_narration`'s result) the same for the offline
    narration of the same frames (``offline/...``), live - offline and the drift."""
    from agents.model import monitors as M

    live = _arm(cfg, [np.stack(lg.ids) for lg in logs], logs, tokenizer, has_annotations)
    frames = sum(len(lg.frames) for lg in logs)
    out = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "episodes": len(logs), "frames": frames,
        "episode_lengths": [len(lg.frames) for lg in logs],
        "stream_resets": [lg.resets for lg in logs] if cfg.stream else None,
        "narration_fps": frames / narrate_s if narrate_s > 0 else float("nan"),
        "events": live["events"], "lag": live["lag"], "tolerance": cfg.tolerance,
        "slots": {"cut_tokens": sum(lg.cut for lg in logs),
                  "ill_formed_slots": sum(lg.ill_formed for lg in logs), "frames": frames},
        "monitors": live["monitors"], "bucket": cfg.bucket, "buckets": live["buckets"],
        "files": {"video": MP4 if cfg.video else None, "jsonl": JSONL, "plot": PLOT},
    }
    if offline is None:
        return out
    ids, counts, window = offline
    off = _arm(cfg, ids, logs, tokenizer, has_annotations)
    out.update({"offline/window": window, "offline/events": off["events"],
                "offline/lag": off["lag"], "offline/monitors": off["monitors"],
                "offline/slots": {**counts, "frames": frames}})
    for b, ob in zip(out["buckets"], off["buckets"]):
        b.update({f"offline/{k}": v for k, v in ob.items() if k not in ("start_step", "episodes")})
    if has_annotations:
        per_l, per_o = live["per_episode"], off["per_episode"]
        out["live_minus_offline/f1"] = live["events"]["f1"] - off["events"]["f1"]
        out["live_minus_offline/f1_ci"] = list(M.bootstrap_ci(
            lambda ix: M.pooled_f1([per_l[i] for i in ix]) - M.pooled_f1([per_o[i] for i in ix]),
            len(logs), seed=cfg.seed))
        out["drift"] = drift_summary(cfg, live, off, logs)
    return out


def _fmt(x: Any, spec: str = ".3f") -> str:
    """A number for the tables; ``–`` for a value that is not there (a bucket without events)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return EMPTY
    return format(x, spec)


def _ci(ci: Any) -> str:
    return EMPTY if not ci or any(v is None for v in ci) else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def print_summary(summary: dict[str, Any], console: Any) -> None:
    """The agreement (live, offline, live - offline) and the per-bucket monitors as rich
    tables; a value a bucket does not have prints as ``–``."""
    from rich.table import Table

    ev = summary["events"]
    if ev is None:
        console.print("This env gives no annotations: no agreement to report.")
    else:
        table = Table(title=f"Agreement with the annotations (±{summary['tolerance']} frames; "
                            f"lag: nearest true event of the kind within ±{LAG_WINDOW})")
        for col in ("", "F1", "95% CI", "precision", "recall", "|lag| p50", "|lag| p90",
                    "paired", "cut tokens", "ill-formed slots"):
            table.add_column(col, justify="right")
        arms = [("live", ev, summary["lag"], summary["slots"])]
        if summary.get("offline/events") is not None:
            arms.append(("offline", summary["offline/events"], summary["offline/lag"],
                         summary["offline/slots"]))
        for name, e, lag, sl in arms:
            table.add_row(name, _fmt(e["f1"]), _ci(e.get("f1_ci")), _fmt(e["precision"]),
                          _fmt(e["recall"]), _fmt(lag["abs_p50"], ".1f"), _fmt(lag["abs_p90"], ".1f"),
                          _fmt(lag["paired_share"], ".0%"), str(sl["cut_tokens"]),
                          str(sl["ill_formed_slots"]))
        if "live_minus_offline/f1" in summary:
            table.add_row("live − offline", _fmt(summary["live_minus_offline/f1"], "+.3f"),
                          _ci(summary["live_minus_offline/f1_ci"]), *[""] * 7)
        console.print(table)
        d = summary.get("drift")
        if d:
            console.print(f"Drift: (live − offline) F1 change from steps {d['early_steps'][0]}–"
                          f"{d['early_steps'][1]} to {d['late_steps'][0]}–{d['late_steps'][1]} "
                          f"over {d['episodes']} episode(s): {_fmt(d['f1_change'], '+.3f')} "
                          f"(95% CI {_ci(d['f1_change_ci'])})")
    table = Table(title=f"Monitors per {summary['bucket']}-step bucket (offline in brackets)")
    keys = [k for k in summary["buckets"][0]
            if k not in ("start_step", "episodes") and not k.startswith("offline/")]
    table.add_column("steps")
    for k in keys:
        table.add_column(k.split("/")[-1] if k.startswith("narration/") else k, justify="right")
    for b in summary["buckets"]:
        cells = []
        for k in keys:
            cell = _fmt(b[k], ".1f" if k.startswith("lag/") else ".3f")
            if f"offline/{k}" in b:
                cell += f" ({_fmt(b[f'offline/{k}'], '.1f' if k.startswith('lag/') else '.3f')})"
            cells.append(cell)
        table.add_row(f"{b['start_step']}-", *cells)
    console.print(table)
    console.print(f"{summary['frames']} frames narrated at {_fmt(summary['narration_fps'], '.1f')} "
                  "frames/s (env step + narration)")


def plot_over_time(summary: dict[str, Any], path: Path) -> Path:
    """Per-bucket F1, distinct-1/2, ``<nil>`` rate and |lag| p50 against time (live solid,
    offline dashed) -> ``path`` (png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = summary["buckets"]
    x = [r["start_step"] + summary["bucket"] / 2 for r in b]
    panels = [("event F1", ["events/f1"]), ("distinct-n", ["narration/distinct_1", "narration/distinct_2"]),
              ("<nil> rate", ["narration/nil_rate"]), ("|lag| p50 (frames)", ["lag/abs_p50"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            for pre, style in (("", "-"), ("offline/", "--")):
                ys = [r.get(pre + key) for r in b]
                if any(y is not None for y in ys):
                    ax.plot(x, [np.nan if y is None else y for y in ys], style, marker=".",
                            label=f"{pre or 'live/'}{key.split('/')[-1]}")
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:  # a panel with no value at all has no legend
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _finite(x: Any) -> Any:
    """NaN/inf -> None, so summary.json is strict JSON."""
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


# --------------------------------------------------------------------------- entry points


def main(cfg: NarrateConfig) -> dict[str, Any]:
    """Run the narration, write the outputs, print and return the summary."""
    from rich.console import Console

    import byog_env
    from agents.model.accel import autocast, compile_agent
    from agents.training.checkpoint import check_trained_env
    from byog_env.threads import set_threads
    from collect.policies import make_policy
    from collect.video import write_video

    if cfg.threads:  # the CLI resolves 0 to the cores this process may use
        set_threads(cfg.threads, import_torch=True)
    console = Console(highlight=False)
    agent = load_narrating_agent(cfg.checkpoint, device=cfg.device)
    base = byog_env.make(cfg.env)
    check_trained_env(agent, base, name=cfg.env)  # same frame size, other env: warn
    if cfg.num_envs > 1:  # more envs of the same kind, each with its own policy
        envs = [base] + [byog_env.make(cfg.env) for _ in range(cfg.num_envs - 1)]
        check_frame_shape(getattr(agent, "frame_shape", None), base.observation_space.shape)
        policies = [make_policy(cfg.policy, e, seed=cfg.seed + i) for i, e in enumerate(envs)]
    else:
        env = NarrationWrapper(base, agent, window=cfg.window, keep=cfg.keep,
                               forecast=cfg.forecast, greedy=cfg.greedy,
                               temperature=cfg.temperature, top_k=cfg.top_k, cut=cfg.cut,
                               early_exit=cfg.early_exit)
        policy = make_policy(cfg.policy, base, seed=cfg.seed)
        envs = [env]
    cfg.out.mkdir(parents=True, exist_ok=True)
    console.print(f"Narrating {cfg.episodes} episode(s) of {cfg.env!r} played by {cfg.policy!r} "
                  f"(checkpoint {cfg.checkpoint}); [cyan]narration[/] │ [green]true annotations[/]")
    printer = make_printer(cfg, console)
    if cfg.compile:
        compile_agent(agent)
    try:
        with open(cfg.out / JSONL, "w") as jsonl, autocast(cfg.precision, cfg.device):
            if cfg.num_envs > 1:
                logs, narrate_s = run_episodes_vector(cfg, agent, envs, policies, printer, jsonl)
            else:
                logs, narrate_s = run_episodes(cfg, env, policy, printer, jsonl)
    finally:
        for e in envs:
            e.close()
    offline = None
    if cfg.offline:
        with autocast(cfg.precision, cfg.device):
            offline = offline_narration(cfg, agent, logs)
    summary = summarize(cfg, logs, agent.tokenizer, narrate_s,
                        has_annotations=any(lg.annotated for lg in logs), offline=offline)
    if cfg.video:
        frames = [f for lg in logs for f in lg.frames]
        subs = [s for lg in logs for s in video_subtitles(lg)]
        write_video(cfg.out / MP4, frames, subs, scale=cfg.scale, fps=cfg.fps, band_lines=4)
    summary = _finite(summary)
    (cfg.out / SUMMARY).write_text(json.dumps(summary, indent=2))
    plot_over_time(summary, cfg.out / PLOT)
    print_summary(summary, console)
    console.print(f"Wrote {cfg.out / JSONL}, {cfg.out / SUMMARY}, {cfg.out / PLOT}"
                  + (f" and the video {cfg.out / MP4}" if cfg.video else ""))
    return summary


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (``byog-narrate``): 0 done, 2 bad input, 1 runtime failure,
    130 interrupted; errors are one ``error:`` line, no traceback."""
    import tyro

    from byog_core.cli import run_cli
    from byog_env.threads import resolve_threads

    def body() -> int:
        try:
            cfg = tyro.cli(NarrateConfig, args=argv, description=__doc__.split("\n")[0])
        except SystemExit as exit_:  # --help, or tyro's own one-message parse/validation error
            return int(exit_.code or 0)
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        main(cfg)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(cli())
