"""Showing a narration summary: the terminal table and the plot over time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agents.narrate.scoring import LAG_WINDOW

EMPTY = "–"  # printed for a value a bucket does not have (no true event: no F1)


def _fmt(x: Any, spec: str = ".3f") -> str:
    """A number for the tables; ``–`` for a value that is not there (a bucket without events)."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return EMPTY
    return format(x, spec)


def _ci(ci: Any) -> str:
    return EMPTY if not ci or any(v is None for v in ci) else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _print_lag_by_kind(summary: dict[str, Any], console: Any) -> None:
    """|lag| per event kind (live, offline in brackets): which kinds the narrator times well."""
    from rich.table import Table

    live = summary["lag"].get("by_kind") or {}
    off = (summary.get("offline/lag") or {}).get("by_kind") or {}
    if not live:
        return
    table = Table(title="|lag| by event kind (offline in brackets)")
    for col in ("kind", "narrated", "paired", "|lag| p50", "|lag| p90"):
        table.add_column(col, justify="right")
    for kind, lag in sorted(live.items(), key=lambda kv: -kv[1]["narrated"]):
        o = off.get(kind)
        cells = [_fmt(lag[k], ".1f") + (f" ({_fmt(o[k], '.1f')})" if o else "")
                 for k in ("abs_p50", "abs_p90")]
        table.add_row(kind, str(lag["narrated"]), _fmt(lag["paired_share"], ".0%"), *cells)
    console.print(table)


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
        config = summary.get("config") or {}
        gates = [(key, col) for opt, key, col in (("word_share", "gated_words", "gated words"),
                                                   ("sentence_share", "hushed_sentences", "hushed sentences"))
                 if config.get(opt) is not None]  # --word-share / --sentence-share on
        for col in ("", "F1", "95% CI", "precision", "recall", "|lag| p50", "|lag| p90",
                    "paired", "cut tokens", "ill-formed slots") + tuple(c for _, c in gates):
            table.add_column(col, justify="right")
        arms = [("live", ev, summary["lag"], summary["slots"])]
        if summary.get("offline/events") is not None:
            arms.append(("offline", summary["offline/events"], summary["offline/lag"],
                         summary["offline/slots"]))
        for name, e, lag, sl in arms:
            table.add_row(name, _fmt(e["f1"]), _ci(e.get("f1_ci")), _fmt(e["precision"]),
                          _fmt(e["recall"]), _fmt(lag["abs_p50"], ".1f"), _fmt(lag["abs_p90"], ".1f"),
                          _fmt(lag["paired_share"], ".0%"), str(sl["cut_tokens"]),
                          str(sl["ill_formed_slots"]),
                          *(str(sl.get(key, 0)) for key, _ in gates))
        if "live_minus_offline/f1" in summary:
            table.add_row("live − offline", _fmt(summary["live_minus_offline/f1"], "+.3f"),
                          _ci(summary["live_minus_offline/f1_ci"]), *[""] * (7 + len(gates)))
        console.print(table)
        _print_lag_by_kind(summary, console)
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
