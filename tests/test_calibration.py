"""Calibration by simulation: A/A false-positive rate ~ alpha, CI coverage ~ 1 - alpha.

Each scenario simulates ``EXPERIMENTS`` independent experiments with a seeded
``numpy.random.default_rng``.  Per-arm moments are computed vectorised with
numpy over the (experiments x units) matrix and the test functions are called
once per experiment.

Expected values: if the procedure is calibrated, the number of rejections
(or of intervals covering the truth) out of E experiments is Binomial(E, p) with
p = alpha (or 1 - alpha).  The acceptance band is the central 99.9% interval of
that binomial (``scipy.stats.binom.interval``), so a calibrated method fails a
given check with probability < 0.001; with fixed seeds the outcome is
deterministic.  For E = 2000 and p = 0.05 the band is about 70..132 rejections
(3.5% .. 6.6%).

The truth is known by construction: in the ratio scenarios numerators are
Binomial(y, p_u) given the denominator y, with a per-unit rate p_u ~ Beta of
mean p independent of y, so E[x] / E[y] = p exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from analysis.aggregates import Moments
from analysis.stats.inference import TwoArmResult, delta_ratio_test, welch_test

EXPERIMENTS = 2000
ALPHA = 0.05


def batch_moments(x: np.ndarray, y: np.ndarray | None = None) -> list[Moments]:
    """Moments of each row (one simulated arm per row), vectorised with numpy."""
    n = x.shape[1]
    mean_x = x.mean(axis=1)
    dx = x - mean_x[:, None]
    m2_x = np.einsum("ij,ij->i", dx, dx)
    if y is None:
        return [Moments(n, float(mx), 1.0, float(m2)) for mx, m2 in zip(mean_x, m2_x, strict=True)]
    mean_y = y.mean(axis=1)
    dy = y - mean_y[:, None]
    m2_y = np.einsum("ij,ij->i", dy, dy)
    c_xy = np.einsum("ij,ij->i", dx, dy)
    return [
        Moments(n, float(a), float(b), float(c), float(d), float(e))
        for a, b, c, d, e in zip(mean_x, mean_y, m2_x, m2_y, c_xy, strict=True)
    ]


def in_band(count: int, p: float) -> tuple[bool, tuple[float, float]]:
    lo, hi = stats.binom.interval(0.999, EXPERIMENTS, p)
    return bool(lo <= count <= hi), (float(lo), float(hi))


@dataclass(frozen=True)
class Calibration:
    rejections: int
    diff_covered: int
    lift_covered: int


def run(
    test: Callable[[Moments, Moments, float], TwoArmResult],
    control: list[Moments],
    treatment: list[Moments],
    true_diff: float,
    true_lift: float,
) -> Calibration:
    rejections = diff_covered = lift_covered = 0
    for c, t in zip(control, treatment, strict=True):
        res = test(c, t, ALPHA)
        assert res.p_value is not None, res.note
        assert res.diff_ci is not None
        assert res.lift_ci is not None
        rejections += res.p_value < ALPHA
        diff_covered += res.diff_ci[0] <= true_diff <= res.diff_ci[1]
        lift_covered += res.lift_ci[0] <= true_lift <= res.lift_ci[1]
    return Calibration(rejections, diff_covered, lift_covered)


def assert_calibrated(cal: Calibration, *, null: bool) -> None:
    coverage = 1 - ALPHA
    ok, band = in_band(cal.diff_covered, coverage)
    assert ok, f"diff CI coverage {cal.diff_covered / EXPERIMENTS:.4f}, band {band}"
    ok, band = in_band(cal.lift_covered, coverage)
    assert ok, f"lift CI coverage {cal.lift_covered / EXPERIMENTS:.4f}, band {band}"
    if null:
        ok, band = in_band(cal.rejections, ALPHA)
        assert ok, f"A/A false-positive rate {cal.rejections / EXPERIMENTS:.4f}, band {band}"


# --- mean and proportion metrics: Welch ------------------------------------------------


def test_welch_proportion_aa() -> None:
    # A/A on a 0/1 metric (rate 0.1), n = 1000 per arm: true diff 0, true lift 0.
    rng = np.random.default_rng(20240601)
    c = (rng.random((EXPERIMENTS, 1000)) < 0.1).astype(float)
    t = (rng.random((EXPERIMENTS, 1000)) < 0.1).astype(float)
    cal = run(welch_test, batch_moments(c), batch_moments(t), 0.0, 0.0)
    assert_calibrated(cal, null=True)


def test_welch_skewed_unequal_arms_aa() -> None:
    # A/A on a skewed metric with unequal arms (500 vs 2000) and unequal
    # variances, the case Welch's df is for.  Control Gamma(shape 2, scale 3):
    # mean 6, variance 18; treatment 2 * Gamma(2, 3) - 6: mean 6, variance 72.
    rng = np.random.default_rng(20240602)
    c = rng.gamma(2.0, 3.0, size=(EXPERIMENTS, 500))
    t = 2 * rng.gamma(2.0, 3.0, size=(EXPERIMENTS, 2000)) - 6.0
    cal = run(welch_test, batch_moments(c), batch_moments(t), 0.0, 0.0)
    assert_calibrated(cal, null=True)


def test_welch_coverage_with_effect() -> None:
    # Exponential means 5.0 (control, n = 800) and 5.5 (treatment, n = 1200):
    # true diff 0.5, true lift 0.1.
    rng = np.random.default_rng(20240603)
    c = rng.exponential(5.0, size=(EXPERIMENTS, 800))
    t = rng.exponential(5.5, size=(EXPERIMENTS, 1200))
    cal = run(welch_test, batch_moments(c), batch_moments(t), 0.5, 5.5 / 5.0 - 1)
    assert_calibrated(cal, null=False)
    # With a real effect of ~1.8 standard errors the test must reject far more than alpha.
    assert cal.rejections > 5 * ALPHA * EXPERIMENTS


# --- ratio metrics: delta method -----------------------------------------------------


def ratio_arm(rng: np.random.Generator, n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """One arm of ``EXPERIMENTS`` simulated experiments with ``n`` units each.

    Denominators: overdispersed Poisson counts >= 0 (Poisson with a Gamma(2, 1.5)
    mean: mean 3, variance 7.5, P(y = 0) = 0.16).  Numerators: Binomial(y, p_u)
    with a per-unit rate p_u ~ Beta(8 p, 8 (1 - p)) of mean p, independent of y,
    so E[x] = E[y] p and the true ratio E[x] / E[y] is p.
    """
    y = rng.poisson(rng.gamma(2.0, 1.5, size=(EXPERIMENTS, n)))
    concentration = 8.0
    p_u = rng.beta(concentration * p, concentration * (1 - p), size=(EXPERIMENTS, n))
    x = rng.binomial(y, p_u)
    return x.astype(float), y.astype(float)


@pytest.mark.parametrize(
    ("n_c", "n_t", "p_c", "p_t"),
    [
        (800, 800, 0.3, 0.3),  # A/A
        (500, 1200, 0.3, 0.3),  # A/A with unequal arms
        (800, 800, 0.3, 0.33),  # true diff 0.03, true lift 0.1
        (500, 1500, 0.2, 0.25),  # true diff 0.05, true lift 0.25
    ],
)
def test_delta_ratio_calibration(n_c: int, n_t: int, p_c: float, p_t: float) -> None:
    rng = np.random.default_rng([20240604, n_c, n_t, round(100 * p_t)])
    xc, yc = ratio_arm(rng, n_c, p_c)
    xt, yt = ratio_arm(rng, n_t, p_t)
    cal = run(
        delta_ratio_test, batch_moments(xc, yc), batch_moments(xt, yt), p_t - p_c, p_t / p_c - 1
    )
    assert_calibrated(cal, null=p_c == p_t)
    if p_c != p_t:
        # A real effect of ~1.5-3 standard errors: far more rejections than alpha.
        assert cal.rejections > 5 * ALPHA * EXPERIMENTS
