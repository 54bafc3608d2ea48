"""The aggregation queries' rows read back into the measurement's types.

Columns are read by position (drivers name them differently). Only counts
and sums arrive here; moments are made from raw sums exactly as
:mod:`analysis.timeline` makes them, so both engines agree to the rounding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from analysis.aggregates import Moments, moments_from_sums
from analysis.config.experiments import Experiment
from analysis.descriptives import FUNNEL_STEPS, TIME_BINS, TRUST_VALUES
from analysis.joint import JointMoments
from analysis.measurement import Cleaning, Histogram
from analysis.sql.aggregate_timeline import TimelineMetric
from analysis.sql.aggregate_units import MomentsLayout
from analysis.stats.decay import DECAY_SUMS
from analysis.timeline import cumulative_moments

SegmentMoments = dict[str, dict[str, dict[str, dict[str, Moments]]]]


def as_float(value: Any) -> float:
    """A driver's number as a float; 0.0 for NULL (an empty sum)."""
    return float(value) if value is not None else 0.0


def read_cleaning(frame: pl.DataFrame, experiment: Experiment) -> Cleaning:
    by_variant = dict.fromkeys(experiment.variants, 0)
    crossovers = rows = unique = 0
    for part, variant, crossover, n, n_unique in frame.rows():
        if int(part) == 2:
            continue  # read_assigned_units
        if int(part) == 1:
            rows, unique = int(n or 0), int(n_unique or 0)
        elif int(crossover):
            crossovers += int(n)
        else:
            by_variant[variant] = by_variant.get(variant, 0) + int(n)
    return Cleaning(
        events=rows,
        duplicates_dropped=rows - unique,
        crossovers_excluded=crossovers,
        units=by_variant,
    )


def read_assigned_units(frame: pl.DataFrame) -> int:
    """Units assigned by the end of the analysis date (part 2 of the cleaning query)."""
    return sum(int(n) for part, _, _, n, _ in frame.rows() if int(part) == 2)


def read_moments(
    frame: pl.DataFrame, layout: MomentsLayout
) -> tuple[dict[str, dict[str, Moments]], dict[str, dict[str, JointMoments]], SegmentMoments]:
    """``moments``, ``joint`` and ``segments`` from :func:`.aggregate_units.arm_moments`."""
    moments: dict[str, dict[str, Moments]] = {c.metric.name: {} for c in layout.metrics}
    joint: dict[str, dict[str, JointMoments]] = {m.name: {} for m, _ in layout.joint}
    segments: SegmentMoments = {
        d: {c.metric.name: {} for c in layout.metrics} for d in layout.dimensions
    }
    for row in frame.rows():
        g, seg, variant = int(row[0]), row[1], row[2]
        pos = 3
        for cols in layout.metrics:
            n, mean_x, m2_x = int(row[pos] or 0), row[pos + 1], row[pos + 2]
            pos += 3
            mean_y, m2_y, c_xy = 1.0, 0.0, 0.0
            if cols.y is not None:
                mean_y, m2_y, c_xy = (
                    as_float(row[pos]),
                    as_float(row[pos + 1]),
                    as_float(row[pos + 2]),
                )
                pos += 3
            m = (
                Moments.empty()
                if n == 0
                else Moments(n, as_float(mean_x), mean_y, as_float(m2_x), m2_y, c_xy)
            )
            if g == 0:
                moments[cols.metric.name][variant] = m
            else:
                segments[layout.dimensions[g - 1]][cols.metric.name].setdefault(seg, {})[
                    variant
                ] = m
        for metric, names_k in layout.joint:
            found, pos = _joint_at(row, pos, len(names_k))
            if g == 0:
                joint[metric.name][variant] = found
    sorted_segments = {
        d: {name: dict(sorted(by_value.items())) for name, by_value in by_metric.items()}
        for d, by_metric in segments.items()
    }
    return moments, joint, sorted_segments


def read_daily(
    frame: pl.DataFrame, ratio: bool, as_of: dt.date, start: dt.date
) -> dict[str, dict[dt.date, Moments]]:
    """``{variant: {day: Moments}}`` from :func:`~analysis.sql.aggregate_timeline.daily_increments`.

    The running totals over days, as :func:`analysis.timeline.daily_moments` adds them.
    """
    arrivals: dict[str, dict[dt.date, int]] = {}
    changes: dict[str, dict[dt.date, list[float]]] = {}
    for part, variant, day, *sums in frame.rows():
        date = start + dt.timedelta(days=int(day))
        if int(part) == 1:
            arrivals.setdefault(str(variant), {})[date] = int(sums[0])
        else:
            changes.setdefault(str(variant), {})[date] = [as_float(v) for v in sums]
    return {
        variant: cumulative_moments(by_day, changes.get(variant, {}), as_of, ratio=ratio)
        for variant, by_day in arrivals.items()
    }


