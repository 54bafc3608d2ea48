"""Reference-value tests of the Bayesian view of the lift (``analysis.stats.bayes``).

Expected values:

* GrowthBook's published test values for its Gaussian effect test with the
  default flat prior (gbstats ``tests/bayesian/test_tests.py``, ``TestNorm``
  and ``TestBinom``, rounded there to 5 decimals): chance to win, the risks
  ``[E max(0, lift), E max(0, -lift)]``, the uplift sd and credible interval.
* Monte Carlo with numpy (seeded, 2,000,000 posterior draws): the tolerance is
  5 Monte Carlo standard errors of each estimated quantity.
* The conjugate normal update checked by numerical integration of
  likelihood x prior with ``scipy.integrate.quad``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from analysis.aggregates import Moments
from analysis.stats.bayes import BayesResult, GaussianPrior, Goal, bayesian_lift
from analysis.stats.inference import ArmEstimate, TwoArmResult, compare, welch_test


def from_sums(total: float, sum_squares: float, n: int) -> Moments:
    """Moments from gbstats' SampleMeanStatistic(sum, sum_squares, n)."""
    return Moments(n, total / n, 1.0, sum_squares - total * total / n)


def arms(c: float, var_c: float, t: float, var_t: float, n: int = 1000) -> TwoArmResult:
    return compare(ArmEstimate(n, c, var_c), ArmEstimate(n, t, var_t), 0.05, "m")


# --- published values ----------------------------------------------------------------------


def test_matches_gbstats_gaussian_example() -> None:
    # gbstats TestNorm: SampleMeanStatistic(100, 1002.25, 10) vs (105, 1111.5, 10):
    # lift 0.05, sd 0.03572, CI [-0.02, 0.12], chance to win 0.91923, risk [0.05131, 0.00131].
    res = welch_test(from_sums(100, 1002.25, 10), from_sums(105, 1111.5, 10), 0.05)
    b = bayesian_lift(res, "increase")
    assert b.prior == "flat (improper) on the lift"
    assert b.posterior_mean == pytest.approx(0.05, abs=5e-6)
    assert b.posterior_sd == pytest.approx(0.03572, abs=5e-6)
    assert b.credible_interval == pytest.approx((-0.02, 0.12), abs=5e-6)
    assert b.chance_to_win == pytest.approx(0.91923, abs=5e-6)
    assert b.expected_loss_control == pytest.approx(0.05131, abs=5e-6)
    assert b.expected_loss == pytest.approx(0.00131, abs=5e-6)


def test_matches_gbstats_binomial_example() -> None:
    # gbstats TestBinom: ProportionStatistic(49, 100) vs (51, 100): lift 0.04082, sd 0.14725,
    # CI [-0.24779, 0.32943], chance to win 0.60918, risk [0.0814, 0.04058].  gbstats'
    # proportion variance is p (1 - p) (no n - 1): the arm estimates use that convention here.
    res = arms(0.49, 0.49 * 0.51 / 100, 0.51, 0.51 * 0.49 / 100, n=100)
    b = bayesian_lift(res, "increase")
    assert b.posterior_mean == pytest.approx(0.04082, abs=5e-6)
    assert b.posterior_sd == pytest.approx(0.14725, abs=5e-6)
    assert b.credible_interval == pytest.approx((-0.24779, 0.32943), abs=5e-6)
    assert b.chance_to_win == pytest.approx(0.60918, abs=5e-6)
    assert b.expected_loss_control == pytest.approx(0.0814, abs=5e-6)
    assert b.expected_loss == pytest.approx(0.04058, abs=5e-6)


