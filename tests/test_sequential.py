"""Reference-value tests of the confidence sequence (``analysis.stats.sequential``).

Expected values:

* GrowthBook's published test values for its ``SequentialTwoSidedTTest``
  (gbstats ``tests/frequentist/test_tests.py``, ``test_sequential_test_runs``
  and ``test_sequential_test_runs_prop``, rounded there to 5 decimals): the
  relative-lift interval of the same summary statistics.
* A hand computation of Waudby-Smith et al. (2023) eq. 9 / Howard et al.
  (2021) eq. 14 with a level chosen so that the logarithms are exact.
* The defining property of the boundary: at ``|diff| = halfwidth`` the
  normal-mixture e-value ``exp(N^2 rho^2 d^2 / (2 s2 (N rho^2 + 1))) /
  sqrt(N rho^2 + 1)`` equals ``1 / alpha``; the p-value is checked against a
  numerical root (``scipy.optimize.brentq``) of ``halfwidth(level) = |diff|``.
* A small peeking simulation: 200 seeded A/A experiments read at 14 nightly
  looks.  A calibrated always-valid method rejects at any look with probability
  <= alpha; the bound allows alpha + 3 binomial standard errors.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import optimize

from analysis.aggregates import Moments
from analysis.stats.inference import ArmEstimate, TwoArmResult, compare, welch_test
from analysis.stats.sequential import (
    SequentialResult,
    sequential_halfwidth,
    sequential_interval,
    sequential_rho,
)


def from_sums(total: float, sum_squares: float, n: int) -> Moments:
    """Moments from gbstats' SampleMeanStatistic(sum, sum_squares, n)."""
    return Moments(n, total / n, 1.0, sum_squares - total * total / n)


def arms(value_c: float, var_c: float, value_t: float, var_t: float, n: int = 500) -> TwoArmResult:
    return compare(ArmEstimate(n, value_c, var_c), ArmEstimate(n, value_t, var_t), 0.05, "m")


# --- published values ------------------------------------------------------------------


def test_matches_gbstats_sequential_mean_example() -> None:
    # gbstats test_sequential_test_runs: SampleMeanStatistic(1396.87, 52377.9767, 3000) vs
    # (2422.7, 134698.29, 3461), N* = 1000, alpha 0.05 -> relative CI (-0.55844, 1.56516), p 1.
    res = welch_test(from_sums(1396.87, 52377.9767, 3000), from_sums(2422.7, 134698.29, 3461), 0.05)
    seq = sequential_interval(res, 0.05, 1000)
    assert res.lift == pytest.approx(0.50336, abs=5e-6)
    assert seq.lift_ci == pytest.approx((-0.55844, 1.56516), abs=5e-6)
    assert seq.p_value == 1.0


def test_matches_gbstats_sequential_proportion_example() -> None:
    # gbstats test_sequential_test_runs_prop: ProportionStatistic(1396, 3000) vs (2422, 3461),
    # default N* = 5000 -> relative CI (0.40098, 0.60675).  gbstats' proportion variance is
    # p (1 - p) (no n - 1), so the arm estimates are built with that convention here.
    pa, pb = 1396 / 3000, 2422 / 3461
    res = compare(
        ArmEstimate(3000, pa, pa * (1 - pa) / 3000),
        ArmEstimate(3461, pb, pb * (1 - pb) / 3461),
        0.05,
        "m",
    )
    seq = sequential_interval(res, 0.05, 5000)
    assert seq.lift_ci == pytest.approx((0.40098, 0.60675), abs=5e-6)
    assert seq.p_value is not None
    assert seq.p_value < 1e-10


# --- hand computation and defining properties -------------------------------------------


