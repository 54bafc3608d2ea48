"""Does the lift change with days since first exposure? A weighted trend test.

Given the lift (or any effect) in buckets of days since each unit's first
exposure — day d_i, estimate y_i with variance v_i — fit the line
``y = a + b d`` by weighted least squares with weights w_i = 1 / v_i and
treat the variances as known (a fixed-effect meta-regression; Borenstein et
al. 2009, "Introduction to Meta-Analysis", ch. 20)::

    d_bar = sum w d / sum w,   S_dd = sum w (d - d_bar)^2,
    b = sum w (d - d_bar)(y - y_bar) / S_dd,   Var(b) = 1 / S_dd,
    a = y_bar - b d_bar,                         Var(a) = 1 / sum w + d_bar^2 / S_dd,
    z = b / se(b),  p = 2 (1 - Phi(|z|)),  CI = b ± z_{1-alpha/2} se(b).

That is ``cov = (X' W X)^{-1}`` *without* a residual scale factor: statsmodels'
``WLS(y, X, weights=1/v).fit(cov_type="fixed scale")`` (scale 1), equivalently
``WLS(...).fit().cov_params() / scale``. The default ``WLS`` ``bse`` instead
multiplies by the residual mean square, which would treat the known
variances as known only up to a factor.

A positive slope on a "higher is better" metric means the effect grows with
exposure (learning, trust building); negative means it fades (novelty).

Assumption: the buckets are independent. That holds when each bucket holds
different units (e.g. cohorts by exposure date, or each unit's value on one
day since exposure). When the same units contribute to several buckets,
their estimates are correlated: a common unit effect cancels from the slope,
but day-to-day persistence within units makes this se too small; a per-unit
regression with unit-clustered errors is then the safer test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True, slots=True)
class TrendResult:
    """Weighted linear trend of an effect over days since first exposure.

    Attributes:
        slope: change of the effect per day, b.
        slope_se: its standard error with known variances, 1 / sqrt(S_dd).
        slope_ci: ``slope ± z_{1-alpha/2} slope_se``.
        p_value: two-sided z-test of slope = 0.
        intercept: the fitted effect at day 0, a.
        intercept_se: its standard error.
        buckets: buckets that entered the fit.
        excluded: buckets left out (undefined estimate or variance).
        note: why fields are ``None``, or which buckets were left out.
    """

    slope: float | None
    slope_se: float | None
    slope_ci: tuple[float, float] | None
    p_value: float | None
    intercept: float | None
    intercept_se: float | None
    buckets: int
    excluded: int
    note: str | None = None


def lift_trend(
    days: Sequence[float],
    estimates: Sequence[float | None],
    variances: Sequence[float | None],
    alpha: float,
) -> TrendResult:
    """WLS slope of the effect over days, with known variances (module docstring).

    A bucket enters only with a finite estimate and a finite variance > 0;
    the others are counted in ``excluded``. At least two distinct days are
    needed for a slope.

    Raises:
        ValueError: the sequences differ in length, or alpha is outside (0, 1).
    """
    if not len(days) == len(estimates) == len(variances):
        msg = f"{len(days)} days, {len(estimates)} estimates and {len(variances)} variances"
        raise ValueError(msg)
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie in (0, 1), got {alpha!r}"
        raise ValueError(msg)
    rows = [
        (float(d), e, 1.0 / v)
        for d, e, v in zip(days, estimates, variances, strict=True)
        if e is not None and v is not None and math.isfinite(e) and math.isfinite(v) and v > 0
    ]
    k = len(rows)
    excluded = len(days) - k
    skipped = (
        f"{excluded} bucket(s) without a defined estimate and variance left out"
        if excluded
        else None
    )
    if len({d for d, _, _ in rows}) < 2:
        note = "fewer than 2 days with a defined estimate: no trend to fit"
        return TrendResult(None, None, None, None, None, None, k, excluded, note)

    total = math.fsum(w for _, _, w in rows)
    d_bar = math.fsum(w * d for d, _, w in rows) / total
    y_bar = math.fsum(w * y for _, y, w in rows) / total
    s_dd = math.fsum(w * (d - d_bar) ** 2 for d, _, w in rows)
    s_dy = math.fsum(w * (d - d_bar) * (y - y_bar) for d, y, w in rows)
    slope = s_dy / s_dd
    slope_se = 1.0 / math.sqrt(s_dd)
    intercept = y_bar - slope * d_bar
    intercept_se = math.sqrt(1.0 / total + d_bar * d_bar / s_dd)
    z = float(stats.norm.ppf(1 - alpha / 2))
    p_value = float(2 * stats.norm.sf(abs(slope) / slope_se))
    ci = (slope - z * slope_se, slope + z * slope_se)
    return TrendResult(slope, slope_se, ci, p_value, intercept, intercept_se, k, excluded, skipped)
