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

Both read the run's partial aggregates (:mod:`analysis.partials`), never the
events. The daily series adds up each unit's changes on the days it has
events, so its cost follows the events, not units × days; the weekly buckets
expand units × weeks (a handful per unit) for the metric's two parts only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from analysis.aggregates import Moments, moments_from_row, moments_from_sums
from analysis.comparisons import arm_pairs
from analysis.config.experiments import EventAggregate, Experiment, Metric
from analysis.joint import JointMoments, joint_moments_from_row
from analysis.measurement import Window
from analysis.partials import WEEK_DAYS, aggregate_name, daily_increments
from analysis.polars_exprs import joint_moment_exprs, moment_exprs
from analysis.stats.decay import DECAY_SUMS
from analysis.stats.inference import TwoArmResult, delta_ratio_test, lift_variance, welch_test
from analysis.stats.sequential import SequentialResult, sequential_interval
from analysis.stats.trend import TrendResult, lift_trend

DAY = dt.timedelta(days=1)


def timeline_parts(metric: Metric) -> tuple[EventAggregate, EventAggregate | None] | None:
    """The per-unit parts (x, y) a timeline can sum over days, or None."""
    if metric.kind == "ratio":
        assert metric.numerator is not None
        assert metric.denominator is not None
        return metric.numerator, metric.denominator
    if metric.kind in ("mean", "proportion") and metric.value and metric.value.agg != "mean":
        return metric.value, None
    return None


def supports_timeline(metric: Metric) -> bool:
    return timeline_parts(metric) is not None


def daily_moments(
    units: pl.LazyFrame,
    rows: pl.LazyFrame,
    metric: Metric,
    as_of: dt.date,
    start: dt.date,
) -> dict[str, dict[dt.date, Moments]]:
    """``{variant: {day: Moments}}`` of the metric as analysed at the end of each day.

    ``rows`` are the run's partial aggregates (:func:`analysis.partials.partials`).
    Nothing is expanded to units × days: a unit's cumulative value changes only
    on the days it has events, so each such day contributes the change of the
    unit's ``x``, ``y``, ``x²``, ``y²`` and ``xy``; the per-arm sums on day D
    are the running totals of those changes, and ``n`` the units exposed by D.
    The centred moments follow from the raw sums (exact for counts, which is
    what timelines sum: integers below 2^53 are exact in float64).
    """
    parts = timeline_parts(metric)
    if parts is None:
        return {}
    x_part, y_part = parts
    exposed = units.filter(~pl.col("crossover")).select(
        "unit_id",
        "variant",
        pl.max_horizontal(pl.col("assigned_at").dt.date(), pl.lit(start)).alias("first"),
    )
    # Running totals per unit over an integer key (windows over 1M text ids are slow);
    # the total before a day is the total after it less the day's change.
    keyed = exposed.select("unit_id", "variant").with_row_index("unit")
    changes = (
        daily_increments(rows, x_part, y_part, as_of)
        .filter(pl.col("day") >= start)
        .join(keyed, on="unit_id", how="inner")
        .sort("unit", "day")
        .with_columns(
            pl.col("x").cum_sum().over("unit").alias("cx"),
            pl.col("y").cum_sum().over("unit").alias("cy"),
        )
        .with_columns(
            (pl.col("cx") - pl.col("x")).alias("px"),
            (pl.col("cy") - pl.col("y")).alias("py"),
        )
    )
    if metric.kind == "proportion":
        changes = changes.with_columns(
            (pl.col("cx") > 0).cast(pl.Float64).alias("cx"),
            (pl.col("px") > 0).cast(pl.Float64).alias("px"),
        )
    cx, cy, px, py = pl.col("cx"), pl.col("cy"), pl.col("px"), pl.col("py")
    sums = (
        changes.group_by("variant", "day")
        .agg(
            (cx - px).sum().alias("sx"),
            (cy - py).sum().alias("sy"),
            (cx * cx - px * px).sum().alias("sxx"),
            (cy * cy - py * py).sum().alias("syy"),
            (cx * cy - px * py).sum().alias("sxy"),
        )
        .collect(engine="streaming")
    )
    arrivals = (
        exposed.filter(pl.col("first") <= as_of)
        .group_by("variant", "first")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
    )
    ratio = metric.kind == "ratio"
    result: dict[str, dict[dt.date, Moments]] = {}
    for (variant,), arrived in arrivals.partition_by("variant", as_dict=True).items():
        by_day = dict(zip(arrived["first"].to_list(), arrived["n"].to_list(), strict=True))
        changes_by_day = {
            day: values
            for day, *values in sums.filter(pl.col("variant") == variant)
            .select("day", "sx", "sy", "sxx", "syy", "sxy")
            .iter_rows()
        }
        result[str(variant)] = cumulative_moments(by_day, changes_by_day, as_of, ratio=ratio)
    return result


