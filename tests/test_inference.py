"""Reference-value tests of ``analysis.stats.inference``.

Expected values come from published libraries or from closed forms, never from
the module under test:

* Welch's t-test: ``scipy.stats.ttest_ind(equal_var=False)`` (statistic,
  p-value, df, ``confidence_interval``) and statsmodels'
  ``CompareMeans(...).ttest_ind / tconfint_diff(usevar="unequal")``.
* Delta-method ratio test: the linearisation ``z_i = (x_i - R y_i) / mean(y)``
  (Deng, Knoblich & Lu 2018, sec. 3) whose sample variance over n equals the
  delta-method variance of R; its variance comes from statsmodels'
  ``DescrStatsW(z, ddof=1)`` (statsmodels' default is ddof=0), and the test from
  ``scipy.stats.t``.  Because ``R + z_i`` has mean R and the same variance, a
  Welch test of ``R_t + z_t`` against ``R_c + z_c`` is the delta-method test:
  statsmodels' ``CompareMeans`` gives a second, fully independent route.
* Relative lift: an explicit numpy delta method (gradient of T/C - 1 is
  (1/C, -T/C^2); covariance diag(Var T, Var C) since the arms are independent).

Moments are built here with numpy (two-pass); the polars adapter has its own
tests in ``test_aggregates.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.aggregates import Moments
from analysis.stats.inference import (
    ArmEstimate,
    TwoArmResult,
    compare,
    delta_ratio_test,
    welch_test,
)

ALPHAS = [0.05, 0.1, 0.01]
SIZES = [(50, 50), (40, 400), (1000, 300), (5000, 5000)]


def np_moments(x: np.ndarray, y: np.ndarray | None = None) -> Moments:
    """Sufficient statistics of one arm computed with numpy (two-pass)."""
    n = len(x)
    if y is None:
        return Moments(n, float(np.mean(x)), 1.0, float(np.sum((x - np.mean(x)) ** 2)))
    dx, dy = x - np.mean(x), y - np.mean(y)
    return Moments(
        n,
        float(np.mean(x)),
        float(np.mean(y)),
        float(np.sum(dx * dx)),
        float(np.sum(dy * dy)),
        float(np.sum(dx * dy)),
    )


def assert_no_nan(result: TwoArmResult) -> None:
    """Contract: NaN never appears; an undefined field is None and a note says why."""
    fields: list[float | None] = [result.diff, result.lift, result.p_value, result.df]
    for ci in (result.diff_ci, result.lift_ci):
        fields.extend(ci if ci is not None else [None])
    for value in fields:
        assert value is None or not math.isnan(value)
    if None in (result.diff_ci, result.p_value, result.df, result.lift_ci):
        assert result.note


def sample(kind: str, rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    if kind == "normal":
        return rng.normal(10.0 + shift, 3.0, size=n)
    if kind == "exponential":  # skewed, like time spent or revenue
        return rng.exponential(5.0 + shift, size=n)
    return (rng.random(n) < 0.2 + shift / 20).astype(float)  # proportion: 0/1 per unit


def delta_lift_reference(t: float, c: float, var_t: float, var_c: float) -> float:
    """Var(T/C - 1) by the delta method, written as gradient' Sigma gradient."""
    grad = np.array([1 / c, -t / c**2])
    sigma = np.diag([var_t, var_c])
    return float(grad @ sigma @ grad)


# --- Welch's t-test --------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("n_c", "n_t"), SIZES)
@pytest.mark.parametrize("kind", ["normal", "exponential", "proportion"])
@pytest.mark.parametrize("seed", [1, 2])
def test_welch_matches_scipy_and_statsmodels(
    seed: int, kind: str, n_c: int, n_t: int, alpha: float
) -> None:
    rng = np.random.default_rng(seed)
    c = sample(kind, rng, n_c, 0.0)
    t = sample(kind, rng, n_t, 0.4)
    # Unequal variances make Welch differ from Student: scale the treatment.
    if kind == "normal":
        t = 10.4 + 2.0 * (t - 10.4)
    res = welch_test(np_moments(c), np_moments(t), alpha)
    assert_no_nan(res)
    assert res.method == "welch_t"

    # scipy: Welch's t-test of treatment against control (diff = t - c).
    sp = stats.ttest_ind(t, c, equal_var=False)
    sp_ci = sp.confidence_interval(confidence_level=1 - alpha)
    assert res.diff == pytest.approx(np.mean(t) - np.mean(c), rel=1e-9)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.df == pytest.approx(sp.df, rel=1e-9)
    assert res.diff_ci == pytest.approx((sp_ci.low, sp_ci.high), rel=1e-9)

    # statsmodels: CompareMeans with separate variances (d1 - d2 = t - c).
    cm = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    _, sm_p, sm_df = cm.ttest_ind(usevar="unequal")
    assert res.p_value == pytest.approx(sm_p, rel=1e-9)
    assert res.df == pytest.approx(sm_df, rel=1e-9)
    assert res.diff_ci == pytest.approx(cm.tconfint_diff(alpha=alpha, usevar="unequal"), rel=1e-9)

    # Arm estimates: the mean and the variance of the mean s^2 / n (ddof = 1).
    assert res.control.value == pytest.approx(np.mean(c), rel=1e-12)
    assert res.control.variance == pytest.approx(np.var(c, ddof=1) / n_c, rel=1e-12)
    assert res.treatment.variance == pytest.approx(np.var(t, ddof=1) / n_t, rel=1e-12)


