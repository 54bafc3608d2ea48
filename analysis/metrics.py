"""From raw tables to per-unit metric values and per-arm sufficient statistics.

The walk, all lazy polars:

1. :func:`clean_assignments` — one row per unit; units seen in two variants
   (crossovers) are set aside and counted; units assigned after the analysis
   date are not in the experiment yet.
2. :func:`unit_table` — events deduplicated on ``event_id``, joined to their
   unit, limited to the unit's window ``[assigned_at, assigned_at + window)``
   (capped at the end of the analysis date), and aggregated to one row per unit
   in a single pass that computes every aggregate any metric of the catalog
   needs: per-day partials (:mod:`analysis.partials`), merged per unit.
3. :func:`arm_moments` — per variant, the mergeable moments of each metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import polars as pl

from analysis.aggregates import Moments, moments_from_row
from analysis.config.experiments import EventAggregate, Experiment, Metric
from analysis.joint import JointMoments, joint_moments_from_row
from analysis.measurement import Cleaning, Window
from analysis.partials import (
    PartialSpec,
    aggregate_name,
    event_mask,
    partials,
    unit_table_from_partials,
)
from analysis.polars_exprs import (
    joint_moment_exprs,
    moment_exprs,
    winsorize_caps_exprs,
    winsorize_expr,
)


def clean_assignments(assignments: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    """One row per unit: the first assignment, and whether the unit crossed over.

    Columns: unit_id, variant, assigned_at, crossover (bool), and every
    dimension column of the input.
    """
    dims = [
        c
        for c in assignments.collect_schema().names()
        if c not in {"experiment_id", "unit_id", "variant", "assigned_at"}
    ]
    return (
        assignments.filter(pl.col("assigned_at") < window.end)
        .sort("assigned_at")
        .group_by("unit_id")
        .agg(
            pl.col("variant").first(),
            pl.col("assigned_at").first(),
            (pl.col("variant").n_unique() > 1).alias("crossover"),
            *[pl.col(d).first() for d in dims],
        )
    )


def unit_table(
    units: pl.LazyFrame,
    events: pl.LazyFrame,
    metrics: Sequence[Metric],
    window: Window,
) -> pl.LazyFrame:
    """Per-unit metric columns for the non-crossed-over units, from raw events.

    For a metric ``m``: ratio metrics get ``m__num`` and ``m__den``; mean and
    proportion metrics get ``m`` (null when the unit does not enter the metric,
    e.g. a unit that never answered a survey). Counts and sums of a unit
    without such events are 0. With ``window.pre_days > 0`` the same columns
    with the suffix ``__pre`` (``m__num__pre``, ``m__pre``) hold the pre-period
    values (the CUPED covariate), computed in the same pass. A run computes the
    partials once and merges them (:mod:`analysis.partials`); this is the same
    walk in one call.
    """
    spec = PartialSpec.of(metrics, window.window_days, window.pre_days)
    rows = partials(events.unique(subset="event_id", keep="any"), units, spec)
    return unit_table_from_partials(units, rows, metrics, spec, window.as_of)


def in_window_events(
    units: pl.LazyFrame,
    events: pl.LazyFrame,
    window: Window,
    event_names: Sequence[str] | None = None,
    *,
    deduplicate: bool = True,
) -> pl.LazyFrame:
    """Events of non-crossed-over units inside each unit's window.

    The column ``pre`` marks events of the pre-period ``[assigned_at -
    pre_days, assigned_at)``, included when ``window.pre_days > 0``. Events
    are deduplicated on ``event_id`` unless the caller already did
    (``deduplicate=False``).
    """
    relevant = events if event_names is None else events.filter(pl.col("event").is_in(event_names))
    if deduplicate:
        relevant = relevant.unique(subset="event_id", keep="any")
    end = pl.lit(window.end)
    if window.window_days is not None:
        end = pl.min_horizontal(end, pl.col("assigned_at") + pl.duration(days=window.window_days))
    start = pl.col("assigned_at") - pl.duration(days=window.pre_days)
    return (
        relevant.join(
            units.filter(~pl.col("crossover")).select("unit_id", "variant", "assigned_at"),
            on="unit_id",
            how="inner",
        )
        .filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .with_columns((pl.col("ts") < pl.col("assigned_at")).alias("pre"))
    )


def of_events(in_window: pl.LazyFrame, event_names: Sequence[str]) -> pl.LazyFrame:
    """The rows of ``in_window`` (:func:`in_window_events`) of the events ``event_names``."""
    return in_window.filter(pl.col("event").is_in(event_names))


def _moment_aggs(metrics: Sequence[Metric]) -> list[pl.Expr]:
    exprs: list[pl.Expr] = []
    for m in metrics:
        if m.kind == "ratio":
            exprs += moment_exprs(pl.col(f"{m.name}__num"), pl.col(f"{m.name}__den"), f"{m.name}|")
        elif m.kind in ("mean", "proportion"):
            exprs += moment_exprs(pl.col(m.name), None, f"{m.name}|")
    return exprs


def arm_moments(table: pl.LazyFrame, metrics: Sequence[Metric]) -> dict[str, dict[str, Moments]]:
    """``{metric: {variant: Moments}}`` for every non-quantile metric."""
    rows = table.group_by("variant").agg(_moment_aggs(metrics)).collect(engine="streaming")
    result: dict[str, dict[str, Moments]] = {}
    for m in metrics:
        if m.kind == "quantile":
            continue
        result[m.name] = {
            row["variant"]: moments_from_row(row, f"{m.name}|") for row in rows.to_dicts()
        }
    return result


def cuped_columns(metric: Metric) -> list[str] | None:
    """The per-unit columns CUPED reads for a metric, or None when it cannot apply.

    Mean/proportion: (x, x_pre); ratio: (x, y, x_pre, y_pre). A metric whose
    per-unit value is a mean of event values (e.g. the trust survey) has no
    pre-period value for most units, and quantiles are not unit sums.
    """
    if metric.kind == "ratio":
        n, d = f"{metric.name}__num", f"{metric.name}__den"
        return [n, d, f"{n}__pre", f"{d}__pre"]
    if metric.kind in ("mean", "proportion") and metric.value and metric.value.agg != "mean":
        return [metric.name, f"{metric.name}__pre"]
    return None


def arm_joint_moments(
    table: pl.LazyFrame, metrics: Sequence[Metric]
) -> dict[str, dict[str, JointMoments]]:
    """``{metric: {variant: JointMoments}}`` of each metric with its pre-period value."""
    names = set(table.collect_schema().names())
    columns = {m.name: cuped_columns(m) for m in metrics}
    usable = {k: v for k, v in columns.items() if v is not None and set(v) <= names}
    if not usable:
        return {}
    exprs = [e for k, cols in usable.items() for e in joint_moment_exprs(cols, f"{k}|")]
    rows = table.group_by("variant").agg(exprs).collect(engine="streaming").to_dicts()
    return {
        k: {row["variant"]: joint_moments_from_row(row, cols, f"{k}|") for row in rows}
        for k, cols in usable.items()
    }


def segment_moments(
    table: pl.LazyFrame, metrics: Sequence[Metric], dimension: str
) -> dict[str, dict[str, dict[str, Moments]]]:
    """``{metric: {segment value: {variant: Moments}}}`` for one dimension.

    Units whose dimension is missing form the segment ``"(missing)"``.
    """
    segment = pl.col(dimension).cast(pl.String).fill_null("(missing)").alias("segment")
    rows = (
        table.with_columns(segment)
        .group_by("segment", "variant")
        .agg(_moment_aggs(metrics))
        .collect(engine="streaming")
        .to_dicts()
    )
    result: dict[str, dict[str, dict[str, Moments]]] = {}
    for m in metrics:
        if m.kind == "quantile":
            continue
        by_value: dict[str, dict[str, Moments]] = {}
        for row in rows:
            by_value.setdefault(row["segment"], {})[row["variant"]] = moments_from_row(
                row, f"{m.name}|"
            )
        result[m.name] = dict(sorted(by_value.items()))
    return result


# --------------------------------------------------------------------------- per-event capping


#: The periods of in-window events, by column suffix: the analysis window and the pre-period.
_PERIODS: Mapping[str, pl.Expr] = {"": ~pl.col("pre"), "__pre": pl.col("pre")}
_CAPPED = "__capped__"


def event_capped(metrics: Sequence[Metric]) -> list[Metric]:
    """Ratio metrics whose numerator aggregates event values (``sum``, ``mean``).

    Winsorising caps their numerators per event, before the unit's sum: a cap
    on per-unit sums would clip units for having many events, not for having
    extreme values. A ``count`` numerator has no values to cap (capping
    per-unit counts is the same bias) and is left alone.
    """
    return [
        m
        for m in metrics
        if m.kind == "ratio" and m.numerator is not None and m.numerator.agg != "count"
    ]


def event_capped_events(metrics: Sequence[Metric]) -> list[str]:
    """The events whose values :func:`capped_numerators` reads."""
    return sorted({m.numerator.event for m in event_capped(metrics) if m.numerator})


def _capped_aggregates(metrics: Sequence[Metric]) -> dict[str, EventAggregate]:
    found = {aggregate_name(m.numerator): m.numerator for m in event_capped(metrics) if m.numerator}
    return dict(sorted(found.items()))


def _event_values(
    in_window: pl.LazyFrame, aggregates: Mapping[str, EventAggregate]
) -> pl.LazyFrame:
    """``unit_id`` and, per aggregate and period, the value of the rows that belong there."""
    return in_window.select(
        "unit_id",
        *(
            pl.when(event_mask(agg) & period).then(pl.col("value").cast(pl.Float64)).alias(name + s)
            for name, agg in aggregates.items()
            for s, period in _PERIODS.items()
        ),
    )


def event_caps(
    in_window: pl.LazyFrame, metrics: Sequence[Metric], percentile: float
) -> dict[str, tuple[float, float]]:
    """Pooled caps of the event values of every :func:`event_capped` numerator.

    ``in_window``: the run's events (:func:`in_window_events`, with the
    pre-period and its ``pre`` column), all arms. Keys are the aggregate's
    name (``task_completed__sum``: the analysis window) and the name with
    ``__pre`` (the pre-period, capped at its own percentiles so that CUPED
    compares like with like); values ``(low, high)`` are the linear quantiles
    at ``1 - percentile`` and ``percentile`` of the period's non-null values
    (:func:`analysis.stats.winsorize.winsorize_caps`), ``(-inf, inf)`` for a
    period without values.
    """
    aggregates = _capped_aggregates(metrics)
    columns = [name + s for name in aggregates for s in _PERIODS]
    if not columns:
        return {}
    row = (
        _event_values(in_window, aggregates)
        .select([e for c in columns for e in winsorize_caps_exprs(c, percentile)])
        .collect()
        .row(0, named=True)
    )
    caps: dict[str, tuple[float, float]] = {}
    for c in columns:
        low, high = row[f"{c}_cap_low"], row[f"{c}_cap_high"]
        caps[c] = (-math.inf, math.inf) if low is None or high is None else (low, high)
    return caps


def capped_numerators(
    table: pl.LazyFrame, in_window: pl.LazyFrame, metrics: Sequence[Metric], percentile: float
) -> pl.LazyFrame:
    """``table`` with the numerators of :func:`event_capped` metrics from capped event values.

    Every event value is clipped to :func:`event_caps` of its period, then
    aggregated per unit like the uncapped numerator (a sum; a mean of the
    capped values). ``m__num`` and, where ``table`` has it, ``m__num__pre``
    are replaced; a unit without such events keeps 0 (a sum) or null (a mean).
    ``in_window`` must hold every event of the numerators in each unit's
    window and pre-period (:func:`in_window_events`).
    """
    names = set(table.collect_schema().names())
    capped = [m for m in event_capped(metrics) if f"{m.name}__num" in names]
    if not capped:
        return table
    aggregates = _capped_aggregates(capped)
    caps = event_caps(in_window, capped, percentile)
    per_unit = (
        _event_values(in_window, aggregates)
        .with_columns(winsorize_expr(c, low, high) for c, (low, high) in caps.items())
        .group_by("unit_id")
        .agg(
            *(pl.col(c).sum().alias(f"{_CAPPED}{c}__sum") for c in caps),
            *(pl.col(c).count().alias(f"{_CAPPED}{c}__n") for c in caps),
        )
    )
    replaced: list[pl.Expr] = []
    for m in capped:
        assert m.numerator is not None
        for s in _PERIODS:
            if f"{m.name}__num{s}" not in names:
                continue
            column = f"{_CAPPED}{aggregate_name(m.numerator)}{s}"
            total, n = pl.col(f"{column}__sum"), pl.col(f"{column}__n")
            value = (
                total.fill_null(0.0) if m.numerator.agg == "sum" else pl.when(n > 0).then(total / n)
            )
            replaced.append(value.cast(pl.Float64).alias(f"{m.name}__num{s}"))
    helpers = [f"{_CAPPED}{c}__{part}" for c in caps for part in ("sum", "n")]
    return table.join(per_unit, on="unit_id", how="left").with_columns(replaced).drop(helpers)


def cleaning_counts(
    units: pl.LazyFrame, events: pl.LazyFrame, experiment: Experiment, *, unique: bool = False
) -> Cleaning:
    """Units per variant, crossovers and duplicate events of one experiment.

    ``unique``: the events are known to be deduplicated (no ids are counted).
    """
    unit_counts = (
        units.group_by("crossover", "variant").agg(pl.len().cast(pl.Int64).alias("n")).collect()
    )
    by_variant = dict.fromkeys(experiment.variants, 0)
    crossovers = 0
    for row in unit_counts.iter_rows(named=True):
        if row["crossover"]:
            crossovers += int(row["n"])
        else:
            by_variant[row["variant"]] = by_variant.get(row["variant"], 0) + int(row["n"])
    distinct = pl.len() if unique else pl.col("event_id").n_unique()
    event_counts = events.select(
        pl.len().cast(pl.Int64).alias("rows"), distinct.cast(pl.Int64).alias("unique")
    ).collect(engine="streaming")
    rows, unique = event_counts.row(0)
    return Cleaning(
        events=int(rows),
        duplicates_dropped=int(rows) - int(unique),
        crossovers_excluded=crossovers,
        units=by_variant,
    )
