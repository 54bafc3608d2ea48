"""Is it still helping? The trend of a metric over weeks since exposure, clustered by unit.

Per unit ``u`` and each week ``w = 0, 1, ...`` since its first exposure that
is fully observed, ``x_uw`` is the metric's numerator (or value) that week and
``y_uw`` its denominator (1 for a mean or proportion metric). Per arm, the
line ``r = a + b w`` through the unit-weeks' ratios ``r_uw = x_uw / y_uw`` is
fitted by weighted least squares with weights ``y_uw``; ``b`` is how much the
arm's metric moves per week of exposure. The fit needs five sums per unit::

    v_u = (P, Q, S, T, V) = sum over u's weeks of (x, w x, y, w y, w^2 y)

    B = [[sum S, sum T], [sum T, sum V]],   B (a, b)' = (sum P, sum Q)'

and its standard error is the cluster-robust sandwich with the unit as
cluster (a unit's weeks are correlated: a heavy user is heavy every week)::

    g_u = (P - a S - b T,  Q - a T - b V) = L v_u,
    cov(a, b) = n / (n - 1) * B^-1 (sum_u g_u g_u') B^-1

``sum_u g_u = 0`` at the fit, so ``sum_u g_u g_u' = L C L'`` with ``C`` the
co-moments of ``v_u``: an arm's :class:`~analysis.joint.JointMoments` of the
five sums is all the statistics need. This is statsmodels'
``WLS(r, [1, w], weights=y).fit(cov_type="cluster")`` without its small-sample
factor, times ``G / (G - 1)`` (tested).

Between two arms, ``b_T - b_C`` is how the effect (treatment - control)
changes per week of exposure; the arms are independent, so the variances add.
Units assigned at different times contribute different weeks, but the arms
were randomised together, so the composition is the same on both sides: the
difference of slopes is a randomised comparison, the slope of one arm alone is
not (it mixes exposure with cohort and calendar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.joint import JointMoments

#: The per-unit sums, in the order of :class:`~analysis.joint.JointMoments`' variables.
DECAY_SUMS: tuple[str, ...] = ("x", "wx", "y", "wy", "wwy")


@dataclass(frozen=True, slots=True)
class Slope:
    """One arm's (or a difference of arms') slope per week and the variance of its estimate.

    ``n``: units that entered; ``level``: the fitted value at week 0 (None for a difference).
    """

    slope: float
    variance: float
    n: int
    level: float | None = None


def arm_slope(moments: JointMoments) -> Slope | None:
    """The WLS slope of one arm and its cluster-robust variance (module docstring).

    None when the slope is not identified: fewer than two units, no weight, or
    every unit-week in the same week.
    """
    n = moments.n
    if moments.k != len(DECAY_SUMS):
        msg = f"expected the {len(DECAY_SUMS)} decay sums, got {moments.k} variables"
        raise ValueError(msg)
    if n < 2:
        return None
    p, q, s, t, v = (n * m for m in moments.means)
    det = s * v - t * t
    if not (s > 0 and det > 1e-12 * s * v):
        return None
    a = (v * p - t * q) / det
    b = (s * q - t * p) / det
    bread_inv = np.array([[v, -t], [-t, s]]) / det
    lift = np.array([[1.0, 0.0, -a, -b, 0.0], [0.0, 1.0, 0.0, -a, -b]])
    meat = lift @ np.asarray(moments.comoments) @ lift.T
    cov = n / (n - 1) * bread_inv @ meat @ bread_inv
    return Slope(b, float(cov[1, 1]), n, a)


def slope_difference(control: Slope, treatment: Slope) -> Slope:
    """``b_T - b_C`` with the variances added (independent arms)."""
    return Slope(
        treatment.slope - control.slope,
        treatment.variance + control.variance,
        treatment.n + control.n,
    )


def fixed_interval(estimate: Slope, alpha: float) -> tuple[float, float] | None:
    """The fixed-horizon ``1 - alpha`` normal interval, or None without a variance."""
    if not (math.isfinite(estimate.variance) and estimate.variance > 0):
        return None
    half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(estimate.variance)
    return estimate.slope - half, estimate.slope + half
