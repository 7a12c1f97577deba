"""Statistics of the studies: intervals over seeds, paired arm differences, equivalence,
multiplicity, power, and rliable's aggregate metrics.

The unit of replication is the *pipeline seed* (pretraining + labelled draw). Within each, BC
seeds (episode draw, head init) and test episodes are nested. Primary comparisons are paired:
both arms share pipeline seed, BC seed and test episodes, so their difference is averaged within
each pipeline seed first and the interval is

* a Student-t interval over the per-pipeline-seed differences (:func:`paired_t`), the primary
  one below 10 pipeline seeds, and
* the paired hierarchical bootstrap (:func:`hierarchical_bootstrap`: resample pipeline seeds,
  then BC seeds within them, then test episodes within those, *the same indices for both
  arms*), reported beside it where >= 5 pipeline seeds exist. :func:`coverage` measures both at
  a design (``tests/test_stats.py``): on :func:`simulate_paired` samples the t-interval covers
  ~96% at nominal 95% with 3 and 5 seeds, the percentile bootstrap ~89% with 3, ~88% with 5 and
  ~94% with 10 seeds, so it becomes primary only from 10 seeds on (:func:`paired_interval`).

Equivalence (:func:`tost`: two one-sided t-tests against a margin fixed before the data, the
study's 0.025; a margin computed from the same data, such as their MDE, grows with their noise
and lets noisy data pass), multiplicity (:func:`holm`), and the minimum detectable effect
(:func:`mde`) that must stand beside every "no effect". Aggregate metrics over tasks (IQM,
probability of improvement, performance profiles) come from the ``rliable`` library
(:func:`rliable_summary`; install the ``study`` extra).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    x = _finite(values)
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


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval, its method and sample size, and the
    one-sided p-value of ``estimate > 0`` where the method gives one."""

    estimate: float
    lo: float
    hi: float
    n: int
    method: str
    p_greater: float = float("nan")

    @property
    def above_zero(self) -> bool:
        return self.lo > 0

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] ({self.method}, n={self.n})"


def paired_t(diffs: Iterable[float], confidence: float = 0.95) -> Interval:
    """t-interval of the mean of per-seed paired differences (one value per pipeline seed),
    with the one-sided p-value of mean > 0."""
    d = _finite(diffs)
    if d.size < 2:
        m = float(d.mean()) if d.size else float("nan")
        return Interval(m, float("nan"), float("nan"), int(d.size), "paired t")
    m, h = mean_ci(d, confidence)
    sd = d.std(ddof=1)
    p = 0.5 if sd == 0 and m == 0 else (0.0 if sd == 0 else float(stats.t.sf(m / (sd / math.sqrt(d.size)), d.size - 1)))
    return Interval(m, m - h, m + h, int(d.size), "paired t", p)