def test_hand_computed_halfwidth() -> None:
    # alpha = e^-1: -2 ln alpha = 2, so N* rho^2 = 2 + ln 3.  With N = N* = 1000:
    #   a = N rho^2 = 2 + ln 3,
    #   halfwidth^2 = s2 * 2 (a + 1) / (N a) * ln(sqrt(a + 1) / alpha)
    #               = V * 2 (a + 1) / a * (ln(a + 1) / 2 + 1),   s2 = N V.
    # Arms: Var_C = 0.04, Var_T = 0.05 (V = 0.09), n = 500 each, diff = 0.5.
    alpha = math.exp(-1)
    a = 2 + math.log(3)
    expected_half = math.sqrt(0.09 * 2 * (a + 1) / a * (math.log(a + 1) / 2 + 1))
    assert sequential_rho(alpha, 1000) == pytest.approx(math.sqrt(a / 1000), rel=1e-12)
    seq = sequential_interval(arms(10.0, 0.04, 10.5, 0.05), alpha, 1000)
    assert seq.diff_ci == pytest.approx((0.5 - expected_half, 0.5 + expected_half), rel=1e-12)
    # Lift: Var(L) = Var_T / C^2 + T^2 Var_C / C^4 = 0.05/100 + 110.25 * 0.04 / 10^4.
    var_lift = 0.05 / 100 + 110.25 * 0.04 / 1e4
    lift_half = math.sqrt(var_lift * 2 * (a + 1) / a * (math.log(a + 1) / 2 + 1))
    assert seq.lift_ci == pytest.approx((0.05 - lift_half, 0.05 + lift_half), rel=1e-12)
    # p-value: sqrt(a + 1) exp(-a d^2 / (2 V (a + 1))) with d = 0.5, V = 0.09.
    assert seq.p_value == pytest.approx(
        math.sqrt(a + 1) * math.exp(-a * 0.25 / (2 * 0.09 * (a + 1))), rel=1e-12
    )


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
@pytest.mark.parametrize(("n", "n_star"), [(200, 5000), (5000, 5000), (40_000, 1000)])
def test_boundary_is_where_the_mixture_e_value_reaches_one_over_alpha(
    alpha: float, n: int, n_star: int
) -> None:
    rho = sequential_rho(alpha, n_star)
    variance = 0.37 / n
    d = sequential_halfwidth(variance, n, alpha, rho)
    s2 = n * variance
    nr2 = n * rho**2
    e_value = math.exp(n * n * rho**2 * d * d / (2 * s2 * (nr2 + 1))) / math.sqrt(nr2 + 1)
    assert e_value == pytest.approx(1 / alpha, rel=1e-9)


@pytest.mark.parametrize("diff", [0.05, 0.2, 0.35, 0.6, -0.4])
def test_p_value_is_the_smallest_level_that_excludes_zero(diff: float) -> None:
    # brentq on level -> halfwidth(level) - |diff| with rho held at its alpha = 0.05 value.
    res = arms(10.0, 0.01, 10.0 + diff, 0.012, n=800)
    seq = sequential_interval(res, 0.05, 2000)
    rho = sequential_rho(0.05, 2000)
    variance, n = 0.022, 1600

    def gap(level: float) -> float:
        return sequential_halfwidth(variance, n, level, rho) - abs(diff)

    assert seq.p_value is not None
    assert seq.diff_ci is not None
    if gap(1.0) >= 0:  # excludes 0 at no level below 1
        assert seq.p_value == 1.0
    else:
        root = optimize.brentq(gap, 1e-300, 1.0, xtol=1e-300, rtol=1e-14)
        assert seq.p_value == pytest.approx(root, rel=1e-9)
    # p <= alpha exactly when the reported sequence excludes 0.
    excludes = seq.diff_ci[0] > 0 or seq.diff_ci[1] < 0
    assert (seq.p_value <= 0.05) == excludes


@pytest.mark.parametrize(("n", "n_star"), [(100, 100), (1000, 5000), (20_000, 5000), (10**6, 1000)])
def test_sequence_is_wider_than_the_fixed_horizon_interval(n: int, n_star: int) -> None:
    res = arms(5.0, 2.0 / n, 5.1, 2.5 / n, n=n)
    seq = sequential_interval(res, 0.05, n_star)
    assert res.diff_ci is not None
    assert res.lift_ci is not None
    assert seq.diff_ci is not None
    assert seq.lift_ci is not None
    assert seq.diff_ci[0] < res.diff_ci[0]
    assert seq.diff_ci[1] > res.diff_ci[1]
    assert seq.lift_ci[0] < res.lift_ci[0]
    assert seq.lift_ci[1] > res.lift_ci[1]
    assert seq.p_value is not None
    assert res.p_value is not None
    assert seq.p_value >= res.p_value