def cumulative_moments(
    arrivals: Mapping[dt.date, int],
    changes: Mapping[dt.date, Sequence[float]],
    as_of: dt.date,
    *,
    ratio: bool,
) -> dict[dt.date, Moments]:
    """Each day's moments of one arm, from the units that arrived and the change of the raw sums.

    ``changes[day]`` is the day's change of ``(sx, sy, sxx, syy, sxy)`` over the
    arm's units; both engines compute those (polars here, SQL in
    :mod:`analysis.sql.aggregate_timeline`) and add them up here.
    """
    none = [0.0] * 5
    n, totals = 0, [0.0] * 5
    series: dict[dt.date, Moments] = {}
    day = min(arrivals)
    while day <= as_of:
        n += arrivals.get(day, 0)
        change = changes.get(day, none)
        totals = [t + float(d) for t, d in zip(totals, change, strict=True)]
        series[day] = moments_from_sums(n, *totals, ratio=ratio)
        day += DAY
    return series


def trending_metrics(experiment: Experiment, metrics: Sequence[Metric]) -> list[Metric]:
    """The metrics followed by week since exposure: the primary and the trust metrics."""
    return [m for m in metrics if m.name == experiment.metrics.primary or m.category == "trust"]


def _unit_weeks(
    units: pl.LazyFrame, rows: pl.LazyFrame, columns: Sequence[str], window: Window
) -> pl.LazyFrame:
    """Per unit and fully observed week since exposure: ``variant, week`` and the
    ``columns`` summed over the week (0 in a week without events).

    A unit's week w is fully observed when it lies inside its window and
    before the end of the analysis date.
    """
    per_week = (
        rows.filter((pl.col("day") <= window.as_of) & (pl.col("week") >= 0))
        .group_by("unit_id", "week")
        .agg(pl.col(c).cast(pl.Float64).sum() for c in columns)
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
    return grid.join(per_week, on=["unit_id", "week"], how="left").with_columns(
        pl.col(c).fill_null(0.0) for c in columns
    )


def _week_parts(
    metrics: Sequence[Metric],
) -> tuple[dict[str, tuple[pl.Expr, pl.Expr | None]], list[str]]:
    """Per metric with a timeline, its unit-week ``x`` and ``y`` (None: not a ratio),
    and the partial-aggregate columns they read."""
    usable = {m.name: (m, parts) for m in metrics if (parts := timeline_parts(m)) is not None}
    columns = sorted(
        {aggregate_name(p) for _, parts in usable.values() for p in parts if p is not None}
    )
    exprs: dict[str, tuple[pl.Expr, pl.Expr | None]] = {}
    for name, (metric, (x_part, y_part)) in usable.items():
        x = pl.col(aggregate_name(x_part))
        if metric.kind == "proportion":
            x = (x > 0).cast(pl.Float64)
        y = pl.col(aggregate_name(y_part)) if metric.kind == "ratio" and y_part else None
        exprs[name] = (x, y)
    return exprs, columns


def weekly_moments(
    units: pl.LazyFrame,
    rows: pl.LazyFrame,
    metrics: Sequence[Metric],
    window: Window,
) -> dict[str, dict[str, dict[int, Moments]]]:
    """``{metric: {variant: {week since exposure: Moments}}}``, all metrics in one pass.

    A unit enters week w when its whole week is observed (inside its window
    and before the end of the analysis date).
    """
    parts, columns = _week_parts(metrics)
    if not parts:
        return {}
    exprs = [e for name, (x, y) in parts.items() for e in moment_exprs(x, y, f"{name}|")]
    weekly = _unit_weeks(units, rows, columns, window)
    found = weekly.group_by("variant", "week").agg(exprs).collect(engine="streaming")
    result: dict[str, dict[str, dict[int, Moments]]] = {name: {} for name in parts}
    for row in found.iter_rows(named=True):
        for name in parts:
            by_week = result[name].setdefault(row["variant"], {})
            by_week[int(row["week"])] = moments_from_row(row, f"{name}|")
    return result


def decay_moments(
    units: pl.LazyFrame,
    rows: pl.LazyFrame,
    metrics: Sequence[Metric],
    window: Window,
) -> dict[str, dict[str, JointMoments]]:
    """``{metric: {variant: JointMoments}}`` of each unit's decay sums over its fully
    observed weeks (:data:`analysis.stats.decay.DECAY_SUMS`: x, w x, y, w y, w² y)."""
    parts, columns = _week_parts(metrics)
    if not parts:
        return {}
    week = pl.col("week").cast(pl.Float64)
    sums = []
    for name, (x, y) in parts.items():
        y_or_one = pl.lit(1.0) if y is None else y.cast(pl.Float64)
        for i, value in enumerate(
            (x.cast(pl.Float64), week * x, y_or_one, week * y_or_one, week * week * y_or_one)
        ):
            sums.append(value.sum().alias(f"{name}|{i}"))
    per_unit = _unit_weeks(units, rows, columns, window).group_by("unit_id", "variant").agg(sums)
    names = {name: [f"{name}|{i}" for i in range(len(DECAY_SUMS))] for name in parts}
    exprs = [e for name, cols in names.items() for e in joint_moment_exprs(cols, f"{name}#")]
    found = per_unit.group_by("variant").agg(exprs).collect(engine="streaming")
    return {
        name: {
            row["variant"]: joint_moments_from_row(row, cols, f"{name}#")
            for row in found.iter_rows(named=True)
        }
        for name, cols in names.items()
    }


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
