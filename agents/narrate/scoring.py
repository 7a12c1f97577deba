"""Scoring live narration for ``python -m agents.narrate``: event F1 and lag against the true
annotations, per time bucket, offline narration of the same frames, and the live-offline drift.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.narrate.config import JSONL, MP4, PLOT, NarrateConfig
from agents.narrate.episodes import EpisodeLog

LAG_WINDOW = 16  # frames: a narrated event pairs with the nearest true event this close


def offline_narration(cfg: NarrateConfig, agent: Any, logs: list[EpisodeLog],
                      batch: int = 32) -> tuple[list[np.ndarray], dict[str, int], int]:
    """The recorded frames narrated offline, as the trainer's validation narrates: each
    episode cut into non-overlapping windows of the checkpoint's training length from frame 0
    (each window carrying the frame before it; an episode's first frame at its start), the
    windows narrated ``batch`` at a time with the live run's sampling settings and slot rule.

    Returns:
        (ids int64 [T, k] per episode, slot counts ``cut_tokens``/``ill_formed_slots``/
        ``gated_words``/``hushed_sentences``, window).
    """
    from agents.model.slot_rule import narration_rule
    from agents.narrate.narrator import training_window

    W = training_window(agent)
    device = next(agent.parameters()).device
    pieces = [(e, s) for e, lg in enumerate(logs) for s in range(0, len(lg.frames), W)]
    out = [np.zeros((len(lg.frames), agent.encoder.k), np.int64) for lg in logs]
    rule = narration_rule(agent, cut=cfg.cut, early_exit=cfg.early_exit, word_share=cfg.word_share,
                          sentence_share=cfg.sentence_share)
    counts = {"cut_tokens": 0, "ill_formed_slots": 0, "gated_words": 0, "hushed_sentences": 0}
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
            for key, n in track.totals().items():
                counts[key] += n
    return out, counts, W


def score_arm(cfg: NarrateConfig, ids: list[np.ndarray], logs: list[EpisodeLog], tokenizer: Any,
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

    per_ep = [M.bucketed(lambda *x: x, *ep, w, bucket=cfg.bucket, merge_tail=True) for ep, w in zip(eps, said)]
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
        by_kind = pooled_lags_by_kind(said, logs)  # once; the overall figures are their union
        arm["lag"] = {**M.lag_summary([x for lags, _ in by_kind.values() for x in lags],
                                      sum(n for _, n in by_kind.values())),
                      "window": LAG_WINDOW,
                      "by_kind": {kind: M.lag_summary(*v) for kind, v in by_kind.items()}}
    return arm


_arm = score_arm  # the old name (agents.narrate's old flat module exported it)


def pooled_lags_by_kind(said: list[list[list[str]]], logs: list[Any]) -> dict[str, tuple[list[int], int]]:
    """:func:`agents.model.monitors.event_lags_by_kind` pooled over the episodes."""
    from agents.model import monitors as M

    pooled: dict[str, tuple[list[int], int]] = {}
    for w, lg in zip(said, logs):
        for kind, (lags, n) in M.event_lags_by_kind(w, lg.annotations, LAG_WINDOW).items():
            have, m = pooled.get(kind, ([], 0))
            pooled[kind] = (have + lags, m + n)
    return pooled


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

    live = score_arm(cfg, [np.stack(lg.ids) for lg in logs], logs, tokenizer, has_annotations)
    frames = sum(len(lg.frames) for lg in logs)
    out = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "episodes": len(logs), "frames": frames,
        "episode_lengths": [len(lg.frames) for lg in logs],
        "stream_resets": [lg.resets for lg in logs] if cfg.stream else None,
        "narration_fps": frames / narrate_s if narrate_s > 0 else float("nan"),
        "events": live["events"], "lag": live["lag"], "tolerance": cfg.tolerance,
        "slots": {"cut_tokens": sum(lg.cut for lg in logs),
                  "ill_formed_slots": sum(lg.ill_formed for lg in logs),
                  "gated_words": sum(lg.gated for lg in logs),
                  "hushed_sentences": sum(lg.hushed for lg in logs), "frames": frames},
        "monitors": live["monitors"], "bucket": cfg.bucket, "buckets": live["buckets"],
        "files": {"video": MP4 if cfg.video else None, "jsonl": JSONL, "plot": PLOT},
    }
    if offline is None:
        return out
    ids, counts, window = offline
    off = score_arm(cfg, ids, logs, tokenizer, has_annotations)
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
