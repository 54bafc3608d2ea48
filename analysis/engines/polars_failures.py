"""The polars engine's failure labels (:mod:`analysis.failures`): found, then measured."""

from __future__ import annotations

import polars as pl

from analysis import metrics as metrics_mod
from analysis.failures import (
    FAILURE_EVENTS,
    MAX_DISTINCT,
    FailureData,
    failure_metrics,
    top_labels,
)
from analysis.measurement import Window


def failure_data(
    units: pl.LazyFrame, events: pl.LazyFrame, window: Window, in_window: pl.LazyFrame
) -> FailureData:
    """The labels of the failure events in the units' windows, and their share metrics'
    moments per arm. ``events``: without duplicate event ids; ``in_window``: they in
    their units' windows (:func:`analysis.metrics.in_window_events`)."""
    counts = (
        metrics_mod.of_events(in_window, FAILURE_EVENTS)
        .filter(~pl.col("pre") & pl.col("label").is_not_null())
        .group_by("event", "label")
        .len()
        .collect()
    )
    distinct = min(counts.height, MAX_DISTINCT + 1)  # as far as the database engine counts
    chosen = tuple(top_labels(counts.iter_rows()))
    if not chosen:
        return FailureData(distinct=distinct)
    metrics = [f.metric for f in failure_metrics(chosen)]
    # Their events only: the unit table would otherwise deduplicate every event first.
    failures = events.filter(pl.col("event").is_in(sorted({event for event, _ in chosen})))
    table = metrics_mod.unit_table(units, failures, metrics, window)
    return FailureData(chosen, metrics_mod.arm_moments(table, metrics), distinct)
