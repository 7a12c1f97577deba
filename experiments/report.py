"""Report of a study directory: ``results.csv`` (one row per cell), ``report.md`` (mean ± 95%
CI per cell over seeds) and PNG plots (accuracy vs N per encoder; PPO return curves)."""
from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.stats import format_ci, mean_ci

COLUMNS = ("study", "env", "encoder", "mode", "n_episodes", "label_fraction", "seed",
           "offline/acc", "offline/nll", "offline/majority_acc", "live/success_rate", "live/return", "live/length",
           "live/crafter_score", "narration/event_f1", "narration/token_acc", "train/seconds", "rl/final_return",
           "rl/final_success", "rl/seconds")
GROUP = ("study", "env", "encoder", "mode", "n_episodes", "label_fraction")
METRICS = ("offline/acc", "offline/nll", "live/success_rate", "live/crafter_score",
           "narration/event_f1", "train/seconds", "rl/final_return", "rl/final_success")


def collect_rows(root: Path) -> list[dict[str, Any]]:
    """Every ``cell.json`` under ``root`` flattened to the :data:`COLUMNS`."""
    rows = []
    for f in sorted(root.rglob("cell.json")):
        d = json.loads(f.read_text())
        rows.append({c: d.get(c, "") for c in COLUMNS})
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table, one line per cell group, mean ± 95% CI over seeds for each metric."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[g] for g in GROUP)].append(r)
    metrics = [m for m in METRICS if any(_num(r.get(m)) is not None for r in rows)]
    head = "| " + " | ".join((*GROUP, *metrics)) + " |"
    lines = [head, "|" + "---|" * (len(GROUP) + len(metrics))]
    for key in sorted(groups, key=lambda k: tuple((0, _num(x), "") if _num(x) is not None else (1, 0.0, str(x))
                                                  for x in k)):  # numbers numerically (N = 1, 4, 16)
        cells = [format_ci([v for v in (_num(r.get(m)) for r in groups[key]) if v is not None])
                 for m in metrics]
        lines.append("| " + " | ".join([*(str(k) for k in key), *cells]) + " |")
    return "\n".join(lines)


def plots(rows: list[dict[str, Any]], root: Path, out: Path) -> list[Path]:
    """``acc_vs_n_<env>.png`` per env and ``rl_curves.png`` from the runs' curve.csv files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    bc = [r for r in rows if r["study"] == "bc" and _num(r["offline/acc"]) is not None]
    for metric, name, label in (("offline/acc", "acc_vs_n", "held-out action accuracy"),
                                ("live/success_rate", "success_vs_n", "live success rate")):
        for env in sorted({r["env"] for r in bc}):
            pts: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
            for r in bc:
                if r["env"] == env and _num(r[metric]) is not None:
                    pts[series(r)][int(r["n_episodes"])].append(_num(r[metric]))
            if not pts:
                continue
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            keys = sorted(pts)
            for i, key in enumerate(keys):
                ns = sorted(pts[key])
                mc = [mean_ci(pts[key][n]) for n in ns]
                shift = 2 ** (0.05 * (i - (len(keys) - 1) / 2))  # side by side, so the bars stay apart
                ax.errorbar([n * shift for n in ns], [m for m, _ in mc], yerr=[0 if math.isnan(h) else h for _, h in mc], marker="o",
                            capsize=3, label=key, linestyle="--" if "lf" in key else "-")
            for name_, value in references(rows, env, metric).items():
                ax.axhline(value, color="grey", linestyle=":", linewidth=1)
                ax.annotate(name_, (0.01, value), xycoords=("axes fraction", "data"), fontsize=7, color="grey",
                            va="bottom")
            ax.set_xscale("log", base=2)
            ax.set(xlabel="training episodes N", ylabel=label, title=f"{env} (mean ± 95% CI over seeds)")
            ax.legend(fontsize=7)
            fig.tight_layout()
            p = out / f"{name}_{env}.png"
            fig.savefig(p, dpi=100)
            plt.close(fig)
            written.append(p)
    curves = sorted(root.rglob("curve.csv"))
    if curves:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        by_encoder: dict[str, list[tuple[list[float], list[float]]]] = defaultdict(list)
        for c in curves:  # cells/rl/<env>/<encoder>/s<seed>/curve.csv
            with open(c) as f:
                data = list(csv.DictReader(f))
            if data:
                steps = [float(d["timesteps"]) for d in data]
                by_encoder[f"{c.parent.parent.parent.name} {c.parent.parent.name}"].append(
                    (steps, smooth([float(d["return"]) for d in data], RL_SMOOTH)))
        for i, (key, runs) in enumerate(sorted(by_encoder.items())):
            colour = f"C{i}"
            for j, (steps, ret) in enumerate(runs):  # one thin line per seed, the label once
                ax.plot(steps, ret, color=colour, alpha=0.8, linewidth=1,
                        label=f"{key} ({len(runs)} seeds)" if j == 0 else None)
        ax.set(xlabel="environment steps",
               ylabel=f"episode return (mean of last {RL_SMOOTH} episodes)", title="PPO, one line per seed")
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / "rl_curves.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written


RL_SMOOTH = 20
"""Episodes in the trailing mean of the PPO return curves."""


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def references(rows: list[dict[str, Any]], env: str, metric: str) -> dict[str, float]:
    """Horizontal reference lines: the majority action's held-out accuracy (for accuracy) or
    the reference policies' mean live success (``ref`` rows: expert, random)."""
    if metric == "offline/acc":
        v = [_num(r["offline/majority_acc"]) for r in rows if r["study"] == "bc" and r["env"] == env]
        v = [x for x in v if x is not None]
        return {"majority action": sum(v) / len(v)} if v else {}
    out = {}
    for pol in sorted({r["encoder"] for r in rows if r["study"] == "ref" and r["env"] == env}):
        v = [_num(r[metric]) for r in rows if r["study"] == "ref" and r["env"] == env and r["encoder"] == pol]
        v = [x for x in v if x is not None]
        if v:
            out[pol] = sum(v) / len(v)
    return out


def series(row: dict[str, Any]) -> str:
    """Plot legend of a BC row: ``encoder/mode``, plus ``lf<fraction>`` below full labels."""
    lf = _num(row.get("label_fraction"))
    return f"{row['encoder']}/{row['mode']}" + (f" lf{lf:g}" if lf is not None and lf != 1.0 else "")


def write_report(root: Path, command: str = "") -> str:
    """Write results.csv, report.md and the plots under ``root``; returns the markdown."""
    rows = collect_rows(root)
    write_csv(rows, root / "results.csv")
    pngs = plots(rows, root, root)
    md = ["# Transfer study", "", f"Command: `{command}`" if command else "", "",
          "Cells: mean ± 95% CI (Student t over seeds, n = seeds).", "", table(rows), ""]
    md += [f"![{p.stem}]({p.name})" for p in pngs]
    text = "\n".join(md) + "\n"
    (root / "report.md").write_text(text)
    return text


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


__all__ = ["COLUMNS", "collect_rows", "table", "write_report"]
