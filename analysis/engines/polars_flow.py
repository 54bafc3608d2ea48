"""The polars engine's task flow (:mod:`analysis.task_flow`): steps per started task."""

from __future__ import annotations

import polars as pl

from analysis import metrics as metrics_mod
from analysis.aggregates import moments_from_row
from analysis.measurement import FlowData
from analysis.polars_exprs import moment_exprs
from analysis.task_flow import FLOW_EVENTS, FLOW_STEPS, STARTED


def flow_data(units: pl.LazyFrame, in_window: pl.LazyFrame) -> FlowData:
    """Per arm and step the moments of (tasks at the step, tasks started) per unit.

    ``in_window``: the run's events in their units' windows
    (:func:`analysis.metrics.in_window_events`, without duplicate event ids). A
    task counts once it is started in the unit's window; its steps are any of
    its events in the window.
    """
    tasks = (
        metrics_mod.of_events(in_window, FLOW_EVENTS)
        .filter(~pl.col("pre") & pl.col("task_id").is_not_null())
        .group_by("unit_id", "task_id")
        .agg(
            (pl.col("event") == STARTED).any().alias(STARTED),
            *[(pl.col("event") == event).any().alias(step) for step, event, _ in FLOW_STEPS],
        )
        .filter(pl.col(STARTED))
    )
    counted = [STARTED, *(step for step, _, _ in FLOW_STEPS)]
    per_unit = tasks.group_by("unit_id").agg(pl.col(c).sum().cast(pl.Float64) for c in counted)
    table = (
        units.filter(~pl.col("crossover"))
        .select("unit_id", "variant")
        .join(per_unit, on="unit_id", how="left")
        .with_columns(pl.col(c).fill_null(0.0) for c in counted)
    )
    exprs = [
        e
        for step, _, _ in FLOW_STEPS
        for e in moment_exprs(pl.col(step), pl.col(STARTED), f"{step}|")
    ]
    found = table.group_by("variant").agg(exprs).collect(engine="streaming")
    return FlowData(
        {
            step: {
                row["variant"]: moments_from_row(row, f"{step}|")
                for row in found.iter_rows(named=True)
            }
            for step, _, _ in FLOW_STEPS
        }
    )
