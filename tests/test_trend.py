"""Reference-value tests of ``analysis.stats.trend``.

Expected values come from statsmodels, with the variances treated as known
(no residual scale factor; the choice is documented in the module):

* ``WLS(y, X, weights=1/v).fit(cov_type="fixed scale")`` — params, bse,
  normal p-values and ``conf_int`` (scale fixed at 1), to 1e-9;
* ``WLS(...).fit()`` — params, and ``cov_params() / scale`` for the
  known-variance covariance (the default bse is scaled by the residual mean
  square and must differ);
* ``GLM(y, X, family=Gaussian(), var_weights=1/v).fit(scale=1.0)``, a third route;
* a hand computation with the normal table (Abramowitz & Stegun 26.2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from analysis.stats.trend import lift_trend


def sample(seed: int, k: int, slope: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Daily lifts with day-dependent precision (fewer units on later days)."""
    rng = np.random.default_rng(seed)
    days = np.arange(k, dtype=float)
    variances = 0.02**2 * (1 + days / 4) * rng.uniform(0.5, 2.0, size=k)
    lifts = 0.05 + slope * days + rng.normal(0.0, np.sqrt(variances))
    return days, lifts, variances


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("slope", [0.0, 0.002, -0.004])
@pytest.mark.parametrize(("seed", "k"), [(1, 2), (2, 3), (3, 14), (4, 30)])
def test_matches_statsmodels_wls_with_known_variances(
    seed: int, k: int, slope: float, alpha: float
) -> None:
    days, lifts, variances = sample(seed, k, slope)
    res = lift_trend(days.tolist(), lifts.tolist(), variances.tolist(), alpha)
    X = sm.add_constant(days)  # noqa: N806  (design-matrix convention)

    fixed = sm.WLS(lifts, X, weights=1 / variances).fit(cov_type="fixed scale")
    assert res.intercept == pytest.approx(fixed.params[0], rel=1e-9, abs=1e-12)
    assert res.slope == pytest.approx(fixed.params[1], rel=1e-9, abs=1e-12)
    assert res.intercept_se == pytest.approx(fixed.bse[0], rel=1e-9)
    assert res.slope_se == pytest.approx(fixed.bse[1], rel=1e-9)
    assert res.p_value == pytest.approx(fixed.pvalues[1], rel=1e-9)
    assert res.slope_ci == pytest.approx(tuple(fixed.conf_int(alpha=alpha)[1]), rel=1e-9)

    if k > 2:  # with 2 points the fit is exact; statsmodels' residual scale divides by 0 df
        glm = sm.GLM(lifts, X, family=sm.families.Gaussian(), var_weights=1 / variances)
        glm_fit = glm.fit(scale=1.0)
        assert res.slope == pytest.approx(glm_fit.params[1], rel=1e-9, abs=1e-12)
        assert res.slope_se == pytest.approx(glm_fit.bse[1], rel=1e-9)
        assert res.p_value == pytest.approx(glm_fit.pvalues[1], rel=1e-9)

        default = sm.WLS(lifts, X, weights=1 / variances).fit()
        unscaled = default.cov_params() / default.scale
        assert res.slope_se == pytest.approx(math.sqrt(unscaled[1, 1]), rel=1e-9)
        assert res.intercept_se == pytest.approx(math.sqrt(unscaled[0, 0]), rel=1e-9)
        if abs(default.scale - 1) > 1e-3:
            assert res.slope_se != pytest.approx(default.bse[1], rel=1e-6)
    assert (res.buckets, res.excluded, res.note) == (k, 0, None)


def test_hand_example() -> None:
    # Days 0, 1, 2; lifts 0.00, 0.10, 0.20 (an exact line); every variance 0.01 (w = 100).
    # d_bar = 1, S_dd = 100 * (1 + 0 + 1) = 200: slope = 0.1, se = 1 / sqrt(200);
    # z = 0.1 * sqrt(200) = sqrt(2), p = 2 Phi(-sqrt 2) = 0.157299 (A&S table 26.1);
    # intercept 0, Var = 1/300 + 1/200 = 1/120.
    res = lift_trend([0, 1, 2], [0.0, 0.1, 0.2], [0.01] * 3, 0.05)
    assert res.slope == pytest.approx(0.1, rel=1e-12)
    assert res.slope_se == pytest.approx(1 / math.sqrt(200), rel=1e-12)
    assert res.p_value == pytest.approx(2 * stats.norm.cdf(-math.sqrt(2)), rel=1e-12)
    assert res.p_value == pytest.approx(0.157299, abs=1e-6)
    assert res.intercept == pytest.approx(0.0, abs=1e-15)
    assert res.intercept_se == pytest.approx(math.sqrt(1 / 120), rel=1e-12)
    z = stats.norm.ppf(0.975)
    assert res.slope_ci == pytest.approx((0.1 - z / math.sqrt(200), 0.1 + z / math.sqrt(200)))


def test_flat_lift_has_zero_slope() -> None:
    res = lift_trend([0, 1, 2, 3], [0.05] * 4, [0.01, 0.02, 0.03, 0.04], 0.05)
    assert res.slope == pytest.approx(0.0, abs=1e-15)
    assert res.p_value == pytest.approx(1.0, rel=1e-12)


def test_shifting_days_changes_only_the_intercept() -> None:
    days, lifts, variances = sample(9, 10, 0.003)
    base = lift_trend(days.tolist(), lifts.tolist(), variances.tolist(), 0.05)
    shifted = lift_trend((days + 1).tolist(), lifts.tolist(), variances.tolist(), 0.05)
    assert base.slope is not None
    assert base.intercept is not None
    assert shifted.slope == pytest.approx(base.slope, rel=1e-9)
    assert shifted.slope_se == pytest.approx(base.slope_se, rel=1e-9)
    assert shifted.p_value == pytest.approx(base.p_value, rel=1e-9)
    assert shifted.intercept == pytest.approx(base.intercept - base.slope, rel=1e-9)


def test_undefined_buckets_are_left_out_and_counted() -> None:
    full = lift_trend([0, 1, 2], [0.0, 0.1, 0.3], [0.01, 0.02, 0.01], 0.05)
    res = lift_trend(
        [0, 1, 2, 3, 4, 5],
        [0.0, 0.1, 0.3, None, math.nan, 0.2],
        [0.01, 0.02, 0.01, 0.01, 0.01, 0.0],
        0.05,
    )
    assert res.slope == pytest.approx(full.slope, rel=1e-12)
    assert res.slope_se == pytest.approx(full.slope_se, rel=1e-12)
    assert (res.buckets, res.excluded) == (3, 3)
    assert res.note is not None
    assert "3 bucket(s)" in res.note


@pytest.mark.parametrize(
    ("days", "estimates", "variances"),
    [
        ([], [], []),
        ([3], [0.1], [0.01]),
        ([2, 2, 2], [0.1, 0.2, 0.0], [0.01, 0.01, 0.02]),  # one distinct day
        ([0, 1], [0.1, None], [0.01, 0.01]),
    ],
)
def test_no_slope_without_two_days(
    days: list[float], estimates: list[float | None], variances: list[float | None]
) -> None:
    res = lift_trend(days, estimates, variances, 0.05)
    assert res.slope is None
    assert res.p_value is None
    assert res.slope_ci is None
    assert res.note is not None
    assert "fewer than 2 days" in res.note


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="variances"):
        lift_trend([0, 1], [0.1, 0.2], [0.01], 0.05)
    with pytest.raises(ValueError, match="alpha"):
        lift_trend([0, 1], [0.1, 0.2], [0.01, 0.01], 1.0)
