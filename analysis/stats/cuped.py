"""CUPED: variance reduction with the pre-period value of the same metric.

Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online
Controlled Experiments by Utilizing Pre-Experiment Data" (WSDM), sec. 3.2: with
a covariate ``x_pre`` measured before exposure (so independent of the
assignment), the adjusted per-unit value

    x_adj = x - theta * (x_pre - mean(x_pre))

has the same expectation in each arm and the variance
``Var(x) (1 - rho^2)`` at the optimal ``theta = Cov(x, x_pre) / Var(x_pre)``,
rho the correlation of ``x`` and ``x_pre``.  ``theta`` is estimated once from
the **pooled** units of both arms of the comparison, and ``mean(x_pre)`` is the
pooled mean — the OLS slope of ``x`` on ``x_pre`` over the pooled data, as
GrowthBook's ``compute_theta`` does — so the adjustment is the same in both
arms and the difference of adjusted means is unbiased.

Mean and proportion metrics (variables ``(x, x_pre)``), per arm::

    value    = mean(x) - theta * (mean(x_pre) - pooled mean(x_pre))
    variance = (s_xx - 2 theta s_x,pre + theta^2 s_pre,pre) / n

Ratio metrics (variables ``(x, y, x_pre, y_pre)``, metric ``R = mean x / mean y``)
linearise both parts with the delta method (Deng, Knoblich & Lu 2018,
"Applying the Delta Method in Metric Analytics", sec. 3; the
"regression-adjusted ratio" of GrowthBook's ``RegressionAdjustedRatioStatistic``):
the influence values of a unit are

    lin     = (x - R y) / mean(y)
    lin_pre = (x_pre - R_pre y_pre) / mean(y_pre)

``theta = Cov(lin, lin_pre) / Var(lin_pre)`` over the pooled units (linearised
at the pooled means, so that with ``y = 1`` everything reduces to the mean
case; GrowthBook instead adds the two arms' within-arm covariances — the same
limit under randomisation).  Per arm, with the arm's own means::

    value    = R - theta * (R_pre - pooled R_pre)
    variance = g' S g / n,   g = (1/ybar, -R/ybar, -theta/ybar_pre, theta R_pre/ybar_pre)

``S`` the arm's 4 x 4 sample covariance matrix (n - 1).  ``theta`` is treated
as known, as in Deng et al. 2013 and GrowthBook; its estimation error is
O(1/n) and the calibration script measures the result.

The adjusted :class:`ArmEstimate` of each arm goes into
:func:`analysis.stats.inference.compare` for the difference, the relative lift
and their CIs exactly as unadjusted estimates do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from analysis.joint import JointMoments
from analysis.stats.inference import ArmEstimate, mean_estimate, ratio_estimate

CupedKind = Literal["mean", "ratio"]

_VARIABLES: dict[str, int] = {"mean": 2, "ratio": 4}


@dataclass(frozen=True, slots=True)
class CupedOutcome:
    """The CUPED-adjusted arm estimates, or why CUPED was not applied.

    Attributes:
        control: adjusted estimate of the control arm (None when skipped).
        treatment: adjusted estimate of the treatment arm (None when skipped).
        theta: the pooled regression coefficient (None when skipped).
        variance_reduction: ``1 - Var_adj(diff) / Var(diff)``, the share of the
            variance of the difference removed (None when skipped).
        method: the method name to pass to ``compare`` for the adjusted test.
        skip_reason: why CUPED was not applied, None when it was.
    """

    control: ArmEstimate | None
    treatment: ArmEstimate | None
    theta: float | None
    variance_reduction: float | None
    method: str
    skip_reason: str | None = None

    @property
    def applied(self) -> bool:
        return self.skip_reason is None


def cuped_estimates(
    control: JointMoments, treatment: JointMoments, kind: CupedKind
) -> CupedOutcome:
    """CUPED-adjusted arm estimates with ``theta`` from the pooled arms.

    ``kind="mean"`` (also for proportions) reads the variables ``(x, x_pre)``;
    ``kind="ratio"`` reads ``(x, y, x_pre, y_pre)``.  See the module docstring
    for the formulas.
    """
    k = _VARIABLES[kind]
    if control.k != k or treatment.k != k:
        msg = f"CUPED for a {kind} metric needs {k} variables, got {control.k} and {treatment.k}"
        raise ValueError(msg)
    method = "cuped_welch_t" if kind == "mean" else "cuped_delta_method_t"

    def skip(reason: str) -> CupedOutcome:
        return CupedOutcome(None, None, None, None, method, reason)

    if control.n < 2 or treatment.n < 2:
        return skip("fewer than 2 units in an arm")
    pooled = control.merge(treatment)
    post_grad: tuple[float, ...]
    pre_grad: tuple[float, ...]
    if kind == "mean":
        post_grad, pre_grad = (1.0, 0.0), (0.0, 1.0)
        pre_center = pooled.mean(1)
    else:
        for m in (control, treatment):
            if m.mean(1) == 0:
                return skip("the metric is undefined in an arm (no denominator events)")
            if m.mean(3) == 0:
                return skip("no pre-period denominator events in an arm")
        if pooled.mean(1) == 0 or pooled.mean(3) == 0:
            return skip("the pooled denominator is 0")
        r, r_pre = pooled.mean(0) / pooled.mean(1), pooled.mean(2) / pooled.mean(3)
        post_grad = (1 / pooled.mean(1), -r / pooled.mean(1), 0.0, 0.0)
        pre_grad = (0.0, 0.0, 1 / pooled.mean(3), -r_pre / pooled.mean(3))
        pre_center = r_pre

    var_pre = _quadratic(pooled, pre_grad, pre_grad)
    if not var_pre > 0:
        return skip("no variation in the pre-period values")
    theta = _quadratic(pooled, post_grad, pre_grad) / var_pre

    adjusted = tuple(_adjusted(m, kind, theta, pre_center) for m in (control, treatment))
    unadjusted = tuple(_unadjusted(m, kind) for m in (control, treatment))
    var_unadj = unadjusted[0].variance + unadjusted[1].variance
    if not var_unadj > 0:
        return skip("no variation in either arm")
    var_adj = adjusted[0].variance + adjusted[1].variance
    return CupedOutcome(
        control=adjusted[0],
        treatment=adjusted[1],
        theta=theta,
        variance_reduction=1 - var_adj / var_unadj,
        method=method,
    )


def _quadratic(m: JointMoments, a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """a' C b for the co-moment matrix C (sums of products of deviations)."""
    c = m.comoments
    return math.fsum(a[i] * c[i][j] * b[j] for i in range(m.k) for j in range(m.k))


def _unadjusted(m: JointMoments, kind: CupedKind) -> ArmEstimate:
    return mean_estimate(m.marginal(0)) if kind == "mean" else ratio_estimate(m.marginal(0, 1))


def _adjusted(m: JointMoments, kind: CupedKind, theta: float, pre_center: float) -> ArmEstimate:
    """The arm's adjusted value and the variance of it (the module docstring's formulas)."""
    if kind == "mean":
        value = m.mean(0) - theta * (m.mean(1) - pre_center)
        grad: tuple[float, ...] = (1.0, -theta)
    else:
        r, r_pre = m.mean(0) / m.mean(1), m.mean(2) / m.mean(3)
        value = r - theta * (r_pre - pre_center)
        grad = (1 / m.mean(1), -r / m.mean(1), -theta / m.mean(3), theta * r_pre / m.mean(3))
    variance = _quadratic(m, grad, grad) / (m.n - 1) / m.n
    return ArmEstimate(m.n, value, max(variance, 0.0))
