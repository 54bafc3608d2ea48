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

All of that needs only a :class:`QuantileSummary` per arm: N, four order
statistics (the two around q̂ and the two at the outer ranks) and integer sums
over units. An engine computes it where the events are (:func:`summarize` in
memory; :mod:`analysis.sql.quantile_summaries` in a database, in three small
queries), so no event value has to travel to the statistics. The rules that
pick the ranks (:func:`linear_position`, :func:`outer_ranks`) and turn the
numbers into estimates (:func:`interpolate`, :func:`share_moments`,
:func:`summary_estimate`) exist once, here, for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from analysis.aggregates import Moments
from analysis.stats.inference import ArmEstimate, TwoArmResult, compare, ratio_estimate

METHOD = "quantile_outer_ci_clustered"


@dataclass(frozen=True)
class QuantileSample:
    """The event values of one arm and the unit each came from.

    Attributes:
        values: the events' values (any order).
        units: an integer code of each event's unit, aligned with ``values``.
    """

    values: npt.NDArray[np.float64]
    units: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ShareSums:
    """Integer sums over units of ``x`` = events at or below q̂ and ``y`` = events.

    Kept as integers so that every engine gets the same moments to the last bit.
    """

    n: int
    x: int
    y: int
    xx: int
    yy: int
    xy: int


@dataclass(frozen=True, slots=True)
class QuantileSummary:
    """All the outer CI of one arm's quantile needs (module docstring).

    Attributes:
        p: the quantile level.
        alpha: the level the outer ranks were picked for.
        n_events: N, the arm's events with a value.
        estimate: q̂, the linear-interpolation quantile (:func:`interpolate`).
        share: the per-unit sums of the share of events at or below q̂.
        lower, upper: the order statistics at :func:`outer_ranks`.
    """

    p: float
    alpha: float
    n_events: int
    estimate: float
    share: ShareSums
    lower: float
    upper: float

    @property
    def n_units(self) -> int:
        return self.share.n

    @classmethod
    def empty(cls, p: float, alpha: float) -> QuantileSummary:
        return cls(p, alpha, 0, math.nan, ShareSums(0, 0, 0, 0, 0, 0), math.nan, math.nan)


def linear_position(n_events: int, p: float) -> tuple[int, int, float]:
    """0-based ranks of the two values around the ``p`` quantile, and the weight between.

    numpy's ``quantile(method="linear")`` (Hyndman & Fan type 7), operation
    for operation: index ``(n - 1) p``, its floor and the next rank.
    """
    index = (n_events - 1) * p
    below = math.floor(index)
    return below, min(below + 1, n_events - 1), index - below


def interpolate(below: float, above: float, weight: float) -> float:
    """numpy's linear interpolation between two order statistics (its ``_lerp``)."""
    step = above - below
    return above - step * (1 - weight) if weight >= 0.5 else below + step * weight


def share_moments(sums: ShareSums) -> Moments:
    """Centred moments from integer sums, exact until the last division."""
    n = sums.n
    if n == 0:
        return Moments.empty()
    return Moments(
        n,
        sums.x / n,
        sums.y / n,
        (n * sums.xx - sums.x * sums.x) / n,
        (n * sums.yy - sums.y * sums.y) / n,
        (n * sums.xy - sums.x * sums.y) / n,
    )


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def outer_ranks(n_events: int, p: float, share: ShareSums, alpha: float) -> tuple[int, int] | None:
    """1-based ranks of the order statistics that bound the outer CI, or None (< 2 units)."""
    if n_events == 0 or share.n < 2:
        return None
    sigma = math.sqrt(ratio_estimate(share_moments(share)).variance)
    z = _z(alpha)
    lower = max(math.floor(n_events * (p - z * sigma)), 1)
    upper = min(math.ceil(n_events * (p + z * sigma)), n_events)
    return lower, upper


def summary_estimate(summary: QuantileSummary) -> ArmEstimate:
    """The arm's quantile and the variance of that estimate (outer-CI method)."""
    n_units = summary.n_units
    if summary.n_events == 0:
        return ArmEstimate(0, math.nan, math.nan)
    if n_units < 2:
        return ArmEstimate(n_units, summary.estimate, math.nan)
    se = (summary.upper - summary.lower) / (2 * _z(summary.alpha))
    return ArmEstimate(n_units, summary.estimate, float(se * se))


def summarize(sample: QuantileSample, p: float, alpha: float) -> QuantileSummary:
    """The :class:`QuantileSummary` of an arm's events held in memory."""
    values = np.sort(sample.values)
    n_events = int(values.size)
    if n_events == 0:
        return QuantileSummary.empty(p, alpha)
    below, above, weight = linear_position(n_events, p)
    q = interpolate(float(values[below]), float(values[above]), weight)
    _, codes = np.unique(sample.units, return_inverse=True)
    x = np.bincount(codes, weights=(sample.values <= q)).astype(np.int64)
    y = np.bincount(codes).astype(np.int64)
    sums = ShareSums(
        int(x.size),
        int(x.sum()),
        int(y.sum()),
        int(x @ x),
        int(y @ y),
        int(x @ y),
    )
    ranks = outer_ranks(n_events, p, sums, alpha)
    lower, upper = (
        (math.nan, math.nan)
        if ranks is None
        else (
            float(values[ranks[0] - 1]),
            float(values[ranks[1] - 1]),
        )
    )
    return QuantileSummary(p, alpha, n_events, q, sums, lower, upper)


def quantile_estimate(sample: QuantileSample, p: float, alpha: float) -> ArmEstimate:
    """:func:`summary_estimate` of the :func:`summarize` of ``sample``."""
    return summary_estimate(summarize(sample, p, alpha))


def compare_summaries(
    control: QuantileSummary, treatment: QuantileSummary, alpha: float
) -> TwoArmResult:
    """Difference and relative lift of the arms' quantiles, normal CIs, two-sided p."""
    return compare(
        summary_estimate(control), summary_estimate(treatment), alpha, METHOD, normal=True
    )


def quantile_test(
    control: QuantileSample, treatment: QuantileSample, p: float, alpha: float
) -> TwoArmResult:
    """:func:`compare_summaries` of two arms' events held in memory."""
    return compare_summaries(summarize(control, p, alpha), summarize(treatment, p, alpha), alpha)
