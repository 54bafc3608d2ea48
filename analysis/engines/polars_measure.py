"""The polars engine's measurement: checked tables in, one :class:`Measurement` out.

The events are read once; the per-day partial aggregates (:mod:`analysis.partials`,
computed or reused from the cache) give the unit table and both timelines; only
the funnel, the histograms and quantile metrics read event values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import polars as pl

from analysis import descriptives, timeline
from analysis import metrics as metrics_mod
from analysis.config.experiments import Experiment, Metric
from analysis.engines.polars_failures import failure_data
from analysis.engines.polars_flow import flow_data
from analysis.engines.polars_quantiles import quantile_events, quantile_summaries
from analysis.engines.polars_tasks import task_table
from analysis.engines.polars_unsure import unsure_data
from analysis.failures import FAILURE_EVENTS
from analysis.measurement import ArmData, Cleaning, Measurement, Window
from analysis.partials import PartialSpec, partials, unit_table_from_partials
from analysis.polars_exprs import winsorize_caps_exprs, winsorize_expr
from analysis.sources.read import Tables
from analysis.task_flow import FLOW_EVENTS
from analysis.unsure import UNSURE_EVENTS
from analysis.validation_report import ValidationReport

UnitCheck = Callable[[pl.LazyFrame], ValidationReport]
"""Validates the per-unit metric table (the flow passes GX under its lock)."""

PartialRows = Callable[[PartialSpec], pl.LazyFrame]
"""The run's partial aggregates for a spec, from somewhere else (the flow's cache)."""


def measure(
    tables: Tables,
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    unit_check: UnitCheck | None = None,
    *,
    partial_rows: PartialRows | None = None,
    unique_events: bool = False,
) -> Measurement:
    """Per-arm sufficient statistics from one experiment's tables, in one pass over events.

    The events are read once; the per-day partial aggregates (computed, or
    reused by ``partial_rows``) give the unit table and both timelines; only
    the funnel, the histograms and quantile metrics read event values, from
    one collected frame of the few events they name. ``unique_events``: the
    caller (the quarantine split) already removed duplicate event ids.
    """
    window = Window(as_of, experiment.window_days, experiment.pre_window_days)
    units = metrics_mod.clean_assignments(tables.assignments, window).collect().lazy()
    # Read the experiment's events once: a lazy frame over a database would
    # query it again for each of the passes below.
    events = tables.events.collect(engine="streaming").lazy()
    cleaning = metrics_mod.cleaning_counts(units, events, experiment, unique=unique_events)
    if not unique_events:
        events = events.unique(subset="event_id", keep="any").collect().lazy()
    spec = PartialSpec.of(metrics, window.window_days, window.pre_days)
    found = partials(events, units, spec) if partial_rows is None else partial_rows(spec)
    rows = found.collect(engine="streaming").lazy()
    table = unit_table_from_partials(units, rows, metrics, spec, as_of).collect().lazy()
    # GX over pandas holds the GIL for most of its work and polars releases it: the
    # sections below are measured while GX checks the unit table (a small frame).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="proof-unit-check") as pool:
        checking = None if unit_check is None else pool.submit(unit_check, table)
        measurement = _sections(experiment, metrics, window, units, events, rows, table, cleaning)
    unit_validation = None if checking is None else checking.result()
    return replace(measurement, unit_validation=unit_validation)


def _sections(
    experiment: Experiment,
    metrics: Sequence[Metric],
    window: Window,
    units: pl.LazyFrame,
    events: pl.LazyFrame,
    rows: pl.LazyFrame,
    table: pl.LazyFrame,
    cleaning: Cleaning,
) -> Measurement:
    """Everything measured from the unit table, the partials and the events in their
    windows, but the unit table's validation (the caller's)."""
    as_of = window.as_of
    percentile = experiment.statistics.winsorize_percentile
    capped = metrics_mod.event_capped_events(metrics) if percentile is not None else []
    value_events = sorted({*descriptives.EVENTS, *quantile_events(metrics)})
    # The events in their units' windows, joined to the units once for every section
    # that reads them (a join each took 2.3 s against 1.0 s once, at 10.7M events).
    sections = {*capped, *value_events, *FLOW_EVENTS, *FAILURE_EVENTS, *UNSURE_EVENTS}
    windowed = (
        metrics_mod.in_window_events(units, events, window, sorted(sections), deduplicate=False)
        .drop("event_id", "ts", "assigned_at")  # no section reads them: less to hold
        .collect(engine="streaming")
        .lazy()
    )
    if percentile is not None:
        capped_events = metrics_mod.of_events(windowed, capped)
        table = winsorize_table(table, metrics, percentile, capped_events).collect().lazy()
    in_window = (
        metrics_mod.of_events(windowed, value_events)
        .filter(~pl.col("pre"))
        .select("unit_id", "variant", "event", "value")
        .collect(engine="streaming")
        .lazy()
    )
    data = ArmData(
        moments=metrics_mod.arm_moments(table, metrics),
        quantiles=quantile_summaries(in_window, metrics, experiment),
        joint=metrics_mod.arm_joint_moments(table, metrics),
    )
    dims = table.collect_schema().names()
    segments = {
        d: metrics_mod.segment_moments(table, metrics, d) for d in experiment.segments if d in dims
    }
    by_name = {m.name: m for m in metrics}
    primary = by_name[experiment.metrics.primary]
    daily = timeline.daily_moments(units, rows, primary, as_of, experiment.start)
    trending = timeline.trending_metrics(experiment, metrics)
    weekly = timeline.weekly_moments(units, rows, trending, window)
    decay = (
        timeline.decay_moments(units, rows, trending, window)
        if experiment.kind == "holdout"
        else {}
    )
    variants = list(experiment.variants)
    tasks = task_table(windowed)
    return Measurement(
        cleaning=cleaning,
        data=data,
        segments=segments,
        daily=daily,
        weekly=weekly,
        funnel=descriptives.funnel_counts(in_window, experiment.ai_variants()),
        time_on_task=descriptives.time_on_task_histogram(in_window, variants),
        trust=descriptives.trust_histogram(in_window, variants),
        failures=failure_data(units, events, window, windowed),
        decay=decay,
        flow=flow_data(units, tasks),
        unsure=unsure_data(tasks),
    )


def winsorize_columns(metrics: Sequence[Metric]) -> list[str]:
    """Per-unit columns that winsorisation caps per unit: the values of mean metrics.

    Ratio numerators are not among them: one that aggregates event values is
    capped per event (:func:`analysis.metrics.capped_numerators`), a count is
    not capped at all (docs/statistics.md, "Winsorisation").
    """
    return [m.name for m in metrics if m.kind == "mean"]


def winsorize_table(
    table: pl.LazyFrame, metrics: Sequence[Metric], percentile: float, in_window: pl.LazyFrame
) -> pl.LazyFrame:
    """Winsorise the unit table at pooled percentiles (the same caps for every arm).

    * mean metrics: the per-unit value is capped (:func:`winsorize_columns`);
    * ratio metrics whose numerator aggregates event values (``time_on_task =
      sum(task_completed.value) / count(task_completed)``): every event value
      is capped before the unit's numerator is summed
      (:func:`analysis.metrics.capped_numerators`), from ``in_window``, the
      run's events of those numerators in each unit's window and pre-period
      (:func:`analysis.metrics.in_window_events`);
    * count numerators, denominators and proportions are left alone.

    Pre-period columns are capped with their own caps, so CUPED compares like
    with like.
    """
    table = metrics_mod.capped_numerators(table, in_window, metrics, percentile)
    names = set(table.collect_schema().names())
    columns = [c for base in winsorize_columns(metrics) for c in (base, f"{base}__pre")]
    columns = [c for c in columns if c in names]
    if not columns:
        return table
    caps = (
        table.select([e for c in columns for e in winsorize_caps_exprs(c, percentile)])
        .collect()
        .row(0, named=True)
    )
    clipped = []
    for c in columns:
        low, high = caps[f"{c}_cap_low"], caps[f"{c}_cap_high"]
        if low is not None and high is not None:
            clipped.append(winsorize_expr(c, low, high))
    return table.with_columns(clipped)
