"""Intervals for imagination results: paired over clips, across world-model seeds.

Every arm of an imagination ablation is scored on the same clips, and each arm is trained with
the same world-model seeds, so arm differences are paired by (seed, clip). The interval
resamples seeds and clips (a two-level bootstrap: seeds with replacement, then clips with
replacement, the same clip draw for every drawn seed, as the clips are shared), so it reflects
both the training noise of the world model and the sampling of clips.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def paired_interval(diff: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                    ) -> dict[str, float]:
    """Mean and bootstrap interval of paired differences ``diff`` float [S, B] (seeds x clips).

    Returns:
        ``{"mean", "lo", "hi", "seeds", "clips"}``; NaN entries (a clip without a value) are
        left out of each mean.

    >>> r = paired_interval(np.ones((3, 4)))
    >>> (r["mean"], r["lo"], r["hi"])
    (1.0, 1.0, 1.0)
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"diff must be [seeds, clips] with values, got shape {d.shape}.")
    S, B = d.shape
    rng = np.random.default_rng(seed)
    s_idx = rng.integers(0, S, (n_boot, S))
    b_idx = rng.integers(0, B, (n_boot, B))
    boot = np.array([np.nanmean(d[s][:, b]) for s, b in zip(s_idx, b_idx)])
    a = (1 - level) / 2
    return {"mean": float(np.nanmean(d)), "lo": float(np.nanquantile(boot, a)),
            "hi": float(np.nanquantile(boot, 1 - a)), "seeds": S, "clips": B}


def split_mean(values: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Mean of ``values`` float [N] over each boolean mask of ``groups`` (with its count)."""
    v = np.asarray(values, dtype=np.float64)
    return {name: {"mean": float(v[m].mean()) if m.any() else float("nan"), "n": int(m.sum())}
            for name, m in groups.items()}