# --- closed form and Monte Carlo ---------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "t", "var_c", "var_t"),
    [
        (10.0, 10.3, 0.01, 0.02),
        (0.2, 0.19, 1e-5, 1e-5),
        (5.0, 5.0, 0.1, 0.1),
        (1.0, 0.7, 0.01, 0.02),
    ],
)
def test_closed_form_values(c: float, t: float, var_c: float, var_t: float) -> None:
    # Flat prior: posterior N(L, V) with L = T/C - 1, V = Var_T/C^2 + T^2 Var_C/C^4.
    lift, var = t / c - 1, var_t / c**2 + t * t * var_c / c**4
    s = math.sqrt(var)
    phi, cdf = stats.norm.pdf(lift / s), stats.norm.cdf(lift / s)
    b = bayesian_lift(arms(c, var_c, t, var_t), "increase", alpha=0.1)
    assert b.posterior_mean == pytest.approx(lift, rel=1e-12, abs=1e-15)
    assert b.posterior_sd == pytest.approx(s, rel=1e-12)
    assert b.chance_to_win == pytest.approx(cdf, rel=1e-12)
    assert b.expected_loss == pytest.approx(s * phi - lift * (1 - cdf), rel=1e-9, abs=1e-15)
    assert b.expected_loss_control == pytest.approx(s * phi + lift * cdf, rel=1e-9, abs=1e-15)
    z = stats.norm.ppf(0.95)
    assert b.credible_interval == pytest.approx((lift - z * s, lift + z * s), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("goal", ["increase", "decrease"])
@pytest.mark.parametrize(("c", "t"), [(10.0, 10.2), (10.0, 9.9), (10.0, 10.0)])
def test_against_monte_carlo(goal: Goal, c: float, t: float) -> None:
    # 2,000,000 draws of the posterior lift; tolerance 5 Monte Carlo standard errors.
    b = bayesian_lift(arms(c, 0.01, t, 0.012), goal, alpha=0.05)
    assert b.posterior_mean is not None
    assert b.posterior_sd is not None
    draws = np.random.default_rng(20240329).normal(b.posterior_mean, b.posterior_sd, 2_000_000)
    better = draws if goal == "increase" else -draws
    n = draws.size
    win = better > 0
    loss_t, loss_c = np.maximum(0.0, -better), np.maximum(0.0, better)
    assert b.chance_to_win == pytest.approx(win.mean(), abs=5 * math.sqrt(0.25 / n))
    assert b.expected_loss == pytest.approx(loss_t.mean(), abs=5 * loss_t.std() / math.sqrt(n))
    assert b.expected_loss_control == pytest.approx(
        loss_c.mean(), abs=5 * loss_c.std() / math.sqrt(n)
    )
    lo, hi = np.quantile(draws, [0.025, 0.975])
    assert b.credible_interval == pytest.approx((lo, hi), abs=5e-3 * b.posterior_sd)


def test_decrease_goal_mirrors_increase() -> None:
    res = arms(10.0, 0.01, 10.15, 0.01)
    up, down = bayesian_lift(res, "increase"), bayesian_lift(res, "decrease")
    assert up.chance_to_win is not None
    assert down.chance_to_win is not None
    assert down.chance_to_win == pytest.approx(1 - up.chance_to_win, rel=1e-12)
    assert down.expected_loss == pytest.approx(up.expected_loss_control, rel=1e-12)
    assert down.expected_loss_control == pytest.approx(up.expected_loss, rel=1e-12)
    assert down.credible_interval == up.credible_interval  # an interval for the lift itself


def test_losses_differ_by_the_posterior_mean() -> None:
    # E max(0, d) - E max(0, -d) = E d.
    b = bayesian_lift(arms(4.0, 0.003, 4.1, 0.004), "increase")
    assert b.expected_loss_control is not None
    assert b.expected_loss is not None
    assert b.expected_loss_control - b.expected_loss == pytest.approx(b.posterior_mean, rel=1e-9)


# --- priors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("prior_mean", "tau"), [(0.0, 0.02), (0.0, 0.1), (0.05, 0.03)])
def test_normal_prior_matches_numerical_posterior(prior_mean: float, tau: float) -> None:
    # Posterior density proportional to N(L; lift, V) N(lift; m0, tau^2), integrated with quad.
    res = arms(10.0, 0.02, 10.4, 0.03)
    b = bayesian_lift(res, "increase", prior=GaussianPrior(variance=tau**2, mean=prior_mean))
    lift = 0.04
    var = 0.03 / 100 + 10.4**2 * 0.02 / 1e4

    def density(x: float) -> float:
        return float(stats.norm.pdf(lift, x, math.sqrt(var)) * stats.norm.pdf(x, prior_mean, tau))

    lo, hi = -1.0, 1.0
    z = integrate.quad(density, lo, hi, points=[lift], epsabs=0, epsrel=1e-12)[0]
    mean = (
        integrate.quad(lambda x: x * density(x), lo, hi, points=[lift], epsabs=0, epsrel=1e-12)[0]
        / z
    )
    second = (
        integrate.quad(lambda x: x * x * density(x), lo, hi, points=[lift], epsabs=0, epsrel=1e-12)[
            0
        ]
        / z
    )
    win = integrate.quad(density, 0.0, hi, epsabs=0, epsrel=1e-12)[0] / z
    assert b.posterior_mean == pytest.approx(mean, rel=1e-7)
    assert b.posterior_sd == pytest.approx(math.sqrt(second - mean**2), rel=1e-6)
    assert b.chance_to_win == pytest.approx(win, rel=1e-7)
    assert b.prior == f"normal(mean={prior_mean:g}, sd={tau:g}) on the lift"


def test_prior_shrinks_towards_its_mean_and_a_wide_prior_is_flat() -> None:
    res = arms(10.0, 0.02, 10.4, 0.03)
    flat = bayesian_lift(res, "increase")
    tight = bayesian_lift(res, "increase", prior=GaussianPrior(variance=0.01**2))
    wide = bayesian_lift(res, "increase", prior=GaussianPrior(variance=1e6))
    assert flat.posterior_mean is not None
    assert tight.posterior_mean is not None
    assert flat.posterior_sd is not None
    assert tight.posterior_sd is not None
    assert 0 < tight.posterior_mean < flat.posterior_mean
    assert tight.posterior_sd < flat.posterior_sd
    assert wide.posterior_mean == pytest.approx(flat.posterior_mean, rel=1e-6)
    assert wide.chance_to_win == pytest.approx(flat.chance_to_win, rel=1e-6)


def test_prior_variance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        GaussianPrior(variance=0.0)


# --- undefined cases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("res", "fragment"),
    [
        (compare(ArmEstimate(1, 1.0, math.nan), ArmEstimate(10, 1.0, 0.1), 0.05, "m"), "2 units"),
        (arms(0.0, 0.01, 0.3, 0.01), "control"),
        (arms(1.0, 0.0, 1.2, 0.0), "variation"),
        (arms(1.0, math.nan, 1.2, 0.01), "undefined"),
    ],
)
def test_undefined_gives_none_and_a_note(res: TwoArmResult, fragment: str) -> None:
    b = bayesian_lift(res, "increase")
    assert b == BayesResult(b.prior, None, None, None, None, None, None, b.note)
    assert b.note is not None
    assert fragment in b.note
