"""Summary statistics for results tables: mean and 95% confidence interval across seeds."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval of the mean.

    Args:
        values: One number per seed; NaNs are dropped.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        ``(mean, half_width)``; the half-width is NaN with fewer than two finite values and the
        mean is NaN with none.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    x = np.asarray([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    sem = x.std(ddof=1) / math.sqrt(x.size)
    t = stats.t.ppf(0.5 + confidence / 2.0, df=x.size - 1)
    return float(x.mean()), float(t * sem)


def format_ci(values: Sequence[float], digits: int = 3) -> str:
    """``"m ± h (n=k)"`` for a table cell (``"m (n=1)"`` for one seed, ``"–"`` for none)."""
    finite = [v for v in values if v is not None and math.isfinite(float(v))]
    m, h = mean_ci(finite)
    if not finite:
        return "–"
    if not math.isfinite(h):
        return f"{m:.{digits}f} (n={len(finite)})"
    return f"{m:.{digits}f} ± {h:.{digits}f} (n={len(finite)})"


__all__ = ["format_ci", "mean_ci"]
