"""Reference-value tests of CUPED (``analysis.stats.cuped``).

Expected values come from independent computations on the per-unit data:

* Mean metrics: ``theta`` is the OLS slope of ``x`` on ``x_pre`` (with an
  intercept) over the pooled units, from ``statsmodels.api.OLS``.  The adjusted
  per-unit values ``x - theta (x_pre - pooled mean(x_pre))`` are then tested
  with ``scipy.stats.ttest_ind(equal_var=False)`` and statsmodels'
  ``CompareMeans(usevar="unequal")``: the CUPED test through
  ``inference.compare`` must reproduce them to 1e-9.
* Ratio metrics: an explicit numpy linearisation (Deng, Knoblich & Lu 2018,
  sec. 3): per unit ``lin = (x - R y) / mean(y)`` and
  ``lin_pre = (x_pre - R_pre y_pre) / mean(y_pre)``; ``theta`` is the OLS slope
  of the pooled ``lin`` on the pooled ``lin_pre`` (both linearised at the
  pooled means), and each arm's variance is ``var(lin - theta lin_pre) / n``
  with the arm's own linearisation (numpy, ddof=1).
* Variance reduction: in theory ``rho^2`` for a covariate with correlation
  rho (Deng et al. 2013, sec. 3.2); checked by a small seeded simulation.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.joint import JointMoments, joint_moments_from_array, joint_moments_from_row
from analysis.polars_exprs import joint_moment_exprs
from analysis.stats.cuped import cuped_estimates
from analysis.stats.inference import compare, delta_ratio_test, welch_test


def mean_arms(
    seed: int, n_c: int, n_t: int, rho: float, effect: float
) -> tuple[np.ndarray, np.ndarray]:
    """(x, x_pre) per unit: skewed counts whose post value depends on the pre value."""
    rng = np.random.default_rng(seed)

    def arm(n: int, shift: float) -> np.ndarray:
        level = rng.gamma(2.0, 2.0, size=n)
        pre = rng.poisson(level).astype(float)
        post = rng.poisson(level * (1 + shift)).astype(float) + rho * pre
        return np.column_stack([post, pre])

    return arm(n_c, 0.0), arm(n_t, effect)


def ratio_arms(seed: int, n_c: int, n_t: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, x_pre, y_pre) per unit: a per-unit rate shared by the two periods."""
    rng = np.random.default_rng(seed)

    def arm(n: int, shift: float) -> np.ndarray:
        rate = rng.beta(4.0, 6.0, size=n)
        activity = rng.gamma(2.0, 1.5, size=n)
        y_pre = 1 + rng.poisson(activity)
        y = 1 + rng.poisson(activity)
        x_pre = rng.binomial(y_pre, rate)
        x = rng.binomial(y, np.clip(rate * (1 + shift), 0, 1))
        return np.column_stack([x, y, x_pre, y_pre]).astype(float)

    return arm(n_c, 0.0), arm(n_t, effect)


# --- mean metrics ----------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize(("n_c", "n_t"), [(40, 60), (500, 500), (3000, 1000)])
@pytest.mark.parametrize("seed", [1, 2])
def test_mean_cuped_matches_ols_and_welch_on_adjusted_values(
    seed: int, n_c: int, n_t: int, alpha: float
) -> None:
    c, t = mean_arms(seed, n_c, n_t, rho=0.8, effect=0.1)
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    assert out.applied
    assert out.skip_reason is None
    assert out.control is not None
    assert out.treatment is not None
    assert out.theta is not None

    # theta: statsmodels OLS of x on (1, x_pre) over the pooled units.
    pooled = np.vstack([c, t])
    ols = sm.OLS(pooled[:, 0], sm.add_constant(pooled[:, 1])).fit()
    assert out.theta == pytest.approx(ols.params[1], rel=1e-9)

    # Explicit per-unit adjustment with the pooled pre-period mean.
    center = pooled[:, 1].mean()
    adj_c = c[:, 0] - ols.params[1] * (c[:, 1] - center)
    adj_t = t[:, 0] - ols.params[1] * (t[:, 1] - center)
    assert out.control.value == pytest.approx(adj_c.mean(), rel=1e-9)
    assert out.treatment.value == pytest.approx(adj_t.mean(), rel=1e-9)
    assert out.control.variance == pytest.approx(np.var(adj_c, ddof=1) / n_c, rel=1e-9)
    assert out.treatment.variance == pytest.approx(np.var(adj_t, ddof=1) / n_t, rel=1e-9)

    # The adjusted comparison is Welch's test on the adjusted values (scipy, statsmodels).
    res = compare(out.control, out.treatment, alpha, out.method)
    sp = stats.ttest_ind(adj_t, adj_c, equal_var=False)
    ci = sp.confidence_interval(confidence_level=1 - alpha)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.df == pytest.approx(sp.df, rel=1e-9)
    assert res.diff_ci == pytest.approx((ci.low, ci.high), rel=1e-9)
    cm = CompareMeans(DescrStatsW(adj_t), DescrStatsW(adj_c))
    assert res.diff_ci == pytest.approx(cm.tconfint_diff(alpha=alpha, usevar="unequal"), rel=1e-9)

    # Variance reduction: 1 - Var_adj(diff) / Var(diff), from numpy.
    var_adj = np.var(adj_c, ddof=1) / n_c + np.var(adj_t, ddof=1) / n_t
    var_raw = np.var(c[:, 0], ddof=1) / n_c + np.var(t[:, 0], ddof=1) / n_t
    assert out.variance_reduction == pytest.approx(1 - var_adj / var_raw, rel=1e-9)
    assert out.variance_reduction is not None
    assert out.variance_reduction > 0


