"""Inspect a dataset: ``python -m collect.inspect DIR [--out DIR]``.

Validates the dataset, prints its statistics, and writes two PNGs: ``contact_sheet.png``
(annotated frames with their annotations) and ``annotation_frequency.png`` (event kinds and the
most frequent sentences).
"""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import tyro

from collect.dataset import Dataset, DatasetError, open_dataset


@dataclass
class InspectConfig:
    """Settings of ``python -m collect.inspect``."""

    path: tyro.conf.Positional[Path]
    """Dataset directory."""
    out: Path | None = None
    """Where to write the PNGs (default ``DIR/inspect``)."""
    frames: int = 16
    """Frames on the contact sheet (annotated frames first, spread over episodes)."""
    top: int = 20
    """Sentences shown in the frequency plot."""
    deep: bool = False
    """Decode every episode while validating (slower; catches corrupt pages)."""
    seed: int = 0
    """Seed for picking contact-sheet frames."""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.frames < 1 or self.top < 1:
            raise DatasetError(f"--frames and --top must be >= 1, got {self.frames} and {self.top}.")


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """Counts and distributions over a dataset (reads only the small columns)."""
    from collect.rollout import event_kind

    kinds: Counter[str] = Counter()
    sentences: Counter[str] = Counter()
    annotated = 0
    for pos in range(ds.num_episodes):
        for row in pq.read_table(ds.file(pos), columns=["annotations"]).column(0).to_pylist():
            annotated += bool(row)
            sentences.update(row)
            kinds.update(event_kind(s) for s in row)
    lengths = np.array(ds.lengths) if ds.num_episodes else np.zeros(1)
    returns = np.array([r["return"] for r in ds.records]) if ds.records else np.zeros(1)
    successes = [r["success"] for r in ds.records if r.get("success") is not None]
    achievements: Counter[str] = Counter()
    for r in ds.records:
        achievements.update(r.get("achievements") or [])
    frames = int(lengths.sum())
    return {
        "path": str(ds.path), "env": ds.info.get("env"), "policy": ds.info.get("policy"),
        "episodes": ds.num_episodes, "frames": frames, "frame_shape": list(ds.frame_shape),
        "length_mean": float(lengths.mean()), "length_min": int(lengths.min()), "length_max": int(lengths.max()),
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "success_rate": float(np.mean(successes)) if successes else None,
        "annotations": sum(sentences.values()), "annotated_frame_fraction": annotated / max(frames, 1),
        "distinct_sentences": len(sentences), "events_by_kind": dict(kinds.most_common()),
        "top_sentences": sentences.most_common(), "achievements": dict(achievements.most_common()),
        "bytes": int(ds.info.get("total_bytes", 0)), "columns": ds.info.get("columns", []),
        "annotator_version": ds.info.get("annotator_version"),
    }


def examples_by_kind(top_sentences: list[tuple[str, int]], n: int = 3) -> dict[str, list[str]]:
    """The ``n`` most frequent sentences of each event kind (``top_sentences`` most common first)."""
    from collect.rollout import event_kind

    out: dict[str, list[str]] = {}
    for sentence, _ in top_sentences:
        examples = out.setdefault(event_kind(sentence), [])
        if len(examples) < n:
            examples.append(sentence)
    return out


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


def pick_frames(ds: Dataset, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """(episode position, row) pairs for the contact sheet: annotated rows spread over episodes
    first (skipping each episode's reset row when others exist), then any rows."""
    rng = np.random.default_rng(seed)
    annotated, plain = [], []
    for pos in range(ds.num_episodes):
        rows = pq.read_table(ds.file(pos), columns=["annotations"]).column(0).to_pylist()
        for t, row in enumerate(rows):
            (annotated if row and t > 0 else plain).append((pos, t))
    picks: list[tuple[int, int]] = []
    for pool in (annotated, plain):
        if len(picks) >= n or not pool:
            continue
        idx = rng.choice(len(pool), size=min(n - len(picks), len(pool)), replace=False)
        picks += [pool[i] for i in sorted(idx)]
    return sorted(picks)


def contact_sheet(ds: Dataset, picks: list[tuple[int, int]], path: Path) -> Path:
    """Writes a grid of frames, each titled with its episode/step and annotations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(picks))
    rows = int(np.ceil(len(picks) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 4.1 * rows), squeeze=False)
    cache: dict[int, Any] = {}
    for ax, (pos, t) in zip(axes.ravel(), picks):
        ep = cache.get(pos) or cache.setdefault(pos, ds.episode(pos))
        ax.imshow(ep.frames[t], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        text = "\n".join(textwrap.shorten(s, 40) for s in ep.annotations[t][:4]) or "(no annotation)"
        ax.set_title(f"ep {ep.index} step {t}", fontsize=9, fontweight="bold")
        ax.set_xlabel(text, fontsize=8, wrap=True)
    for ax in axes.ravel()[len(picks):]:
        ax.axis("off")
    fig.suptitle(f"{ds.info.get('env')} · {ds.info.get('policy')} · {ds.num_episodes} episodes", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def frequency_plot(stats: dict[str, Any], path: Path, top: int = 20) -> Path:
    """Writes horizontal bar plots of event-kind counts and the most frequent sentences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(stats["events_by_kind"].items())
    sents = stats["top_sentences"][:top]
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, max(3.0, 0.32 * max(len(kinds), len(sents), 1) + 1.2)),
                               gridspec_kw={"width_ratios": [1, 2]})
    for ax, items, title in ((a, kinds, "annotations by event kind"), (b, sents, f"top {len(sents)} sentences")):
        labels = [textwrap.shorten(str(k), 48) for k, _ in items][::-1]
        ax.barh(labels, [v for _, v in items][::-1], color="tab:blue")
        ax.set_title(title)
        ax.set_xlabel("count")
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"{stats['env']}: {stats['annotations']} annotations over {stats['frames']} frames")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(cfg: InspectConfig) -> dict[str, Any]:
    """Validates, prints stats, writes the PNGs; returns the stats with the PNG paths."""
    ds = open_dataset(cfg.path)
    if cfg.deep:
        ds.validate(deep=True)
    stats = dataset_stats(ds)
    out = cfg.out or cfg.path / "inspect"
    if ds.num_episodes:
        stats["contact_sheet"] = str(contact_sheet(ds, pick_frames(ds, cfg.frames, cfg.seed), out / "contact_sheet.png"))
        stats["frequency_plot"] = str(frequency_plot(stats, out / "annotation_frequency.png", cfg.top))
    print(format_stats(stats))
    for key in ("contact_sheet", "frequency_plot"):
        if key in stats:
            print(f"wrote {stats[key]}")
    return stats


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point; dataset errors print one message and exit 1."""
    try:
        main(tyro.cli(InspectConfig, args=argv, description=__doc__.split("\n")[0]))
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