def test_welch_textbook_example() -> None:
    # Hand computation.  Control 1, 2, 3, 4, 5: mean 3, s^2 = (4+1+0+1+4)/4 = 2.5,
    # Var(mean) = 2.5/5 = 0.5.  Treatment 2, 4, 6, 8, 10: mean 6, s^2 = 10,
    # Var(mean) = 2.  diff = 3, se = sqrt(2.5), t = 3 / sqrt(2.5) = sqrt(3.6).
    # Welch–Satterthwaite: df = 2.5^2 / (0.5^2/4 + 2^2/4) = 6.25 / 1.0625 = 100/17.
    # Lift = 6/3 - 1 = 1, Var(lift) = 2/9 + 36 * 0.5 / 81 = 4/9, se(lift) = 2/3.
    c = np.array([1.0, 2, 3, 4, 5])
    t = np.array([2.0, 4, 6, 8, 10])
    res = welch_test(np_moments(c), np_moments(t), 0.05)
    q = stats.t.ppf(0.975, 100 / 17)
    assert res.diff == pytest.approx(3.0, rel=1e-12)
    assert res.df == pytest.approx(100 / 17, rel=1e-12)
    assert res.p_value == pytest.approx(2 * stats.t.sf(math.sqrt(3.6), 100 / 17), rel=1e-12)
    assert res.diff_ci == pytest.approx((3 - q * math.sqrt(2.5), 3 + q * math.sqrt(2.5)))
    assert res.lift == pytest.approx(1.0, rel=1e-12)
    assert res.lift_ci == pytest.approx((1 - q * 2 / 3, 1 + q * 2 / 3), rel=1e-12)


def test_swapping_arms_negates_the_difference() -> None:
    # Property of a two-sided test: swapping arms flips diff and its CI, keeps p and df.
    rng = np.random.default_rng(5)
    a, b = np_moments(rng.exponential(2.0, 300)), np_moments(rng.exponential(2.3, 500))
    ab, ba = welch_test(a, b, 0.05), welch_test(b, a, 0.05)
    assert ab.diff is not None
    assert ba.diff is not None
    assert ab.diff_ci is not None
    assert ba.diff_ci is not None
    assert ba.diff == pytest.approx(-ab.diff, rel=1e-12)
    assert ba.diff_ci == pytest.approx((-ab.diff_ci[1], -ab.diff_ci[0]), rel=1e-12)
    assert ba.p_value == pytest.approx(ab.p_value, rel=1e-12)
    assert ba.df == pytest.approx(ab.df, rel=1e-12)


# --- delta-method ratio test ---------------------------------------------------------


