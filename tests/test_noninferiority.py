"""Reference-value tests of ``analysis.stats.noninferiority``.

Expected values come from:

* an explicit scipy computation on raw data: numpy means and ddof=1 variances,
  the lift's delta-method variance written as gradient' Sigma gradient, the
  Welch df of ``scipy.stats.ttest_ind(equal_var=False)``, and ``scipy.stats.t``
  for the one-sided p-value and bound (rel 1e-9);
* statsmodels' one-sample ``DescrStatsW.ttest_mean(value, alternative=...)``
  where the control value is known exactly (Var_C = 0): then
  ``L - m = (T - (1 + m) C) / C`` and the test is a one-sample t-test of the
  treatment against ``(1 + m) C`` with n_t - 1 df (rel 1e-9);
* statsmodels' ``CompareMeans.ztest_ind(alternative=..., usevar="unequal")`` on
  the delta-method linearisation of the lift (treatment values t_i / C,
  control values c_i T / C^2: same means, variances Var_T / C^2 and
  T^2 Var_C / C^4) for the normal version (rel 1e-9);
* a hand computation with the normal table (Abramowitz & Stegun 26.2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.stats.inference import ArmEstimate, compare
from analysis.stats.noninferiority import (
    Goal,
    NonInferiorityResult,
    noninferiority_from_lift,
    noninferiority_test,
)

GOALS: list[Goal] = ["decrease", "increase"]


def arm(x: np.ndarray) -> ArmEstimate:
    return ArmEstimate(len(x), float(np.mean(x)), float(np.var(x, ddof=1) / len(x)))


def assert_no_nan(res: NonInferiorityResult) -> None:
    for value in (res.lift, res.bound, res.p_value, res.df):
        assert value is None or not math.isnan(value)
    if res.p_value is None:
        assert res.note
        assert not res.passed
        assert not res.inferior


@pytest.mark.parametrize("alpha", [0.05, 0.025, 0.1])
@pytest.mark.parametrize("margin", [0.02, 0.05, 0.10])
@pytest.mark.parametrize("goal", GOALS)
@pytest.mark.parametrize(("seed", "shift"), [(1, 0.0), (2, 0.03), (3, -0.03), (4, 0.08)])
def test_matches_explicit_scipy_computation(
    seed: int, shift: float, goal: Goal, margin: float, alpha: float
) -> None:
    rng = np.random.default_rng(seed)
    c = rng.gamma(2.0, 5.0, size=800)  # e.g. cost per user, mean 10
    t = rng.gamma(2.0, 5.0 * (1 + shift), size=600) * 1.2 - 2.0  # unequal variance
    res = noninferiority_test(arm(c), arm(t), margin, goal, alpha)
    assert_no_nan(res)

    big_c, big_t = np.mean(c), np.mean(t)
    var_c, var_t = np.var(c, ddof=1) / len(c), np.var(t, ddof=1) / len(t)
    grad = np.array([1 / big_c, -big_t / big_c**2])
    se = math.sqrt(grad @ np.diag([var_t, var_c]) @ grad)
    df = stats.ttest_ind(t, c, equal_var=False).df
    lift = big_t / big_c - 1
    limit = margin if goal == "decrease" else -margin
    q = stats.t.ppf(1 - alpha, df)
    if goal == "decrease":  # H0: lift >= m, lower tail
        p = stats.t.cdf((lift - limit) / se, df)
        bound, other = lift + q * se, lift - q * se
    else:  # H0: lift <= -m, upper tail
        p = stats.t.sf((lift - limit) / se, df)
        bound, other = lift - q * se, lift + q * se

    assert res.lift == pytest.approx(lift, rel=1e-9)
    assert res.df == pytest.approx(df, rel=1e-9)
    assert res.p_value == pytest.approx(p, rel=1e-9)
    assert res.bound == pytest.approx(bound, rel=1e-9)
    assert res.limit == limit
    assert (res.margin, res.goal, res.alpha) == (margin, goal, alpha)
    # passed <=> the bound is inside the limit <=> p < alpha.

    def worse(a: float, b: float) -> bool:  # a is at or beyond b on the harmful side
        return a >= b if goal == "decrease" else a <= b

    assert res.passed == (not worse(bound, limit))
    assert res.passed == (p < alpha)
    assert res.inferior == (worse(other, limit) and other != limit)
    assert not (res.passed and res.inferior)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("goal", GOALS)
def test_bound_is_an_end_of_the_two_sided_lift_ci(goal: Goal, alpha: float) -> None:
    # One-sided 1 - alpha bound = end of the two-sided 1 - 2 alpha CI of compare().
    rng = np.random.default_rng(7)
    control, treatment = arm(rng.exponential(3.0, 300)), arm(rng.exponential(3.2, 250))
    res = noninferiority_test(control, treatment, 0.1, goal, alpha)
    ci = compare(control, treatment, 2 * alpha, "welch_t").lift_ci
    assert ci is not None
    assert res.bound == pytest.approx(ci[1] if goal == "decrease" else ci[0], rel=1e-12)


@pytest.mark.parametrize("margin", [0.05, 0.2])
@pytest.mark.parametrize("goal", GOALS)
@pytest.mark.parametrize("seed", [11, 12])
def test_known_control_matches_statsmodels_one_sample_t(
    seed: int, goal: Goal, margin: float
) -> None:
    rng = np.random.default_rng(seed)
    t = rng.normal(10.5, 4.0, size=120)
    control = ArmEstimate(1000, 10.0, 0.0)  # a control value known without error
    res = noninferiority_test(control, arm(t), margin, goal, 0.05)
    if goal == "decrease":
        _, p, df = DescrStatsW(t).ttest_mean(value=(1 + margin) * 10.0, alternative="smaller")
    else:
        _, p, df = DescrStatsW(t).ttest_mean(value=(1 - margin) * 10.0, alternative="larger")
    assert res.df == pytest.approx(df, rel=1e-12)  # Welch df with Var_C = 0: n_t - 1
    assert res.p_value == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("goal", GOALS)
@pytest.mark.parametrize("seed", [21, 22])
def test_normal_version_matches_statsmodels_ztest_on_linearisation(seed: int, goal: Goal) -> None:
    rng = np.random.default_rng(seed)
    c, t = rng.lognormal(1.0, 0.8, 2000), rng.lognormal(1.03, 0.8, 1500)
    control, treatment = arm(c), arm(t)
    res = noninferiority_test(control, treatment, 0.05, goal, 0.05, df=math.inf)
    big_c, big_t = control.value, treatment.value
    lift, limit = big_t / big_c - 1, res.limit
    a, b = DescrStatsW(t / big_c), DescrStatsW(c * big_t / big_c**2)
    alternative = "smaller" if goal == "decrease" else "larger"
    # ztest_ind tests mean(a) - mean(b) (= 0) against value; value = limit - lift
    # makes its statistic (lift - limit) / se.
    _, p = CompareMeans(a, b).ztest_ind(
        alternative=alternative, usevar="unequal", value=limit - lift
    )
    assert res.df == math.inf
    assert res.p_value == pytest.approx(p, rel=1e-9)


def test_hand_example() -> None:
    # C = 10, Var_C = 0.01; T = 11, Var_T = 0.0279: lift = 0.1,
    # Var(lift) = 0.0279 / 100 + 121 * 0.01 / 10^4 = 0.000279 + 0.000121 = 0.0004, se = 0.02.
    # Normal (df = inf), alpha 0.05: q = z_0.95 = 1.6448536269514722.
    control, treatment = ArmEstimate(500, 10.0, 0.01), ArmEstimate(500, 11.0, 0.0279)
    z95 = 1.6448536269514722
    # Goal increase, margin 5 %: z = (0.1 + 0.05) / 0.02 = 7.5, p = Phi(-7.5) = 3.19e-14;
    # lower bound 0.1 - z95 * 0.02 = 0.0671 > -0.05: passed.
    up = noninferiority_test(control, treatment, 0.05, "increase", 0.05, df=math.inf)
    assert up.lift == pytest.approx(0.1, rel=1e-12)
    assert up.p_value == pytest.approx(stats.norm.sf(7.5), rel=1e-9)
    assert up.p_value == pytest.approx(3.19e-14, rel=1e-2)  # A&S 26.2.12 asymptotic
    assert up.bound == pytest.approx(0.1 - z95 * 0.02, rel=1e-9)
    assert up.passed
    assert not up.inferior
    # Goal decrease, margin 5 %: z = 2.5, p = Phi(2.5) = 0.99379 (A&S table 26.1);
    # upper bound 0.1329 >= 0.05 fails, and the lower bound 0.0671 > 0.05: inferior.
    down = noninferiority_test(control, treatment, 0.05, "decrease", 0.05, df=math.inf)
    assert down.p_value == pytest.approx(0.99379, abs=1e-5)
    assert down.bound == pytest.approx(0.1 + z95 * 0.02, rel=1e-9)
    assert not down.passed
    assert down.inferior
    # Goal decrease, margin 10 %: z = 0, p = 0.5: neither shown (keep collecting data).
    edge = noninferiority_test(control, treatment, 0.10, "decrease", 0.05, df=math.inf)
    assert edge.p_value == pytest.approx(0.5, rel=1e-9)
    assert not edge.passed
    assert not edge.inferior


def test_from_lift_matches_from_arms() -> None:
    control, treatment = ArmEstimate(200, 4.0, 0.02), ArmEstimate(180, 3.8, 0.03)
    from_arms = noninferiority_test(control, treatment, 0.1, "increase", 0.05)
    se = math.sqrt(0.03 / 16 + 3.8**2 * 0.02 / 4**4)
    direct = noninferiority_from_lift(3.8 / 4 - 1, se, 0.1, "increase", 0.05, from_arms.df)
    assert direct == from_arms


def test_larger_margin_gives_smaller_p() -> None:
    control, treatment = ArmEstimate(200, 4.0, 0.02), ArmEstimate(180, 4.3, 0.03)
    results = [
        noninferiority_test(control, treatment, m, "decrease", 0.05) for m in (0.01, 0.05, 0.1, 0.2)
    ]
    ps = [r.p_value for r in results if r.p_value is not None]
    assert len(ps) == 4
    assert ps == sorted(ps, reverse=True)


@pytest.mark.parametrize(
    ("control", "treatment", "word"),
    [
        (ArmEstimate(1, 1.0, math.nan), ArmEstimate(10, 1.0, 0.1), "2 units"),
        (ArmEstimate(10, math.nan, math.nan), ArmEstimate(10, 1.0, 0.1), "undefined"),
        (ArmEstimate(10, 0.0, 0.1), ArmEstimate(10, 1.0, 0.1), "control value is 0"),
        (ArmEstimate(10, 2.0, 0.0), ArmEstimate(10, 2.0, 0.0), "variation"),
    ],
)
def test_undefined_cases_fail_with_a_note(
    control: ArmEstimate, treatment: ArmEstimate, word: str
) -> None:
    for goal in GOALS:
        res = noninferiority_test(control, treatment, 0.1, goal, 0.05)
        assert_no_nan(res)
        assert res.p_value is None
        assert res.bound is None
        assert not res.passed
        assert res.note is not None
        assert word in res.note


def test_from_lift_undefined_inputs() -> None:
    for lift, se, df in [(None, 0.1, 10.0), (0.1, None, 10.0), (0.1, 0.1, None), (math.nan, 1, 5)]:
        res = noninferiority_from_lift(lift, se, 0.1, "decrease", 0.05, df)
        assert_no_nan(res)
        assert res.p_value is None


@pytest.mark.parametrize(
    ("margin", "goal", "alpha", "word"),
    [
        (0.0, "decrease", 0.05, "margin"),
        (-0.1, "decrease", 0.05, "margin"),
        (math.nan, "decrease", 0.05, "margin"),
        (0.1, "up", 0.05, "goal"),
        (0.1, "decrease", 0.0, "alpha"),
    ],
)
def test_invalid_arguments_raise(margin: float, goal: Goal, alpha: float, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        noninferiority_test(
            ArmEstimate(10, 1.0, 0.1), ArmEstimate(10, 1.0, 0.1), margin, goal, alpha
        )
