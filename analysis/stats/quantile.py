"""Quantile metrics (e.g. p95 AI latency), clustered by randomization unit.

Point estimate: the linear-interpolation quantile of the arm's event values
(``numpy.quantile(method="linear")``, the contract's convention).

Its standard error comes from the outer confidence interval of Deng, Knoblich
& Lu (2018), "Applying the Delta Method in Metric Analytics", section 4.3 —
the method GrowthBook, Eppo and Statsig use. With N events and q̂ the
estimate, the share of events at or below q̂ is a ratio metric over units
(events at or below q̂ per unit / events per unit), whose variance σ² the
delta method gives *with* the clustering of events within units. The order
statistics at ranks ``N (p ± z σ)`` bound a 1 - alpha CI for the quantile, and

    se(q̂) = (X_(upper) - X_(lower)) / (2 z).

Two arms are then compared with a normal test on the difference, and the
relative lift with the delta method on the ratio, as for every other metric.
With one event per unit σ² = p (1 - p) / N: the classical binomial interval
for a quantile (e.g. Conover 1999, "Practical Nonparametric Statistics" §3.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from analysis.aggregates import Moments
from analysis.stats.inference import ArmEstimate, TwoArmResult, compare, ratio_estimate


@dataclass(frozen=True)
class QuantileSample:
    """The event values of one arm and the unit each came from.

    Attributes:
        values: the events' values (any order).
        units: an integer code of each event's unit, aligned with ``values``.
    """

    values: npt.NDArray[np.float64]
    units: npt.NDArray[np.int64]

    @property
    def n_units(self) -> int:
        return int(np.unique(self.units).size)


def quantile_estimate(sample: QuantileSample, p: float, alpha: float) -> ArmEstimate:
    """The arm's quantile and the variance of that estimate (outer-CI method)."""
    values = np.sort(sample.values)
    n_events = values.size
    n_units = sample.n_units
    if n_events == 0:
        return ArmEstimate(0, math.nan, math.nan)
    q = float(np.quantile(values, p, method="linear"))
    if n_units < 2:
        return ArmEstimate(n_units, q, math.nan)

    _, codes = np.unique(sample.units, return_inverse=True)
    below = np.bincount(codes, weights=(sample.values <= q)).astype(np.float64)
    events = np.bincount(codes).astype(np.float64)
    share = ratio_estimate(_moments(below, events))
    sigma = math.sqrt(share.variance)

    z = float(stats.norm.ppf(1 - alpha / 2))
    lower_rank = max(math.floor(n_events * (p - z * sigma)), 1)
    upper_rank = min(math.ceil(n_events * (p + z * sigma)), n_events)
    lower, upper = values[lower_rank - 1], values[upper_rank - 1]
    se = (upper - lower) / (2 * z)
    return ArmEstimate(n_units, q, float(se * se))


def _moments(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Moments:
    n = x.size
    mx, my = float(x.mean()), float(y.mean())
    dx, dy = x - mx, y - my
    return Moments(n, mx, my, float(dx @ dx), float(dy @ dy), float(dx @ dy))


def quantile_test(
    control: QuantileSample, treatment: QuantileSample, p: float, alpha: float
) -> TwoArmResult:
    """Difference and relative lift of the arms' quantiles, normal CIs, two-sided p."""
    return compare(
        quantile_estimate(control, p, alpha),
        quantile_estimate(treatment, p, alpha),
        alpha,
        "quantile_outer_ci_clustered",
        normal=True,
    )
