"""Playing and narrating live episodes for ``python -m agents.narrate``: one env at a time or N
envs in one batched decode, each step recorded in an ``EpisodeLog`` and printed.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.narrate.config import NarrateConfig
from agents.narrate.narration import (
    NarrationWrapper,
)


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
    gated: int = 0  # sentence-first words the word gate replaced with <nil>
    hushed: int = 0  # sentences the sentence gate left unsaid
    resets: int = 0  # --stream: env episodes that ended and were followed by the next
    decoded: list[np.ndarray] = field(default_factory=list)  # int64 [k] per step (with shares)
    shares: list[np.ndarray] = field(default_factory=list)  # float32 [k] per step (with shares)


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
                         top_k=cfg.top_k, seed=cfg.seed, cut=cfg.cut, early_exit=cfg.early_exit,
                         word_share=cfg.word_share, sentence_share=cfg.sentence_share,
                         shares=bool(cfg.sentence_share_sweep))
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
                            narration_gated=int(out.gated[i]),
                            narration_hushed=int(out.hushed[i]),
                            forecast_tokens=out.forecast_ids[i].numpy())
            if vec.shares:
                narrated.update(narration_decoded=out.decoded[i].cpu().numpy(),
                                narration_shares=out.shares[i].float().cpu().numpy())
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
    log.gated += int(info.get("narration_gated", 0))
    log.hushed += int(info.get("narration_hushed", 0))
    if "narration_shares" in info:  # --sentence-share-sweep: what the gate reads
        log.decoded.append(info["narration_decoded"])
        log.shares.append(info["narration_shares"])
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