def hierarchical_bootstrap(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None, *,
                           confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """Paired hierarchical bootstrap of mean(a) - mean(b).

    Args:
        a, b: Per-test-episode scores ``[S, B, E]`` (pipeline seeds, BC seeds, episodes) of two
            arms on the *same* seeds and episodes.
        weights: ``[S, B, E]`` episode weights (e.g. steps, so the mean is per step); None = 1.

    Each replicate resamples pipeline seeds, then BC seeds within each, then episodes within
    each, and applies the same indices to both arms. Percentile interval; ``p_greater`` is the
    share of replicates <= 0.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"a and b must be [S, B, E] of the same shape, got {a.shape} and {b.shape}.")
    w = np.ones_like(a) if weights is None else np.asarray(weights, float)
    S, B, E = a.shape
    rng = np.random.default_rng(seed)
    si = rng.integers(S, size=(n_boot, S, 1, 1))
    bi = rng.integers(B, size=(n_boot, S, B, 1))
    ei = rng.integers(E, size=(n_boot, S, B, E))
    ww = w[si, bi, ei]
    ma = (a[si, bi, ei] * ww).sum(-1) / np.maximum(ww.sum(-1), 1e-12)  # [n, S, B]
    mb = (b[si, bi, ei] * ww).sum(-1) / np.maximum(ww.sum(-1), 1e-12)
    reps = (ma - mb).mean((1, 2))
    est = float(((a * w).sum(-1) / np.maximum(w.sum(-1), 1e-12) - (b * w).sum(-1) / np.maximum(w.sum(-1), 1e-12)).mean())
    q = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [q, 1 - q])
    return Interval(est, float(lo), float(hi), S, "hierarchical bootstrap", float((reps <= 0).mean()))


def tost(diffs: Iterable[float], margin: float, alpha: float = 0.05) -> tuple[float, bool]:
    """Two one-sided t-tests of |mean difference| < ``margin``: ``(p, equivalent at alpha)``.

    ``p`` is the larger of the two one-sided p-values; NaN (never equivalent) with < 2 values.
    """
    d = _finite(diffs)
    if d.size < 2 or not math.isfinite(margin) or margin <= 0:
        return float("nan"), False
    se = d.std(ddof=1) / math.sqrt(d.size)
    if se == 0:
        p = 0.0 if abs(d.mean()) < margin else 1.0
    else:
        p_low = stats.t.sf((d.mean() + margin) / se, d.size - 1)   # H0: mean <= -margin
        p_high = stats.t.cdf((d.mean() - margin) / se, d.size - 1)  # H0: mean >= +margin
        p = float(max(p_low, p_high))
    return p, p < alpha


def holm(pvalues: dict[str, float], alpha: float = 0.05) -> dict[str, tuple[float, bool]]:
    """Holm-Bonferroni: ``{name: (adjusted p, rejected)}`` (NaN p-values are never rejected)."""
    names = sorted((k for k, p in pvalues.items() if math.isfinite(p)), key=lambda k: pvalues[k])
    m = len(names)
    out: dict[str, tuple[float, bool]] = {k: (float("nan"), False) for k in pvalues}
    running, still = 0.0, True
    for i, k in enumerate(names):
        running = max(running, min(1.0, (m - i) * pvalues[k]))
        still = still and pvalues[k] <= alpha / (m - i)
        out[k] = (running, still)
    return out


def mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8, one_sided: bool = False) -> float:
    """Minimum detectable effect of a paired t-test on ``n`` per-seed differences with standard
    deviation ``sd``: ``(t_{1-alpha(/2), n-1} + t_{power, n-1}) * sd / sqrt(n)``."""
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    q = 1 - alpha if one_sided else 1 - alpha / 2
    return float((stats.t.ppf(q, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def simulate_paired(design: tuple[int, int, int], true_diff: float, rng: np.random.Generator, *,
                    sd_seed: float = 0.03, sd_bc: float = 0.02, sd_episode: float = 0.15,
                    base: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic paired sample ``(a, b)`` of per-episode scores ``[S, B, E]``: a shared
    pipeline-seed, BC-seed and episode effect for both arms (the pairing), plus each arm's own
    seed-level effect and noise; ``a`` is better by ``true_diff`` on average."""
    S, B, E = design
    shared = (rng.normal(0, sd_seed, (S, 1, 1)) + rng.normal(0, sd_bc, (S, B, 1))
              + rng.normal(0, sd_episode, (S, B, E)))
    own = [rng.normal(0, sd_seed, (S, 1, 1)) + rng.normal(0, sd_bc, (S, B, 1))
           + rng.normal(0, sd_episode / 2, (S, B, E)) for _ in range(2)]
    return base + true_diff + shared + own[0], base + shared + own[1]


def coverage(design: tuple[int, int, int], method: str = "t", *, true_diff: float = 0.05,
             n_sims: int = 400, confidence: float = 0.95, seed: int = 0, n_boot: int = 500) -> float:
    """Share of :func:`simulate_paired` samples at ``design`` whose interval (``"t"`` over the
    per-pipeline-seed differences, or ``"bootstrap"``) covers the true difference."""
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(n_sims):
        a, b = simulate_paired(design, true_diff, rng)
        if method == "t":
            iv = paired_t((a - b).mean((1, 2)), confidence)
        elif method == "bootstrap":
            iv = hierarchical_bootstrap(a, b, confidence=confidence, n_boot=n_boot, seed=seed + i)
        else:
            raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}.")
        hits += iv.lo <= true_diff <= iv.hi
    return hits / n_sims


def paired_interval(per_seed_diffs: Sequence[float], a: np.ndarray | None = None, b: np.ndarray | None = None,
                    weights: np.ndarray | None = None, *, min_bootstrap_seeds: int = 10,
                    confidence: float = 0.95) -> Interval:
    """The study's primary interval: the paired hierarchical bootstrap when ``a``/``b`` are
    given with >= ``min_bootstrap_seeds`` pipeline seeds, else the paired t over seeds."""
    if a is not None and b is not None and np.asarray(a).shape[0] >= min_bootstrap_seeds:
        return hierarchical_bootstrap(a, b, weights, confidence=confidence)
    return paired_t(per_seed_diffs, confidence)


def rliable_summary(scores: dict[str, np.ndarray], *, reps: int = 2000, seed: int = 0,
                    ) -> dict[str, dict[str, float]]:
    """rliable's IQM with stratified-bootstrap 95% CIs per arm (``scores``: arm -> normalised
    scores ``[runs, tasks]``)."""
    from rliable import library as rly
    from rliable import metrics

    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global state
    point, ci = rly.get_interval_estimates({k: np.asarray(v, float) for k, v in scores.items()},
                                           lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps)
    return {k: {"iqm": float(point[k][0]), "lo": float(ci[k][0, 0]), "hi": float(ci[k][1, 0])} for k in scores}


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's P(X > Y) over tasks (``[runs, tasks]`` each)."""
    from rliable import metrics

    return float(metrics.probability_of_improvement(np.asarray(x, float), np.asarray(y, float)))


def performance_profile_plot(scores: dict[str, np.ndarray], path: str, taus: np.ndarray | None = None) -> str:
    """rliable's performance profiles (fraction of runs above each normalised score) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    taus = np.linspace(-0.5, 1.5, 41) if taus is None else taus
    profiles, cis = rly.create_performance_profile({k: np.asarray(v, float) for k, v in scores.items()}, taus)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         xlabel=r"normalised score $\tau$ (0 = random-text, 1 = oracle-text)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _finite(values: Iterable[float]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)


__all__ = ["Interval", "coverage", "format_ci", "hierarchical_bootstrap", "holm", "mde", "mean_ci",
           "paired_interval", "paired_t", "performance_profile_plot", "probability_of_improvement",
           "rliable_summary", "simulate_paired", "tost"]
