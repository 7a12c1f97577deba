"""experiments.stats: hand-computed values, and the coverage of the study's intervals on
synthetic paired samples at the presets' designs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from experiments import stats


def test_paired_t_matches_hand_values():
    iv = stats.paired_t([0.1, 0.2, 0.3])  # mean 0.2, sd 0.1, t_{0.975,2} = 4.302653
    h = 4.302653 * 0.1 / math.sqrt(3)
    assert iv.estimate == pytest.approx(0.2) and iv.lo == pytest.approx(0.2 - h, rel=1e-5)
    assert iv.hi == pytest.approx(0.2 + h, rel=1e-5) and iv.n == 3 and not iv.above_zero
    assert iv.p_greater == pytest.approx(0.03709, abs=1e-4)  # t = 3.4641, df 2, one-sided
    assert math.isnan(stats.paired_t([0.1]).lo)


def test_holm_adjusts_in_order():
    out = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    assert out["a"] == (pytest.approx(0.03), True)  # 3 * 0.01
    assert out["c"] == (pytest.approx(0.06), False)  # 2 * 0.03 > 0.05 stops here
    assert out["b"] == (pytest.approx(0.06), False)  # max(0.06, 1 * 0.04), monotone
    assert not out["d"][1]


def test_tost_and_mde():
    assert stats.tost([0.001, -0.002, 0.0, 0.001, -0.001], margin=0.05) == (pytest.approx(0.0, abs=1e-6), True)
    p, eq = stats.tost([0.2, 0.25, 0.15], margin=0.05)
    assert not eq and p > 0.5
    # (t_{0.975,2} + t_{0.8,2}) * sd / sqrt(n) = (4.302653 + 1.060660) * 0.1 / sqrt(3)
    assert stats.mde(0.1, 3) == pytest.approx((4.302653 + 1.060660) * 0.1 / math.sqrt(3), rel=1e-5)
    assert math.isnan(stats.mde(0.1, 1))


def test_bootstrap_uses_the_same_indices_for_both_arms():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.2, (4, 2, 30))
    iv = stats.hierarchical_bootstrap(a, a - 0.1, n_boot=300)  # a constant paired gap
    assert iv.estimate == pytest.approx(0.1) and iv.lo == pytest.approx(0.1) and iv.hi == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same shape"):
        stats.hierarchical_bootstrap(a, a[:3])


@pytest.mark.parametrize("design", [(3, 2, 24), (5, 2, 48)])  # the cpu and gpu presets' designs
def test_paired_t_interval_covers_at_the_presets_designs(design):
    cov = stats.coverage(design, "t", n_sims=300, seed=1)
    assert 0.91 <= cov <= 0.99  # nominal 0.95; Monte-Carlo sd ~0.013


@pytest.mark.slow
def test_bootstrap_coverage_at_few_and_many_seeds():
    """Why the t-interval is primary below 10 pipeline seeds: the percentile bootstrap
    under-covers with 3 top-level seeds and is near nominal with 10."""
    few = stats.coverage((3, 2, 24), "bootstrap", n_sims=200, seed=2, n_boot=300)
    many = stats.coverage((10, 2, 24), "bootstrap", n_sims=200, seed=2, n_boot=300)
    assert few < 0.93 and many >= 0.9
    iv = stats.paired_interval([0.1, 0.2, 0.15], np.zeros((3, 1, 2)), np.zeros((3, 1, 2)))
    assert iv.method == "paired t"


def test_rliable_iqm_and_probability_of_improvement(tmp_path):
    pytest.importorskip("rliable")
    rng = np.random.default_rng(0)
    good, bad = rng.normal(0.8, 0.05, (6, 2)), rng.normal(0.2, 0.05, (6, 2))
    s = stats.rliable_summary({"good": good, "bad": bad}, reps=200)
    assert s["good"]["lo"] <= s["good"]["iqm"] <= s["good"]["hi"] and s["good"]["iqm"] > s["bad"]["hi"]
    assert stats.probability_of_improvement(good, bad) == pytest.approx(1.0)
    assert (tmp_path / "p.png").exists() is False
    stats.performance_profile_plot({"good": good, "bad": bad}, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000