def test_p_value_is_monotone_in_the_effect() -> None:
    p_values = []
    for diff in np.linspace(0.0, 1.0, 41):
        seq = sequential_interval(arms(10.0, 0.02, 10.0 + diff, 0.02), 0.05, 1000)
        assert seq.p_value is not None
        p_values.append(seq.p_value)
    assert p_values[0] == 1.0
    assert all(b <= a for a, b in itertools.pairwise(p_values))
    assert p_values[-1] < 1e-3


def test_tuning_near_the_sample_size_gives_the_narrowest_sequence() -> None:
    # As gbstats test_sequential_test_tuning_as_expected: N* far below or above N is wider.
    res = arms(10.0, 0.02, 10.2, 0.02, n=3000)
    widths = {}
    for n_star in (10, 6000, 10**6):
        ci = sequential_interval(res, 0.05, n_star).diff_ci
        assert ci is not None
        widths[n_star] = ci[1] - ci[0]
    assert widths[6000] < widths[10]
    assert widths[6000] < widths[10**6]


def test_swapping_arms_negates_the_sequence() -> None:
    c, t = ArmEstimate(400, 3.0, 0.01), ArmEstimate(600, 3.2, 0.008)
    ab = sequential_interval(compare(c, t, 0.05, "m"), 0.05, 1000)
    ba = sequential_interval(compare(t, c, 0.05, "m"), 0.05, 1000)
    assert ab.diff_ci is not None
    assert ba.diff_ci is not None
    assert ba.diff_ci == pytest.approx((-ab.diff_ci[1], -ab.diff_ci[0]), rel=1e-12)
    assert ba.p_value == pytest.approx(ab.p_value, rel=1e-12)


# --- undefined cases ---------------------------------------------------------------------


def test_undefined_comparisons_give_none_and_a_note() -> None:
    few = compare(ArmEstimate(1, 1.0, math.nan), ArmEstimate(10, 1.0, 0.1), 0.05, "m")
    flat = compare(ArmEstimate(10, 1.0, 0.0), ArmEstimate(10, 1.5, 0.0), 0.05, "m")
    for res in (few, flat):
        seq = sequential_interval(res, 0.05, 1000)
        assert seq == SequentialResult(None, None, None, seq.note)
        assert seq.note
    zero_control = sequential_interval(arms(0.0, 0.01, 0.3, 0.01), 0.05, 1000)
    assert zero_control.diff_ci is not None
    assert zero_control.lift_ci is None
    assert zero_control.note is not None
    assert "control" in zero_control.note


@pytest.mark.parametrize(("alpha", "n_star"), [(0.0, 100), (1.0, 100), (0.05, 0)])
def test_invalid_settings_are_errors(alpha: float, n_star: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        sequential_interval(arms(1.0, 0.1, 1.1, 0.1), alpha, n_star)


# --- peeking -------------------------------------------------------------------------------


def test_daily_peeking_inflates_fixed_horizon_but_not_the_sequence() -> None:
    # 200 A/A experiments, 100 new units per arm per night, 14 nightly looks; an
    # experiment counts as a false positive if any look rejects at alpha = 0.05.
    # N* = the final total sample size (2800).  Bounds: sequential <= 0.05 + 3 SE
    # (SE = sqrt(0.05 * 0.95 / 200) = 0.0154), fixed-horizon clearly above 0.05.
    runs, looks, per_look, alpha = 200, 14, 100, 0.05
    rng = np.random.default_rng(2024_11_20)
    n_final = looks * per_look
    data = rng.exponential(2.0, size=(2, runs, n_final))
    csum, csq = np.cumsum(data, axis=2), np.cumsum(data**2, axis=2)
    fixed = sequential = 0
    for r in range(runs):
        hit_fixed = hit_seq = False
        for look in range(1, looks + 1):
            n = look * per_look
            m = [from_sums(csum[a, r, n - 1], csq[a, r, n - 1], n) for a in (0, 1)]
            res = welch_test(m[0], m[1], alpha)
            seq = sequential_interval(res, alpha, 2 * n_final)
            assert res.p_value is not None
            assert seq.p_value is not None
            hit_fixed |= res.p_value < alpha
            hit_seq |= seq.p_value < alpha
        fixed += hit_fixed
        sequential += hit_seq
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert sequential / runs <= alpha + 3 * se
    assert fixed / runs > alpha + 3 * se