def test_mean_cuped_through_polars_group_by() -> None:
    # The integration path: per-arm JointMoments from polars, then CUPED.
    c, t = mean_arms(7, 300, 400, rho=0.5, effect=0.0)
    data = np.vstack([c, t])
    frame = pl.DataFrame({"arm": ["c"] * 300 + ["t"] * 400, "x": data[:, 0], "x_pre": data[:, 1]})
    rows = {
        r["arm"]: joint_moments_from_row(r, ["x", "x_pre"])
        for r in frame.group_by("arm").agg(joint_moment_exprs(["x", "x_pre"])).iter_rows(named=True)
    }
    via_polars = cuped_estimates(rows["c"], rows["t"], "mean")
    via_numpy = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    assert via_polars.theta == pytest.approx(via_numpy.theta, rel=1e-12)
    assert via_polars.variance_reduction == pytest.approx(via_numpy.variance_reduction, rel=1e-9)


def test_swapping_arms_negates_the_adjusted_difference() -> None:
    c, t = mean_arms(3, 200, 300, rho=0.7, effect=0.2)
    mc, mt = joint_moments_from_array(c), joint_moments_from_array(t)
    ab, ba = cuped_estimates(mc, mt, "mean"), cuped_estimates(mt, mc, "mean")
    assert ab.theta == pytest.approx(ba.theta, rel=1e-12)
    assert ab.control is not None
    assert ab.treatment is not None
    assert ba.control is not None
    assert ba.treatment is not None
    assert ab.treatment.value - ab.control.value == pytest.approx(
        -(ba.treatment.value - ba.control.value), rel=1e-12
    )


def test_scaling_the_metric_scales_the_adjusted_estimates() -> None:
    # Scaling x by 10 scales theta, values and standard errors by 10; the reduction is unchanged.
    c, t = mean_arms(4, 200, 200, rho=0.6, effect=0.1)
    scale = np.array([10.0, 1.0])
    base = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    scaled = cuped_estimates(
        joint_moments_from_array(c * scale), joint_moments_from_array(t * scale), "mean"
    )
    assert base.theta is not None
    assert base.control is not None
    assert scaled.control is not None
    assert scaled.theta == pytest.approx(10 * base.theta, rel=1e-9)
    assert scaled.control.value == pytest.approx(10 * base.control.value, rel=1e-9)
    assert scaled.control.variance == pytest.approx(100 * base.control.variance, rel=1e-9)
    assert scaled.variance_reduction == pytest.approx(base.variance_reduction, rel=1e-9)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_variance_reduction_is_rho_squared(rho: float) -> None:
    # Correlated normal pre/post with correlation rho: Var(x_adj) = Var(x) (1 - rho^2)
    # (Deng et al. 2013, sec. 3.2).  n = 20,000 per arm: the sampling error of the
    # estimated reduction is about (1 - rho^2) * 2 / sqrt(2 n) < 0.011; tolerance 0.02.
    rng = np.random.default_rng(round(100 * rho))
    cov = [[4.0, 2.0 * rho * 3.0], [2.0 * rho * 3.0, 9.0]]
    c = rng.multivariate_normal([10.0, 5.0], cov, size=20_000)
    t = rng.multivariate_normal([10.5, 5.0], cov, size=20_000)
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    assert out.variance_reduction == pytest.approx(rho**2, abs=0.02)
    assert out.theta == pytest.approx(rho * 2.0 / 3.0, abs=0.02)


# --- ratio metrics ---------------------------------------------------------------------


