"""How the effect develops: over calendar time, and over time since exposure.

* :func:`daily_moments` — for each day D of the experiment, the per-arm moments
  of a metric *as it would have been analysed on D*: units assigned by the end
  of D, their events up to the end of D (and inside their window). Drawn as the
  cumulative lift with its confidence sequence — the band that may be read
  every day.
* :func:`weekly_moments` — for week w since a unit's first exposure, the
  metric over the events of that week, among the units whose whole week w is
  observed. The lift per week shows novelty (an early lift that fades),
  learning (a lift that grows) and trust building or eroding.

Both expand units × days (or weeks) for the metric's two per-unit parts only,
then reuse the mergeable moments of :mod:`analysis.aggregates`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from analysis.aggregates import Moments, moment_exprs, moments_from_row
from analysis.comparisons import arm_pairs
from analysis.config import EventAggregate, Experiment, Metric
from analysis.metrics import Window, in_window_events
from analysis.stats.inference import TwoArmResult, delta_ratio_test, lift_variance, welch_test
from analysis.stats.sequential import SequentialResult, sequential_interval
from analysis.stats.trend import TrendResult, lift_trend

DAY = dt.timedelta(days=1)
WEEK_DAYS = 7


def _parts(metric: Metric) -> tuple[EventAggregate, EventAggregate | None] | None:
    """The per-unit parts (x, y) a timeline can sum over days, or None."""
    if metric.kind == "ratio":
        assert metric.numerator is not None
        assert metric.denominator is not None
        return metric.numerator, metric.denominator
    if metric.kind in ("mean", "proportion") and metric.value and metric.value.agg != "mean":
        return metric.value, None
    return None


def supports_timeline(metric: Metric) -> bool:
    return _parts(metric) is not None


def _increment(agg: EventAggregate) -> pl.Expr:
    mask = pl.col("event") == agg.event
    if agg.value_equals is not None:
        mask = mask & (pl.col("value") == agg.value_equals)
    if agg.agg == "count":
        return mask.cast(pl.Float64).sum()
    return pl.col("value").filter(mask).sum().cast(pl.Float64)


def _moments_by(frame: pl.LazyFrame, key: str, metric: Metric) -> dict[str, dict[object, Moments]]:
    """``{variant: {key value: Moments}}`` of the columns ``x`` (and ``y``)."""
    x = pl.col("x")
    if metric.kind == "proportion":
        x = (x > 0).cast(pl.Float64)
    y = pl.col("y") if metric.kind == "ratio" else None
    rows = (
        frame.group_by("variant", key)
        .agg(moment_exprs(x, y))
        .collect(engine="streaming")
        .to_dicts()
    )
    result: dict[str, dict[object, Moments]] = {}
    for row in rows:
        result.setdefault(row["variant"], {})[row[key]] = moments_from_row(row)
    return result


def daily_moments(
    units: pl.LazyFrame,
    events: pl.LazyFrame,
    metric: Metric,
    window: Window,
    start: dt.date,
) -> dict[str, dict[dt.date, Moments]]:
    """``{variant: {day: Moments}}`` of the metric as analysed at the end of each day."""
    parts = _parts(metric)
    if parts is None:
        return {}
    x_part, y_part = parts
    names = [x_part.event] + ([y_part.event] if y_part else [])
    per_day = (
        in_window_events(units, events, Window(window.as_of, window.window_days), names)
        .filter(~pl.col("pre"))
        .group_by("unit_id", pl.col("ts").dt.date().alias("day"))
        .agg(
            _increment(x_part).alias("dx"),
            (_increment(y_part) if y_part else pl.lit(0.0)).alias("dy"),
        )
    )
    grid = (
        units.filter(~pl.col("crossover"))
        .select(
            "unit_id",
            "variant",
            pl.date_ranges(
                pl.max_horizontal(pl.col("assigned_at").dt.date(), pl.lit(start)),
                pl.lit(window.as_of),
            ).alias("day"),
        )
        .explode("day")
        .filter(pl.col("day").is_not_null())
    )
    cumulative = (
        grid.join(per_day, on=["unit_id", "day"], how="left")
        .with_columns(pl.col("dx").fill_null(0.0), pl.col("dy").fill_null(0.0))
        .sort("unit_id", "day")
        .with_columns(
            pl.col("dx").cum_sum().over("unit_id").alias("x"),
            pl.col("dy").cum_sum().over("unit_id").alias("y"),
        )
    )
    return _typed(_moments_by(cumulative, "day", metric))


def weekly_moments(
    units: pl.LazyFrame,
    events: pl.LazyFrame,
    metric: Metric,
    window: Window,
) -> dict[str, dict[int, Moments]]:
    """``{variant: {week since exposure: Moments}}`` over units whose week is fully observed."""
    parts = _parts(metric)
    if parts is None:
        return {}
    x_part, y_part = parts
    names = [x_part.event] + ([y_part.event] if y_part else [])
    week = ((pl.col("ts") - pl.col("assigned_at")).dt.total_days() // WEEK_DAYS).cast(pl.Int64)
    per_week = (
        in_window_events(units, events, Window(window.as_of, window.window_days), names)
        .filter(~pl.col("pre"))
        .group_by("unit_id", week.alias("week"))
        .agg(
            _increment(x_part).alias("x"),
            (_increment(y_part) if y_part else pl.lit(0.0)).alias("y"),
        )
    )
    end = pl.lit(window.end)
    if window.window_days is not None:
        end = pl.min_horizontal(end, pl.col("assigned_at") + pl.duration(days=window.window_days))
    full_weeks = ((end - pl.col("assigned_at")).dt.total_days() // WEEK_DAYS).cast(pl.Int64)
    grid = (
        units.filter(~pl.col("crossover"))
        .with_columns(full_weeks.alias("weeks"))
        .filter(pl.col("weeks") > 0)
        .select("unit_id", "variant", pl.int_ranges(0, pl.col("weeks")).alias("week"))
        .explode("week")
        .with_columns(pl.col("week").cast(pl.Int64))
    )
    weekly = grid.join(per_week, on=["unit_id", "week"], how="left").with_columns(
        pl.col("x").fill_null(0.0), pl.col("y").fill_null(0.0)
    )
    return _typed_int(_moments_by(weekly, "week", metric))


def _typed(raw: Mapping[str, Mapping[object, Moments]]) -> dict[str, dict[dt.date, Moments]]:
    return {v: {k: m for k, m in by.items() if isinstance(k, dt.date)} for v, by in raw.items()}


def _typed_int(raw: Mapping[str, Mapping[object, Moments]]) -> dict[str, dict[int, Moments]]:
    return {v: {int(k): m for k, m in by.items() if isinstance(k, int)} for v, by in raw.items()}


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: dt.date
    units: Mapping[str, int]
    comparisons: tuple[tuple[str, str, TwoArmResult, SequentialResult], ...]


@dataclass(frozen=True, slots=True)
class ExposureTrend:
    metric: Metric
    control: str
    treatment: str
    weeks: tuple[tuple[int, TwoArmResult], ...]
    trend: TrendResult


def _test(metric: Metric, c: Moments, t: Moments, alpha: float) -> TwoArmResult:
    return delta_ratio_test(c, t, alpha) if metric.kind == "ratio" else welch_test(c, t, alpha)


def over_time(
    experiment: Experiment,
    metric: Metric,
    daily: Mapping[str, Mapping[dt.date, Moments]],
) -> list[DayPoint]:
    """The cumulative comparison of each arm pair on each day, with its sequence."""
    alpha = experiment.alpha
    n_star = experiment.statistics.sequential_n_star
    days = sorted({d for by_day in daily.values() for d in by_day})
    points = []
    for day in days:
        units = {v: daily.get(v, {}).get(day, Moments.empty()).n for v in experiment.variants}
        rows = []
        for control, treatment in arm_pairs(experiment, metric):
            c = daily.get(control, {}).get(day, Moments.empty())
            t = daily.get(treatment, {}).get(day, Moments.empty())
            result = _test(metric, c, t, alpha)
            rows.append((control, treatment, result, sequential_interval(result, alpha, n_star)))
        points.append(DayPoint(day, units, tuple(rows)))
    return points


def exposure_trends(
    experiment: Experiment,
    metric: Metric,
    weekly: Mapping[str, Mapping[int, Moments]],
) -> list[ExposureTrend]:
    """Lift per week since exposure, and the weighted trend of the lift over weeks.

    The weekly lifts share units (a unit observed for three weeks is in three
    buckets), so they are positively correlated and the trend's standard
    error, which treats them as independent, is optimistic; the report says so.
    """
    alpha = experiment.alpha
    weeks = sorted({w for by_week in weekly.values() for w in by_week})
    trends = []
    for control, treatment in arm_pairs(experiment, metric):
        rows = []
        for w in weeks:
            c = weekly.get(control, {}).get(w, Moments.empty())
            t = weekly.get(treatment, {}).get(w, Moments.empty())
            rows.append((w, _test(metric, c, t, alpha)))
        lifts = [r.lift if r.lift_ci is not None else None for _, r in rows]
        variances = [
            lift_variance(r.control, r.treatment) if r.lift_ci is not None else None
            for _, r in rows
        ]
        trend = lift_trend([float(w) for w, _ in rows], lifts, variances, alpha)
        trends.append(ExposureTrend(metric, control, treatment, tuple(rows), trend))
    return trends
