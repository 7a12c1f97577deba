"""Narrate a live environment: ``python -m agents.narrate --env crafter --checkpoint runs/x``.

A policy plays ``--episodes`` episodes of ``--env``; a trained BYOG agent narrates every frame
(:class:`agents.narration.NarrationWrapper`). The narration streams to the terminal beside the
env's true annotations; ``--out`` receives ``narration.mp4`` (frames enlarged, narration,
forecast and annotations as subtitles), ``narration.jsonl`` (one line per step) and
``summary.json``: event precision/recall/F1 of the narration against the annotations (timing
tolerance ``--tolerance`` frames) and the collapse monitors per time bucket of ``--bucket`` steps
(does the language degenerate as the episode goes on?).
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

from agents.narration import (
    NarrationError,
    NarrationWrapper,
    check_frame_shape,
    load_narrating_agent,
)

MP4, JSONL, SUMMARY = "narration.mp4", "narration.jsonl", "summary.json"


@dataclass
class NarrateConfig:
    """Settings of one live narration run (saved in ``summary.json``)."""

    checkpoint: str
    """Run directory of ``python -m agents.train`` (its newest checkpoint), a checkpoint
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
    (:class:`agents.vector_narration.VectorNarrator`); env i plays episodes i, i+N, ...
    (episode j still reset with seed ``seed + j``). 1 = the single-env wrapper."""
    threads: int = 0
    """torch CPU threads (0 = the cores this process may use, ``os.sched_getaffinity``)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``fp32`` or ``bf16``: narrate under ``torch.autocast`` in bf16 (the observation encoder,
    projector, window re-encodes' inputs and logits; the per-token decode path stays in the
    weights' dtype, see agents.accel)."""
    compile: bool = False
    """``torch.compile`` the observation encoder and the encoder's teacher-forced forward (the
    per-token decode stays the hand-fused CPU path)."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise NarrationError(f"--threads must be >= 0 (0 = the cores this process may use), "
                                 f"got {self.threads}.")
        if self.precision not in ("fp32", "bf16"):
            raise NarrationError(f"--precision must be fp32 or bf16, got {self.precision!r}.")
        for name in ("steps", "episodes", "bucket", "scale", "num_envs"):
            if getattr(self, name) < 1:
                raise NarrationError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        if self.tolerance < 0:
            raise NarrationError(f"--tolerance must be >= 0 frames, got {self.tolerance}.")
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


# --------------------------------------------------------------------------- the loop


def run_episodes(cfg: NarrateConfig, env: NarrationWrapper, policy: Any, printer: Any,
                 jsonl: Any) -> tuple[list[EpisodeLog], float]:
    """Play and narrate; returns the logs and the seconds spent narrating."""
    logs: list[EpisodeLog] = []
    narrate_s = 0.0
    for ep in range(cfg.episodes):
        log = EpisodeLog()
        t0 = time.perf_counter()
        obs, info = env.reset(seed=cfg.seed + ep)
        narrate_s += time.perf_counter() - t0
        policy.reset(obs, info)
        for step in range(cfg.steps + 1):
            _record(cfg, log, ep, step, obs, info, printer, jsonl)
            if step == cfg.steps:
                break
            action = policy.act(obs, info)
            t0 = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            narrate_s += time.perf_counter() - t0
            if terminated or truncated:
                _record(cfg, log, ep, step + 1, obs, info, printer, jsonl)
                break
        logs.append(log)
    return logs, narrate_s


def run_episodes_vector(cfg: NarrateConfig, agent: Any, envs: list[gym.Env], policies: list[Any],
                        printer: Any, jsonl: Any) -> tuple[list[EpisodeLog], float]:
    """:func:`run_episodes` with ``len(envs)`` envs narrated by one batched decode per step.

    An env that finished its episode takes the next one not yet played; once none is left it
    idles (its last frame is narrated again, not recorded) until every env is done."""
    from agents.vector_narration import VectorNarrator

    N = len(envs)
    vec = VectorNarrator(agent, num_envs=N, window=cfg.window, keep=cfg.keep,
                         forecast=cfg.forecast, greedy=cfg.greedy, temperature=cfg.temperature,
                         top_k=cfg.top_k, seed=cfg.seed)
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


def summarize(cfg: NarrateConfig, logs: list[EpisodeLog], tokenizer: Any, narrate_s: float,
              has_annotations: bool) -> dict[str, Any]:
    """Event agreement with the annotations and the collapse monitors, overall and per bucket."""
    from agents import monitors as M
    from agents.text import special_ids, unslot

    sp = special_ids(tokenizer)
    eps = [(torch.as_tensor(np.stack(lg.ids)), lg.annotations, lg.entropy) for lg in logs]

    def monitors(parts: list[tuple]) -> dict[str, float]:
        """Collapse monitors and event P/R/F1 over (ids [n, k], true, entropy) pieces."""
        n = max(p[0].shape[0] for p in parts)
        k = parts[0][0].shape[1]
        ids = torch.full((len(parts), n, k), sp.pad, dtype=torch.long)
        valid = torch.zeros(len(parts), n, dtype=torch.bool)
        for i, p in enumerate(parts):
            ids[i, : p[0].shape[0]] = p[0]
            valid[i, : p[0].shape[0]] = True
        ann = [list(p[1]) + [[]] * (n - len(p[1])) for p in parts] if has_annotations else None
        m = M.narration_metrics(ids, tokenizer, valid, annotations=ann, tolerance=cfg.tolerance)
        out = {f"narration/{key}": m[key] for key in ("distinct_1", "distinct_2", "nil_rate")}
        ent = [e for p in parts for e in p[2]]  # the narrator's per-step entropy
        out["narration/entropy"] = float(np.mean(ent)) if ent else float("nan")
        if has_annotations:
            out.update({f"events/{key}": m[f"event_{key}"] for key in ("precision", "recall", "f1")})
        return out

    per_ep = [M.bucketed(lambda *x: x, *ep, bucket=cfg.bucket) for ep in eps]
    n_buckets = max(len(b) for b in per_ep)
    buckets = []
    for i in range(n_buckets):
        parts = [b[i] for b in per_ep if i < len(b)]
        buckets.append({"start_step": i * cfg.bucket, "episodes": len(parts), **monitors(parts)})
    events = None
    if has_annotations:
        prf = M.combine_prf(M.event_prf(unslot(e[0], tokenizer), e[1], tolerance=cfg.tolerance)
                            for e in eps)
        events = {k: (float(v) if isinstance(v, float) else int(v)) for k, v in prf.items()}
    frames = sum(len(lg.frames) for lg in logs)
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "episodes": len(logs), "frames": frames,
        "episode_lengths": [len(lg.frames) for lg in logs],
        "narration_fps": frames / narrate_s if narrate_s > 0 else float("nan"),
        "events": events, "tolerance": cfg.tolerance,
        "monitors": monitors(eps), "bucket": cfg.bucket, "buckets": buckets,
        "files": {"video": MP4 if cfg.video else None, "jsonl": JSONL},
    }


def _fmt(x: Any) -> str:
    """A metric to 3 decimals; ``n/a`` where it is undefined (``_finite`` made NaN None: e.g.
    precision when an untrained narrator names no event)."""
    return "n/a" if x is None else f"{x:.3f}"


def print_summary(summary: dict[str, Any], console: Any) -> None:
    """The agreement and the per-bucket monitors as rich tables."""
    from rich.table import Table

    ev = summary["events"]
    if ev is None:
        console.print("This env gives no annotations: no agreement to report.")
    else:
        console.print(f"[bold]Agreement with the annotations[/] (±{summary['tolerance']} frames): "
                      f"precision {_fmt(ev['precision'])}  recall {_fmt(ev['recall'])}  "
                      f"F1 {_fmt(ev['f1'])}  (tp {ev['tp']}, fp {ev['fp']}, fn {ev['fn']})")
    table = Table(title=f"Monitors per {summary['bucket']}-step bucket")
    keys = [k for k in summary["buckets"][0] if k not in ("start_step", "episodes")]
    table.add_column("steps")
    for k in keys:
        table.add_column(k.split("/")[-1], justify="right")
    for b in summary["buckets"]:
        table.add_row(f"{b['start_step']}-", *(_fmt(b[k]) for k in keys))
    console.print(table)
    console.print(f"{summary['frames']} frames narrated at {summary['narration_fps']:.1f} frames/s "
                  "(env step + narration)")


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
    from agents.accel import autocast, compile_agent
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
                               temperature=cfg.temperature, top_k=cfg.top_k)
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
    summary = summarize(cfg, logs, agent.tokenizer, narrate_s,
                        has_annotations=any(lg.annotated for lg in logs))
    if cfg.video:
        frames = [f for lg in logs for f in lg.frames]
        subs = [s for lg in logs for s in video_subtitles(lg)]
        write_video(cfg.out / MP4, frames, subs, scale=cfg.scale, fps=cfg.fps, band_lines=4)
    summary = _finite(summary)
    (cfg.out / SUMMARY).write_text(json.dumps(summary, indent=2))
    print_summary(summary, console)
    console.print(f"Wrote {cfg.out / JSONL}, {cfg.out / SUMMARY}"
                  + (f" and the video {cfg.out / MP4}" if cfg.video else ""))
    return summary


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (``byog-narrate``): 0 done, 2 bad input, 1 runtime failure,
    130 interrupted; errors are one ``error:`` line, no traceback."""
    import tyro

    from agents.cli import run_cli
    from byog_env.threads import resolve_threads
    from collect.policies import PolicyError

    def body() -> int:
        try:
            cfg = tyro.cli(NarrateConfig, args=argv, description=__doc__.split("\n")[0])
        except SystemExit as exit_:  # --help, or tyro's own one-message parse/validation error
            return int(exit_.code or 0)
        cfg.threads = resolve_threads(cfg.threads)  # 0: the cores this process may use
        main(cfg)
        return 0

    # a bad env name is gymnasium's error; a bad checkpoint or option one of ours
    return run_cli(body, usage=(PolicyError, gym.error.Error, ValueError))


if __name__ == "__main__":
    sys.exit(cli())