def lin(data: np.ndarray, x: int, y: int, means: np.ndarray) -> np.ndarray:
    """Delta-method influence values (x - R y) / mean(y) at the given means."""
    r = means[x] / means[y]
    out: np.ndarray = (data[:, x] - r * data[:, y]) / means[y]
    return out


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize(("n_c", "n_t"), [(50, 80), (1000, 1000), (4000, 1500)])
@pytest.mark.parametrize("seed", [5, 6])
def test_ratio_cuped_matches_explicit_linearisation(
    seed: int, n_c: int, n_t: int, alpha: float
) -> None:
    c, t = ratio_arms(seed, n_c, n_t, effect=0.1)
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "ratio")
    assert out.applied
    assert out.control is not None
    assert out.treatment is not None
    assert out.theta is not None
    assert out.method == "cuped_delta_method_t"

    # theta: OLS slope of the pooled lin on the pooled lin_pre (pooled means).
    pooled = np.vstack([c, t])
    pm = pooled.mean(axis=0)
    ols = sm.OLS(lin(pooled, 0, 1, pm), sm.add_constant(lin(pooled, 2, 3, pm))).fit()
    theta = ols.params[1]
    assert out.theta == pytest.approx(theta, rel=1e-9)

    # Each arm: R - theta (R_pre - pooled R_pre), variance var(lin - theta lin_pre) / n.
    r_pre_pooled = pm[2] / pm[3]
    for data, est in ((c, out.control), (t, out.treatment)):
        m = data.mean(axis=0)
        adjusted = lin(data, 0, 1, m) - theta * lin(data, 2, 3, m)
        value = m[0] / m[1] - theta * (m[2] / m[3] - r_pre_pooled)
        assert est.value == pytest.approx(value, rel=1e-9)
        assert est.variance == pytest.approx(np.var(adjusted, ddof=1) / len(data), rel=1e-9)

    # The unadjusted reference for the reduction: the delta-method test's arm variances.
    raw = delta_ratio_test(
        joint_moments_from_array(c).marginal(0, 1),
        joint_moments_from_array(t).marginal(0, 1),
        alpha,
    )
    var_raw = raw.control.variance + raw.treatment.variance
    assert out.variance_reduction == pytest.approx(
        1 - (out.control.variance + out.treatment.variance) / var_raw, rel=1e-9
    )
    assert out.variance_reduction is not None
    assert out.variance_reduction > 0


def test_ratio_cuped_with_unit_denominators_is_mean_cuped() -> None:
    # y = y_pre = 1 for every unit: the ratio is the mean, lin = x - mean(x).
    c, t = mean_arms(9, 300, 250, rho=0.7, effect=0.1)

    def widen(a: np.ndarray) -> np.ndarray:
        ones = np.ones(len(a))
        return np.column_stack([a[:, 0], ones, a[:, 1], ones])

    mean_out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    ratio_out = cuped_estimates(
        joint_moments_from_array(widen(c)), joint_moments_from_array(widen(t)), "ratio"
    )
    assert ratio_out.theta == pytest.approx(mean_out.theta, rel=1e-9)
    assert ratio_out.control is not None
    assert mean_out.control is not None
    assert ratio_out.control.value == pytest.approx(mean_out.control.value, rel=1e-9)
    assert ratio_out.control.variance == pytest.approx(mean_out.control.variance, rel=1e-9)
    assert ratio_out.variance_reduction == pytest.approx(mean_out.variance_reduction, rel=1e-9)


# --- skipped with a reason ---------------------------------------------------------------


def test_no_pre_period_is_skipped_with_a_reason() -> None:
    # No unit has a pre-period (x_pre = 0 for all): nothing to regress on.
    c, t = mean_arms(10, 100, 100, rho=0.5, effect=0.0)
    c[:, 1] = 0.0
    t[:, 1] = 0.0
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    assert not out.applied
    assert out.control is None
    assert out.theta is None
    assert out.variance_reduction is None
    assert out.skip_reason is not None
    assert "pre-period" in out.skip_reason


def test_ratio_without_pre_period_denominators_is_skipped() -> None:
    c, t = ratio_arms(11, 100, 100, effect=0.0)
    c[:, 2:] = 0.0
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "ratio")
    assert not out.applied
    assert out.skip_reason is not None
    assert "pre-period denominator" in out.skip_reason


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_units_is_skipped(n: int) -> None:
    c, t = mean_arms(12, 50, max(n, 1), rho=0.5, effect=0.0)
    small = joint_moments_from_array(t[:n])
    out = cuped_estimates(joint_moments_from_array(c), small, "mean")
    assert out.skip_reason == "fewer than 2 units in an arm"


def test_constant_metric_is_skipped() -> None:
    pre = np.arange(20, dtype=float)
    c = np.column_stack([np.ones(20), pre])
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(c), "mean")
    assert out.skip_reason == "no variation in either arm"


def test_wrong_number_of_variables_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 4 variables"):
        cuped_estimates(JointMoments.empty(2), JointMoments.empty(2), "ratio")


def test_adjusted_results_never_carry_nan() -> None:
    c, t = mean_arms(13, 100, 100, rho=0.5, effect=0.0)
    out = cuped_estimates(joint_moments_from_array(c), joint_moments_from_array(t), "mean")
    for value in (out.theta, out.variance_reduction):
        assert value is not None
        assert not math.isnan(value)
    res = welch_test(
        joint_moments_from_array(c).marginal(0), joint_moments_from_array(t).marginal(0), 0.05
    )
    assert out.control is not None
    assert out.control.variance < res.control.variance
