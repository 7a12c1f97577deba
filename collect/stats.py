"""Dataset statistics in one place: what ``byog-inspect`` prints and the collector's summary.

Reads only the small columns (``annotations``) and ``meta/``; never the frames.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from collect.dataset import Dataset, open_dataset


def event_kind(sentence: str) -> str:
    """The event kind of an annotation (``unparsed`` if ``byog_env.parse_event`` rejects it)."""
    from byog_env import parse_event

    try:
        return parse_event(sentence).kind
    except ValueError:
        return "unparsed"


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """Counts and distributions over a dataset (reads only the small columns)."""
    kinds: Counter[str] = Counter()
    sentences: Counter[str] = Counter()
    annotated = 0
    for pos in range(ds.num_episodes):
        for row in ds.read_column(pos, "annotations"):
            annotated += bool(row)
            sentences.update(row)
            kinds.update(event_kind(s) for s in row)
    lengths = np.array(ds.lengths) if ds.num_episodes else np.zeros(1)
    returns = np.array([r["return"] for r in ds.records]) if ds.records else np.zeros(1)
    successes = [r["success"] for r in ds.records if r.get("success") is not None]
    achievements: Counter[str] = Counter()
    for r in ds.records:
        achievements.update(r.get("achievements") or [])
    frames = int(lengths.sum()) if ds.num_episodes else 0
    return {
        "path": str(ds.path), "env": ds.info.get("env"), "policy": ds.info.get("policy"),
        "episodes": ds.num_episodes, "frames": frames, "frame_shape": list(ds.frame_shape),
        "steps": int(sum(int(r.get("num_steps", 0)) for r in ds.records)),
        "length_mean": float(lengths.mean()), "length_min": int(lengths.min()), "length_max": int(lengths.max()),
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "success_rate": float(np.mean(successes)) if successes else None,
        "annotations": sum(sentences.values()), "annotated_frame_fraction": annotated / max(frames, 1),
        "distinct_sentences": len(sentences), "events_by_kind": dict(kinds.most_common()),
        "top_sentences": sentences.most_common(), "achievements": dict(achievements.most_common()),
        "bytes": int(ds.info.get("total_bytes", 0)), "columns": ds.info.get("columns", []),
        "annotator_version": ds.info.get("annotator_version"),
    }


def summarize(path: str | Path, seconds: float = 0.0, new_steps: int = 0) -> dict[str, Any]:
    """The collector's summary: :func:`dataset_stats` plus this run's speed.

    Args:
        path: Dataset directory.
        seconds: Wall time of this run.
        new_steps: Steps recorded by this run.
    """
    stats = dataset_stats(open_dataset(path))
    return {
        **stats, "mean_return": stats["return_mean"],
        "bytes_per_frame": stats["bytes"] / max(stats["frames"], 1),
        "seconds": seconds, "steps_per_s": new_steps / seconds if seconds > 0 else None,
    }


def examples_by_kind(top_sentences: list[tuple[str, int]], n: int = 3) -> dict[str, list[str]]:
    """The ``n`` most frequent sentences of each event kind (``top_sentences`` most common first)."""
    out: dict[str, list[str]] = {}
    for sentence, _ in top_sentences:
        examples = out.setdefault(event_kind(sentence), [])
        if len(examples) < n:
            examples.append(sentence)
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable multi-line summary."""
    lines = [
        (f"episodes {summary['episodes']}  steps {summary['steps']}  frames {summary['frames']}  "
         f"annotations {summary['annotations']}"),
        (f"bytes on disk {summary['bytes']:,} ({summary['bytes_per_frame'] / 1024:.2f} KB/frame)  "
         f"mean return {summary['mean_return']:.3f}"),
    ]
    if summary["steps_per_s"]:
        lines.append(f"this run: {summary['seconds']:.1f} s, {summary['steps_per_s']:.0f} steps/s")
    if summary["success_rate"] is not None:
        lines.append(f"success rate {summary['success_rate']:.1%}")
    if summary["achievements"]:
        lines.append("achievements (episodes): " + ", ".join(f"{k} {v}" for k, v in summary["achievements"].items()))
    if summary["events_by_kind"]:
        lines.append("annotations by event kind: " + ", ".join(f"{k} {v}" for k, v in summary["events_by_kind"].items()))
    return "\n".join(lines)


def format_stats(stats: dict[str, Any], top: int = 10) -> str:
    """The statistics as a few readable lines."""
    lines = [
        f"{stats['path']}: env {stats['env']}, policy {stats['policy']}, annotator {stats['annotator_version']}",
        (f"episodes {stats['episodes']}, frames {stats['frames']} of {stats['frame_shape']}, "
         f"length mean {stats['length_mean']:.1f} (min {stats['length_min']}, max {stats['length_max']})"),
        f"return {stats['return_mean']:.3f} ± {stats['return_std']:.3f}"
        + ("" if stats["success_rate"] is None else f", success rate {stats['success_rate']:.1%}"),
        (f"annotations {stats['annotations']} ({stats['annotated_frame_fraction']:.1%} of frames annotated, "
         f"{stats['distinct_sentences']} distinct sentences)"),
        (f"bytes on disk {stats['bytes']:,} ({stats['bytes'] / max(stats['frames'], 1) / 1024:.2f} KB/frame), "
         f"columns {', '.join(stats['columns'])}"),
    ]
    if stats["events_by_kind"]:
        lines.append("event kinds: " + ", ".join(f"{k} {v}" for k, v in stats["events_by_kind"].items()))
        lines.append("examples by kind:")
        lines += [f"  {kind:<12} {' | '.join(examples)}"
                  for kind, examples in examples_by_kind(stats["top_sentences"]).items()]
    if stats["achievements"]:
        lines.append("achievements (episodes): " + ", ".join(f"{k} {v}" for k, v in stats["achievements"].items()))
    for s, n in stats["top_sentences"][:top]:
        lines.append(f"  {n:6d}  {s}")
    return "\n".join(lines)
