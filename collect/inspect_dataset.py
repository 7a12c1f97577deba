"""Inspect a dataset: ``byog-inspect DIR [--out DIR]`` (or ``python -m collect.inspect_dataset DIR``).

Validates the dataset, prints its statistics, and writes two PNGs: ``contact_sheet.png``
(annotated frames with their annotations) and ``annotation_frequency.png`` (event kinds and the
most frequent sentences).
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from byog_core.cli import run_cli
from collect.dataset import Dataset, open_dataset
from collect.errors import UsageError, parse_cli
from collect.stats import dataset_stats, examples_by_kind, format_stats  # noqa: F401  (re-exported)
from collect.untrusted import check_output_dir, write_output


@dataclass
class InspectConfig:
    """Settings of ``byog-inspect``."""

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
            raise UsageError(f"--frames and --top must be >= 1, got {self.frames} and {self.top}.")


def pick_frames(ds: Dataset, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """(episode position, row) pairs for the contact sheet: annotated rows spread over episodes
    first (skipping each episode's reset row when others exist), then any rows."""
    rng = np.random.default_rng(seed)
    annotated, plain = [], []
    for pos in range(ds.num_episodes):
        rows = ds.read_column(pos, "annotations")
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
    _save(fig, path)
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
    _save(fig, path)
    plt.close(fig)
    return path


def _save(fig: Any, path: Path) -> None:
    """Saves a figure as PNG through a new file renamed into place: ``savefig`` itself would
    write through a link the dataset ships at that name (issue #26)."""
    write_output(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def main(cfg: InspectConfig) -> dict[str, Any]:
    """Validates, prints stats, writes the PNGs; returns the stats with the PNG paths."""
    ds = open_dataset(cfg.path)
    if cfg.deep:
        ds.validate(deep=True)
    stats = dataset_stats(ds)
    # the default lies inside the dataset, whose author may have made it a link; --out is the user's
    out = cfg.out or check_output_dir(cfg.path / "inspect", shipped_by=cfg.path)
    if ds.num_episodes:
        stats["contact_sheet"] = str(contact_sheet(ds, pick_frames(ds, cfg.frames, cfg.seed), out / "contact_sheet.png"))
        stats["frequency_plot"] = str(frequency_plot(stats, out / "annotation_frequency.png", cfg.top))
    print(format_stats(stats))
    for key in ("contact_sheet", "frequency_plot"):
        if key in stats:
            print(f"wrote {stats[key]}")
    return stats


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (``byog-inspect``); exit codes follow :mod:`byog_core.cli`."""
    return run_cli(lambda: main(parse_cli(InspectConfig, argv, __doc__.split("\n")[0])))


if __name__ == "__main__":
    sys.exit(cli())
