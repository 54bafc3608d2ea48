"""The two analysis steps a run is made of, for the flows to call.

``measure`` turns an experiment's tables into per-arm sufficient statistics
(and the few per-unit columns quantiles need); ``summarise`` turns those into
``results.json``. Both are pure functions of their inputs and run without
Prefect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from analysis import descriptives, timeline
from analysis import metrics as metrics_mod
from analysis.aggregates import Moments
from analysis.balance_check import balance_check
from analysis.comparisons import EMPTY_SAMPLE, ArmData, Comparison, compare_all
from analysis.config import Experiment, Metric, Variant
from analysis.decision import decide
from analysis.descriptives import Histogram
from analysis.joint import JointMoments
from analysis.partials import PartialSpec, partials, unit_table_from_partials
from analysis.results import build_results
from analysis.segments import segment_comparisons
from analysis.sources import Tables
from analysis.stats.quantile import QuantileSample
from analysis.stats.srm import srm_test
from analysis.stats.winsorize import winsorize_caps_exprs, winsorize_expr
from analysis.validation import ValidationReport


@dataclass(frozen=True)
class Measurement:
    """What the statistics need from one experiment's data."""

    cleaning: metrics_mod.Cleaning
    data: ArmData
    segments: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Moments]]]]
    daily: Mapping[str, Mapping[dt.date, Moments]] = field(default_factory=dict)
    weekly: Mapping[str, Mapping[str, Mapping[int, Moments]]] = field(default_factory=dict)
    funnel: Mapping[str, list[tuple[str, int]]] = field(default_factory=dict)
    time_on_task: Histogram | None = None
    trust: Mapping[str, list[int]] = field(default_factory=dict)
    unit_validation: ValidationReport | None = None


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
    window = metrics_mod.Window(as_of, experiment.window_days, experiment.pre_window_days)
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
    unit_validation = unit_check(table) if unit_check is not None else None
    percentile = experiment.statistics.winsorize_percentile
    if percentile is not None:
        capped_events = metrics_mod.in_window_events(
            units, events, window, metrics_mod.event_capped_events(metrics), deduplicate=False
        )
        capped_events = capped_events.collect().lazy()
        table = winsorize_table(table, metrics, percentile, capped_events).collect().lazy()
    value_events = sorted({*descriptives.EVENTS, *metrics_mod.quantile_events(metrics)})
    in_window = (
        metrics_mod.in_window_events(units, events, window, value_events, deduplicate=False)
        .filter(~pl.col("pre"))
        .select("unit_id", "variant", "event", "value")
        .collect(engine="streaming")
        .lazy()
    )
    data = ArmData(
        moments=metrics_mod.arm_moments(table, metrics),
        samples=metrics_mod.quantile_samples(in_window, metrics),
        joint=metrics_mod.arm_joint_moments(table, metrics),
    )
    dims = table.collect_schema().names()
    segments = {
        d: metrics_mod.segment_moments(table, metrics, d) for d in experiment.segments if d in dims
    }
    by_name = {m.name: m for m in metrics}
    primary = by_name[experiment.metrics.primary]
    daily = timeline.daily_moments(units, rows, primary, as_of, experiment.start)
    weekly = timeline.weekly_moments(
        units,
        rows,
        [m for m in metrics if m is primary or m.category == "trust"],
        window,
    )
    variants = list(experiment.variants)
    return Measurement(
        cleaning=cleaning,
        data=data,
        segments=segments,
        daily=daily,
        weekly=weekly,
        funnel=descriptives.funnel_counts(in_window, experiment.ai_variants()),
        time_on_task=descriptives.time_on_task_histogram(in_window, variants),
        trust=descriptives.trust_histogram(in_window, variants),
        unit_validation=unit_validation,
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


def summarise(
    experiment: Experiment,
    metrics: Sequence[Metric],
    measurement: Measurement,
    validation: Mapping[str, Any],
    run_id: str,
    as_of: dt.date,
    generated_at: dt.datetime,
    quarantined_rows: int = 0,
) -> dict[str, Any]:
    shares = {name: v.share for name, v in experiment.variants.items()}
    by_name = {m.name: m for m in metrics}
    primary = by_name[experiment.metrics.primary]
    srm = srm_test(measurement.cleaning.units, shares)
    comparisons, descriptions = compare_all(experiment, metrics, measurement.data, as_of)
    balance = balance_check(experiment, metrics, measurement.data)
    slices, heterogeneity = segment_comparisons(experiment, metrics, measurement.segments)
    pooled = pooled_ai_comparisons(experiment, metrics, measurement.data, as_of)
    decision = decide(
        experiment,
        comparisons,
        srm,
        bool(validation["success"]),
        as_of,
        balance,
        measurement.cleaning,
    )
    return build_results(
        experiment=experiment,
        run_id=run_id,
        as_of=as_of,
        generated_at=generated_at,
        cleaning=measurement.cleaning,
        quarantined_rows=quarantined_rows,
        validation=dict(validation),
        srm=srm,
        comparisons=comparisons,
        descriptions=descriptions,
        decision=decision,
        balance=balance,
        segments=slices,
        heterogeneity=heterogeneity,
        pooled_ai=pooled,
        days_elapsed=(as_of - experiment.start).days + 1,
        over_time=timeline.over_time(experiment, primary, measurement.daily),
        exposure_trends=[
            t
            for name, weekly in measurement.weekly.items()
            for t in timeline.exposure_trends(experiment, by_name[name], weekly)
        ],
        descriptives=measurement,
    )


POOLED = "ai (pooled)"


def pooled_ai_comparisons(
    experiment: Experiment, metrics: Sequence[Metric], data: ArmData, as_of: dt.date
) -> list[Comparison]:
    """With several AI arms: all AI arms pooled against the non-AI control.

    Answers "does AI help at all?" beside each arm's own comparison. Units of
    the AI arms are merged (moments merge exactly; quantile samples concatenate).
    """
    ai = experiment.ai_variants()
    control = experiment.control
    if len(ai) < 2 or experiment.variants[control].ai:
        return []
    shared = [m for m in metrics if not m.ai_only]
    share = sum(experiment.variants[a].share for a in ai)
    pooled_experiment = experiment.model_copy(
        update={
            "variants": {
                control: experiment.variants[control],
                POOLED: Variant(share=share, ai=True),
            }
        }
    )

    def merge_moments(by_arm: Mapping[str, Moments]) -> dict[str, Moments]:
        merged = Moments.empty()
        for arm in ai:
            merged = merged.merge(by_arm.get(arm, Moments.empty()))
        return {control: by_arm.get(control, Moments.empty()), POOLED: merged}

    def merge_joint(by_arm: Mapping[str, JointMoments]) -> dict[str, JointMoments]:
        k = next(iter(by_arm.values())).k
        merged = JointMoments.empty(k)
        for arm in ai:
            merged = merged.merge(by_arm.get(arm, JointMoments.empty(k)))
        return {control: by_arm.get(control, JointMoments.empty(k)), POOLED: merged}

    def merge_samples(by_arm: Mapping[str, QuantileSample]) -> dict[str, QuantileSample]:
        parts = [by_arm[a] for a in ai if a in by_arm]
        merged = QuantileSample(
            np.concatenate([p.values for p in parts]) if parts else np.empty(0),
            np.concatenate([p.units for p in parts]) if parts else np.empty(0, dtype=np.int64),
        )
        return {control: by_arm.get(control, EMPTY_SAMPLE), POOLED: merged}

    pooled = ArmData(
        moments={k: merge_moments(v) for k, v in data.moments.items()},
        samples={k: merge_samples(v) for k, v in data.samples.items()},
        joint={k: merge_joint(v) for k, v in data.joint.items() if v},
    )
    comparisons, _ = compare_all(pooled_experiment, shared, pooled, as_of)
    return comparisons