def ratio_data(
    rng: np.random.Generator, n: int, p: float, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit numerator and denominator of a ratio metric."""
    if kind == "counts":  # e.g. thumbs-up per answer: Poisson answers, binomial thumbs
        y = rng.poisson(rng.gamma(2.0, 1.5, size=n))
        x = rng.binomial(y, p)
    else:  # e.g. seconds per session: continuous numerator, session counts >= 1
        y = 1 + rng.poisson(2.0, size=n)
        x = y * rng.gamma(2.0, 30.0 * p, size=n)
    return x.astype(float), y.astype(float)


def linearised(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """R = mean(x)/mean(y) and the influence values z_i = (x_i - R y_i) / mean(y)."""
    r = float(np.mean(x) / np.mean(y))
    return r, (x - r * y) / np.mean(y)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("n_c", "n_t"), SIZES)
@pytest.mark.parametrize("kind", ["counts", "continuous"])
@pytest.mark.parametrize("seed", [3, 4])
def test_delta_ratio_matches_linearisation(
    seed: int, kind: str, n_c: int, n_t: int, alpha: float
) -> None:
    rng = np.random.default_rng(seed)
    xc, yc = ratio_data(rng, n_c, 0.30, kind)
    xt, yt = ratio_data(rng, n_t, 0.33, kind)
    res = delta_ratio_test(np_moments(xc, yc), np_moments(xt, yt), alpha)
    assert_no_nan(res)
    assert res.method == "delta_method_t"

    # Route 1: linearise, take the variance with statsmodels (ddof=1 explicitly),
    # Welch–Satterthwaite df from the per-arm variances, p from scipy.stats.t.
    r_c, z_c = linearised(xc, yc)
    r_t, z_t = linearised(xt, yt)
    v_c = DescrStatsW(z_c, ddof=1).var / n_c
    v_t = DescrStatsW(z_t, ddof=1).var / n_t
    df = (v_c + v_t) ** 2 / (v_c**2 / (n_c - 1) + v_t**2 / (n_t - 1))
    se = math.sqrt(v_c + v_t)
    diff = r_t - r_c
    q = stats.t.ppf(1 - alpha / 2, df)
    assert res.control.value == pytest.approx(r_c, rel=1e-12)
    assert res.treatment.value == pytest.approx(r_t, rel=1e-12)
    assert res.control.variance == pytest.approx(v_c, rel=1e-9)
    assert res.treatment.variance == pytest.approx(v_t, rel=1e-9)
    assert res.diff == pytest.approx(diff, rel=1e-9)
    assert res.df == pytest.approx(df, rel=1e-9)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(diff) / se, df), rel=1e-9)
    assert res.diff_ci == pytest.approx((diff - q * se, diff + q * se), rel=1e-9)

    # Route 2: a Welch test on the linearised values R + z (same mean, same variance).
    cm = CompareMeans(DescrStatsW(r_t + z_t), DescrStatsW(r_c + z_c))
    _, sm_p, sm_df = cm.ttest_ind(usevar="unequal")
    assert res.p_value == pytest.approx(sm_p, rel=1e-9)
    assert res.df == pytest.approx(sm_df, rel=1e-9)
    assert res.diff_ci == pytest.approx(cm.tconfint_diff(alpha=alpha, usevar="unequal"), rel=1e-9)

    # Lift: explicit numpy delta method with the same t quantile.
    half = q * math.sqrt(delta_lift_reference(r_t, r_c, v_t, v_c))
    lift = r_t / r_c - 1
    assert res.lift == pytest.approx(lift, rel=1e-9)
    assert res.lift_ci == pytest.approx((lift - half, lift + half), rel=1e-9)


def test_delta_ratio_textbook_example() -> None:
    # Hand computation (Deng et al. 2018, eq. 2: Var R = (s_xx - 2R s_xy + R^2 s_yy) / (n ybar^2)).
    # Control units (x, y) = (1,1), (3,2), (2,3): xbar = 2, ybar = 2, R_c = 1;
    #   deviations x: -1, 1, 0; y: -1, 0, 1 -> s_xx = 2/2 = 1, s_yy = 1, s_xy = 1/2;
    #   Var R_c = (1 - 2*1*0.5 + 1*1) / (3*4) = 1/12.
    # Treatment (2,1), (5,2), (5,3): xbar = 4, ybar = 2, R_t = 2;
    #   deviations x: -2, 1, 1; y: -1, 0, 1 -> s_xx = 6/2 = 3, s_yy = 1, s_xy = 3/2;
    #   Var R_t = (3 - 2*2*1.5 + 4*1) / 12 = 1/12.
    # diff = 1, se = sqrt(1/6), t = sqrt(6);
    # df = (1/6)^2 / ((1/12)^2/2 + (1/12)^2/2) = (1/36) / (1/144) = 4.
    # Two-sided p for nu = 4 in closed form (Abramowitz & Stegun 26.7.3):
    #   1 - sin(th) (1 + cos^2(th) / 2) with tan(th) = t / 2, so sin^2 = 6/10,
    #   cos^2 = 4/10: p = 1 - 1.2 sqrt(0.6) = 0.0704840...
    # 97.5% quantile for nu = 4 in closed form (Shaw 2006, "Sampling Student's T"):
    #   a = 4 p (1 - p), q = 2 sqrt(cos(arccos(sqrt a) / 3) / sqrt a - 1) = 2.776445...
    # Lift = 2/1 - 1 = 1; Var = Var T / C^2 + T^2 Var C / C^4 = 1/12 + 4/12 = 5/12.
    control = np_moments(np.array([1.0, 3, 2]), np.array([1.0, 2, 3]))
    treatment = np_moments(np.array([2.0, 5, 5]), np.array([1.0, 2, 3]))
    res = delta_ratio_test(control, treatment, 0.05)
    a = 4 * 0.975 * 0.025
    q4 = 2 * math.sqrt(math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a) - 1)
    assert res.control.variance == pytest.approx(1 / 12, rel=1e-12)
    assert res.treatment.variance == pytest.approx(1 / 12, rel=1e-12)
    assert res.diff == pytest.approx(1.0, rel=1e-12)
    assert res.df == pytest.approx(4.0, rel=1e-12)
    assert res.p_value == pytest.approx(1 - 1.2 * math.sqrt(0.6), rel=1e-9)
    se = math.sqrt(1 / 6)
    assert res.diff_ci == pytest.approx((1 - q4 * se, 1 + q4 * se), rel=1e-9)
    assert res.lift == pytest.approx(1.0, rel=1e-12)
    half = q4 * math.sqrt(5 / 12)
    assert res.lift_ci == pytest.approx((1 - half, 1 + half), rel=1e-9)


def test_ratio_with_unit_denominators_is_welch() -> None:
    # With y = 1 for every unit the ratio is the mean and the delta variance is
    # s_xx / n: the ratio test must coincide with scipy's Welch test.
    rng = np.random.default_rng(8)
    c, t = rng.exponential(3.0, 200), rng.exponential(3.5, 150)
    res = delta_ratio_test(np_moments(c, np.ones(200)), np_moments(t, np.ones(150)), 0.05)
    sp = stats.ttest_ind(t, c, equal_var=False)
    ci = sp.confidence_interval(0.95)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.df == pytest.approx(sp.df, rel=1e-9)
    assert res.diff_ci == pytest.approx((ci.low, ci.high), rel=1e-9)


# --- relative lift -----------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lift_ci_is_delta_method_not_scaled_diff_ci(seed: int, alpha: float) -> None:
    rng = np.random.default_rng(seed)
    c = rng.exponential(4.0, 800)
    t = rng.exponential(4.6, 600)
    res = welch_test(np_moments(c), np_moments(t), alpha)
    assert res.lift is not None
    assert res.lift_ci is not None
    assert res.diff_ci is not None

    # Reference: numpy delta method on T/C - 1 with Var T = s_t^2/n_t, Var C = s_c^2/n_c,
    # and the Welch quantile with scipy's Welch df.
    big_t, big_c = float(np.mean(t)), float(np.mean(c))
    var_t, var_c = np.var(t, ddof=1) / len(t), np.var(c, ddof=1) / len(c)
    q = stats.t.ppf(1 - alpha / 2, stats.ttest_ind(t, c, equal_var=False).df)
    half = q * math.sqrt(delta_lift_reference(big_t, big_c, var_t, var_c))
    lift = big_t / big_c - 1
    assert res.lift == pytest.approx(lift, rel=1e-9)
    assert res.lift_ci == pytest.approx((lift - half, lift + half), rel=1e-9)
    # Linear and symmetric around the lift.
    assert (res.lift_ci[0] + res.lift_ci[1]) / 2 == pytest.approx(res.lift, rel=1e-9)

    # The convention (contract section 3): not diff_ci divided by the control mean.
    scaled = (res.diff_ci[0] / big_c, res.diff_ci[1] / big_c)
    assert res.lift_ci != pytest.approx(scaled, rel=1e-3)
    # ... which would ignore the uncertainty of C: the delta-method interval is wider.
    assert res.lift_ci[1] - res.lift_ci[0] > scaled[1] - scaled[0]


# --- edge cases --------------------------------------------------------------------------


@pytest.mark.parametrize("test", [welch_test, delta_ratio_test])
@pytest.mark.parametrize("small", [Moments.empty(), Moments(1, 3.0, 2.0)])
def test_fewer_than_two_units_gives_none(
    small: Moments, test: Callable[[Moments, Moments, float], TwoArmResult]
) -> None:
    other = np_moments(np.array([1.0, 2, 4, 8]), np.array([1.0, 1, 2, 3]))
    for control, treatment in ((small, other), (other, small)):
        res = test(control, treatment, 0.05)
        assert_no_nan(res)
        assert res.diff is None
        assert res.diff_ci is None
        assert res.lift is None
        assert res.lift_ci is None
        assert res.p_value is None
        assert res.df is None
        assert res.note is not None
        assert "2 units" in res.note


def test_zero_variance_in_both_arms_gives_none() -> None:
    # Constant arms: se = 0, no test is possible; the point estimates stay defined.
    res = welch_test(Moments(10, 1.0), Moments(12, 1.5), 0.05)
    assert_no_nan(res)
    assert res.diff == pytest.approx(0.5)
    assert res.lift == pytest.approx(0.5)
    assert res.diff_ci is None
    assert res.lift_ci is None
    assert res.p_value is None
    assert res.df is None
    assert res.note is not None
    assert "variation" in res.note


def test_zero_variance_in_one_arm_matches_scipy() -> None:
    # One constant arm still gives a test; scipy's Welch df is then n - 1 of the other arm.
    c = np.full(20, 0.0)
    t = np.array([0.0, 1.0] * 15)
    res = welch_test(np_moments(c), np_moments(t), 0.05)
    assert_no_nan(res)
    sp = stats.ttest_ind(t, c, equal_var=False)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.df == pytest.approx(sp.df, rel=1e-9)
    assert res.df == pytest.approx(29.0, rel=1e-12)


def test_control_zero_gives_no_lift_but_a_difference() -> None:
    # Control mean exactly 0 with positive variance: lift = T/0 - 1 is undefined,
    # diff and its test are as scipy computes them.
    c = np.array([-1.0, 1.0] * 50)
    t = np.array([-0.5, 1.5] * 40)
    res = welch_test(np_moments(c), np_moments(t), 0.05)
    assert_no_nan(res)
    assert res.lift is None
    assert res.lift_ci is None
    assert res.note is not None
    assert "control" in res.note
    sp = stats.ttest_ind(t, c, equal_var=False)
    ci = sp.confidence_interval(0.95)
    assert res.diff == pytest.approx(0.5, rel=1e-12)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.diff_ci == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_proportion_with_no_conversions_in_control() -> None:
    # 0/1 data, control never converts: control variance 0, lift undefined, diff defined.
    c = np.zeros(500)
    t = (np.arange(400) % 50 == 0).astype(float)  # 8 conversions
    res = welch_test(np_moments(c), np_moments(t), 0.05)
    assert_no_nan(res)
    assert res.lift is None
    assert res.note is not None
    sp = stats.ttest_ind(t, c, equal_var=False)
    ci = sp.confidence_interval(0.95)
    assert res.diff == pytest.approx(8 / 400, rel=1e-12)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.diff_ci == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_ratio_without_denominator_events_gives_none() -> None:
    # mean(y) = 0 in an arm: R = 0/0 is undefined.
    control = Moments(50, 0.0, 0.0)
    treatment = np_moments(np.array([1.0, 0, 2, 1]), np.array([2.0, 1, 3, 2]))
    for c, t in ((control, treatment), (treatment, control)):
        res = delta_ratio_test(c, t, 0.05)
        assert_no_nan(res)
        assert res.diff is None
        assert res.p_value is None
        assert res.note is not None
        assert "denominator" in res.note


def test_compare_with_undefined_arm_estimates_never_returns_nan() -> None:
    # ArmEstimate carries NaN for an undefined variance; the result must not.
    nan_arm = ArmEstimate(10, 1.0, math.nan)
    ok_arm = ArmEstimate(10, 2.0, 0.1)
    for c, t in ((nan_arm, ok_arm), (ok_arm, nan_arm)):
        res = compare(c, t, 0.05, "m")
        assert_no_nan(res)
        assert res.p_value is None
        assert res.note is not None


@pytest.mark.parametrize("alpha", ALPHAS)
def test_normal_quantile_matches_statsmodels_ztest(alpha: float) -> None:
    # compare(normal=True) is the large-sample z version (unequal variances).
    # Expected: statsmodels CompareMeans.ztest_ind / zconfint_diff(usevar="unequal").
    rng = np.random.default_rng(12)
    c, t = rng.exponential(2.0, 300), rng.exponential(2.2, 450)
    arm_c = ArmEstimate(len(c), float(np.mean(c)), float(np.var(c, ddof=1) / len(c)))
    arm_t = ArmEstimate(len(t), float(np.mean(t)), float(np.var(t, ddof=1) / len(t)))
    res = compare(arm_c, arm_t, alpha, "z", normal=True)
    assert_no_nan(res)
    cm = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    _, z_p = cm.ztest_ind(usevar="unequal")
    assert res.p_value == pytest.approx(z_p, rel=1e-9)
    assert res.diff_ci == pytest.approx(cm.zconfint_diff(alpha=alpha, usevar="unequal"), rel=1e-9)
