"""Fixed-horizon comparisons of two arms from their sufficient statistics.

Conventions (contract section 3): two-sided tests, CIs at 1 - alpha, sample
variances with n - 1, a t quantile with Welch–Satterthwaite degrees of freedom.

* Mean and proportion metrics: Welch's t-test, identical to
  ``scipy.stats.ttest_ind(equal_var=False)`` and to statsmodels'
  ``CompareMeans.tconfint_diff(usevar="unequal")``.
* Ratio metrics: the delta method for ``R = mean(x) / mean(y)`` with the
  numerator–denominator covariance, unit = randomization unit
  (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics",
  eq. 2)::

      Var(R) = (s_xx - 2 R s_xy + R^2 s_yy) / (n * mean(y)^2)

* Relative lift ``L = T / C - 1`` of the two arm estimates, with the delta
  method on the ratio of two independent estimates::

      Var(L) = Var(T) / C^2 + T^2 Var(C) / C^4

  and the same t quantile as the difference — never ``diff_ci / C``.

* The lift interval *of the test*: the verdict reads the p-value of the
  difference, and the delta-method lift interval can disagree with it (its
  variance weighs Var(C) by T^2 / C^2; e.g. C = 1, T = 1.3, variances 10 and 1,
  n = 590: p = 0.028 beside a lift CI of -4.2 % to +64.2 %). Fieller's interval
  (Fieller 1954, "Some problems in interval estimation", JRSS B 16) inverts the
  same test: it is the set of ratios r = T / C with
  ``(T - r C)^2 <= q^2 (Var_T + r^2 Var_C)``, so it excludes a lift of 0
  exactly when the difference's test rejects at the level of ``q``. It is
  what the verdict's reasons print.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from analysis.aggregates import Moments


@dataclass(frozen=True, slots=True)
class ArmEstimate:
    """The estimate of one arm and the variance of that estimate."""

    n: int
    value: float
    variance: float


@dataclass(frozen=True, slots=True)
class TwoArmResult:
    """A treatment-versus-control comparison.

    Fields are ``None`` when they are not defined for the data; ``note`` then
    says why (JSON never carries NaN).
    """

    control: ArmEstimate
    treatment: ArmEstimate
    diff: float | None
    diff_ci: tuple[float, float] | None
    lift: float | None
    lift_ci: tuple[float, float] | None
    p_value: float | None
    df: float | None
    method: str
    note: str | None = None


def mean_estimate(m: Moments) -> ArmEstimate:
    """Mean of x and its variance s^2 / n."""
    if m.n < 2:
        return ArmEstimate(m.n, m.mean_x if m.n else math.nan, math.nan)
    return ArmEstimate(m.n, m.mean_x, m.var_x / m.n)


def ratio_estimate(m: Moments) -> ArmEstimate:
    """Ratio of means mean(x) / mean(y) and its delta-method variance."""
    if m.n == 0 or m.mean_y == 0:
        return ArmEstimate(m.n, math.nan, math.nan)
    r = m.mean_x / m.mean_y
    if m.n < 2:
        return ArmEstimate(m.n, r, math.nan)
    var = (m.var_x - 2 * r * m.cov_xy + r * r * m.var_y) / (m.n * m.mean_y**2)
    return ArmEstimate(m.n, r, max(var, 0.0))


def normal_interval(estimate: ArmEstimate, alpha: float) -> tuple[float, float] | None:
    """One arm's ``1 - alpha`` normal interval (a share described, not compared); None
    without a finite estimate and variance."""
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.variance)):
        return None
    half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(estimate.variance)
    return estimate.value - half, estimate.value + half


def lift_variance(control: ArmEstimate, treatment: ArmEstimate) -> float:
    """Delta-method variance of ``L = T / C - 1`` for independent arms.

    ``Var(L) = Var(T) / C^2 + T^2 Var(C) / C^4``.
    """
    c, t = control.value, treatment.value
    return treatment.variance / c**2 + t * t * control.variance / c**4


def fieller_lift_ci(
    control: ArmEstimate, treatment: ArmEstimate, q: float
) -> tuple[float, float] | None:
    """Fieller's interval for ``T / C - 1`` at the critical value ``q`` (module docstring).

    Solves ``(C^2 - q^2 Var_C) r^2 - 2 T C r + T^2 - q^2 Var_T = 0``. ``None``
    when the set is not a bounded interval: the control estimate is not
    itself distinguishable from 0 at ``q`` (``C^2 <= q^2 Var_C``).
    """
    c, t = control.value, treatment.value
    vc, vt = control.variance, treatment.variance
    a = c * c - q * q * vc
    if not (math.isfinite(a) and a > 0 and math.isfinite(t) and math.isfinite(vt)):
        return None
    root = q * math.sqrt(max(vt * c * c + t * t * vc - q * q * vt * vc, 0.0))
    return ((t * c - root) / a - 1, (t * c + root) / a - 1)


def welch_df(control: ArmEstimate, treatment: ArmEstimate) -> float:
    """Welch–Satterthwaite degrees of freedom from the per-arm estimate variances."""
    vc, vt = control.variance, treatment.variance
    denom = vc * vc / (control.n - 1) + vt * vt / (treatment.n - 1)
    if denom == 0:
        return math.inf
    return (vc + vt) ** 2 / denom


def compare(
    control: ArmEstimate,
    treatment: ArmEstimate,
    alpha: float,
    method: str,
    *,
    normal: bool = False,
) -> TwoArmResult:
    """Difference and relative lift with t-based CIs and a two-sided p-value.

    ``normal=True`` uses the standard normal instead of the Welch t (for
    estimators whose variance is only asymptotic, such as quantiles).
    """

    def undefined(note: str, diff: float | None = None, lift: float | None = None) -> TwoArmResult:
        return TwoArmResult(control, treatment, diff, None, lift, None, None, None, method, note)

    if control.n < 2 or treatment.n < 2:
        return undefined("fewer than 2 units in an arm")
    c, t = control.value, treatment.value
    if math.isnan(c) or math.isnan(t) or math.isnan(control.variance + treatment.variance):
        return undefined("the metric is undefined in an arm (no denominator events)")
    diff = t - c
    lift = t / c - 1 if c != 0 else None
    se = math.sqrt(control.variance + treatment.variance)
    if se == 0:
        return undefined("no variation in either arm", diff, lift)

    df = math.inf if normal else welch_df(control, treatment)
    q = float(stats.t.ppf(1 - alpha / 2, df))
    p_value = float(2 * stats.t.sf(abs(diff) / se, df))
    diff_ci = (diff - q * se, diff + q * se)

    note = None
    lift_ci = None
    if lift is None:
        note = "relative lift undefined: the control value is 0"
    else:
        half = q * math.sqrt(lift_variance(control, treatment))
        lift_ci = (lift - half, lift + half)
    return TwoArmResult(control, treatment, diff, diff_ci, lift, lift_ci, p_value, df, method, note)


def welch_test(control: Moments, treatment: Moments, alpha: float) -> TwoArmResult:
    """Welch's t-test of the means of x (mean and proportion metrics)."""
    return compare(mean_estimate(control), mean_estimate(treatment), alpha, "welch_t")


def delta_ratio_test(control: Moments, treatment: Moments, alpha: float) -> TwoArmResult:
    """Delta-method t-test of the ratios mean(x) / mean(y) (ratio metrics)."""
    return compare(ratio_estimate(control), ratio_estimate(treatment), alpha, "delta_method_t")