def read_decay(
    frame: pl.DataFrame, layout: Sequence[TimelineMetric]
) -> dict[str, dict[str, JointMoments]]:
    """``{metric: {variant: JointMoments}}`` from :func:`.aggregate_timeline.decay_sums`."""
    k = len(DECAY_SUMS)
    found: dict[str, dict[str, JointMoments]] = {m.name: {} for m in layout}
    for row in frame.rows():
        pos = 1
        for m in layout:
            found[m.name][str(row[0])], pos = _joint_at(row, pos, k)
    return found


def _joint_at(row: Sequence[Any], pos: int, k: int) -> tuple[JointMoments, int]:
    """The joint moments of k variables at ``pos`` (``n``, the means, the upper
    triangle of co-moments), and the position after them."""
    n = int(row[pos] or 0)
    means = tuple(as_float(v) for v in row[pos + 1 : pos + 1 + k])
    pos += 1 + k
    upper: dict[tuple[int, int], float] = {}
    for a in range(k):
        for b in range(a, k):
            upper[a, b] = as_float(row[pos])
            pos += 1
    matrix = tuple(tuple(upper[min(a, b), max(a, b)] for b in range(k)) for a in range(k))
    return (JointMoments.empty(k) if n == 0 else JointMoments(n, means, matrix)), pos


def read_weekly(
    frame: pl.DataFrame, layout: Sequence[TimelineMetric]
) -> dict[str, dict[str, dict[int, Moments]]]:
    """``{metric: {variant: {week: Moments}}}`` from :func:`.aggregate_timeline.weekly_sums`.

    A unit with ``W`` fully observed weeks is in weeks ``0 .. W - 1``; one
    without events in a week adds zeros to the sums and one to ``n``.
    """
    observed: dict[str, dict[int, int]] = {}
    sums: dict[tuple[str, int], list[float]] = {}
    for part, variant, key, *values in frame.rows():
        if int(part) == 1:
            observed.setdefault(str(variant), {})[int(key)] = int(values[0])
        else:
            sums[str(variant), int(key)] = [as_float(v) for v in values]
    result: dict[str, dict[str, dict[int, Moments]]] = {m.name: {} for m in layout}
    zeros = [0.0] * (5 * len(layout))
    for variant, by_weeks in observed.items():
        for week in range(max(by_weeks)):
            n = sum(units for weeks, units in by_weeks.items() if weeks > week)
            found = sums.get((variant, week), zeros)
            for j, metric in enumerate(layout):
                sx, sy, sxx, syy, sxy = found[5 * j : 5 * j + 5]
                moments = moments_from_sums(n, sx, sy, sxx, syy, sxy, ratio=metric.ratio)
                result[metric.name].setdefault(variant, {})[week] = moments
    return result


def read_descriptives(
    frame: pl.DataFrame, variants: Sequence[str], ai_variants: Sequence[str]
) -> tuple[dict[str, list[tuple[str, int]]], Histogram | None, dict[str, list[int]]]:
    """The funnel, the time-on-task and the trust histograms (:mod:`analysis.descriptives`)."""
    funnel_found: dict[tuple[str, int], int] = {}
    trust = {v: [0] * len(TRUST_VALUES) for v in variants}
    bins = {v: [0] * TIME_BINS for v in variants}
    lo = hi = None
    for part, variant, k, n, low, high in frame.rows():
        if int(part) == 0:
            funnel_found[str(variant), int(k)] = int(n)
        elif int(part) == 1:
            if variant in trust and int(k) in TRUST_VALUES:
                trust[variant][int(k) - 1] = int(n)
        elif int(part) == 2:
            if variant in bins:
                bins[variant][int(k)] = int(n)
        else:
            lo, hi = low, high
    funnel = {
        v: [(label, funnel_found.get((v, i), 0)) for i, (_, label) in enumerate(FUNNEL_STEPS)]
        for v in ai_variants
    }
    if lo is None or hi is None or not hi > lo:
        return funnel, None, trust
    width = (hi - lo) / TIME_BINS
    edges = tuple(lo + i * width for i in range(TIME_BINS + 1))
    return funnel, Histogram(edges, bins), trust
