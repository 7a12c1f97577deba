"""The study's PNG plots: accuracy per arm, dose-response, performance profiles, PPO curves.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from experiments.report_analysis import _num, _seed_means, dose_response
from experiments.stats import (
    mean_ci,
)


# ---------------------------------------------------------------------------- plots
def plots(rows: list[dict[str, Any]], an: dict[str, Any], out: Path) -> list[Path]:
    """``acc_<env>.png`` (per arm, mean ± CI over pipeline seeds, majority line), the
    dose-response plot, and PPO curves when present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for env, e in an["envs"].items():
        sc = e["scores"]
        arms = sorted(sc, key=lambda a: np.mean(list(sc[a].values())))
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(arms) + 1.5))
        for i, a in enumerate(arms):
            m, h = mean_ci(_seed_means(sc[a]).values())
            ax.errorbar([m], [i], xerr=[[0 if math.isnan(h) else h]], fmt="o", capsize=3)
        maj = [_num(r.get("offline/majority_acc")) for r in rows if r.get("env") == env and r.get("study") == "bc"]
        maj = [x for x in maj if x is not None]
        if maj:
            ax.axvline(float(np.mean(maj)), color="grey", linestyle=":", linewidth=1, label="majority action")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_yticks(range(len(arms)), arms, fontsize=7)
        ax.set(xlabel="held-out action accuracy (mean ± 95% CI over pipeline seeds)", title=f"{env}, N = {e['n']}")
        fig.tight_layout()
        p = out / f"acc_{env}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    dose = dose_response(rows)
    if dose:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for i, (label, pts) in enumerate(sorted(dose.items())):
            ax.scatter([x for x, _ in pts], [y for _, y in pts], label=label, color=f"C{i}", s=18)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set(xlabel="narration event F1 (oracle = 1)", ylabel="BC gain over random-text (accuracy)",
               title="dose-response: a point per pipeline seed and checkpoint")
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out / "dose_response.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written


def rl_curve_plot(root: Path, out: Path) -> list[Path]:
    """PPO return curves (trailing mean), one line per seed."""
    curves = sorted(root.rglob("curve.csv"))
    if not curves:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, c in enumerate(curves):
        with open(c) as f:
            data = list(csv.DictReader(f))
        if data:
            ax.plot([float(d["timesteps"]) for d in data], smooth([float(d["return"]) for d in data], RL_SMOOTH),
                    color=f"C{i % 10}", linewidth=1, label=c.parent.name)
    ax.set(xlabel="environment steps", ylabel=f"episode return (mean of last {RL_SMOOTH})", title="PPO")
    ax.legend(fontsize=6)
    fig.tight_layout()
    p = out / "rl_curves.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return [p]


RL_SMOOTH = 20
"""Episodes in the trailing mean of the PPO return curves."""


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out
