"""The polars engine's task flow (:mod:`analysis.task_flow`): steps per started task."""

from __future__ import annotations

import polars as pl

from analysis.aggregates import moments_from_row
from analysis.measurement import FlowData
from analysis.polars_exprs import moment_exprs
from analysis.task_flow import FLOW_STEPS, STARTED


def flow_data(units: pl.LazyFrame, tasks: pl.LazyFrame) -> FlowData:
    """Per arm and step the moments of (tasks at the step, tasks started) per unit.

    ``tasks``: the run's :func:`~analysis.engines.polars_tasks.task_table`. A
    task counts once it is started in the unit's window; its steps are any of
    its events in the window.
    """
    tasks = tasks.filter(pl.col(STARTED))
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
