"""The per-task table that the task flow and the calibration both read.

One group-by over their events in the units' windows: each section grouped
the same events by ``(unit_id, task_id)`` on its own (about a second each at
10.7M events).
"""

from __future__ import annotations

import polars as pl

from analysis import metrics as metrics_mod
from analysis.task_flow import FLOW_EVENTS, FLOW_STEPS, STARTED
from analysis.unsure import DIMENSIONS, OUTCOMES, UNSURE_EVENTS

#: How many of the task's ``ai_shown`` events there are (the calibration keeps one-output tasks).
SHOWN = "shown"


def task_table(in_window: pl.LazyFrame) -> pl.LazyFrame:
    """One row per task of the run that was started or showed one AI output (the tasks
    either section reads): ``unit_id``, ``variant``, ``task_id``,

    * for the task flow (:mod:`analysis.task_flow`): whether it was started
      (``STARTED``) and reached each step (the step's name), as booleans;
    * for the calibration (:mod:`analysis.unsure`): ``shown`` (its number of AI
      outputs), the mean value of each dimension's event and each outcome (0.0
      or 1.0).

    ``in_window``: the run's events in their units' windows
    (:func:`analysis.metrics.in_window_events`, without duplicate event ids);
    pre-period events and events without a task are left out.
    """
    event = pl.col("event")
    return (
        metrics_mod.of_events(in_window, sorted({*FLOW_EVENTS, *UNSURE_EVENTS}))
        .filter(~pl.col("pre") & pl.col("task_id").is_not_null())
        .group_by("unit_id", "variant", "task_id")
        .agg(
            (event == STARTED).any().alias(STARTED),
            *[(event == name).any().alias(step) for step, name, _ in FLOW_STEPS],
            (event == "ai_shown").sum().alias(SHOWN),
            *[pl.col("value").filter(event == name).mean().alias(d) for d, name, _ in DIMENSIONS],
            *[(event == name).any().cast(pl.Float64).alias(o) for o, name in OUTCOMES],
        )
        .filter(pl.col(STARTED) | (pl.col(SHOWN) == 1))
        .collect(engine="streaming")
        .lazy()
    )
