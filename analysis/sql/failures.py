"""The database engine's failure labels (:mod:`analysis.failures`): found, then measured.

Two queries: ``failure_labels``, the distinct labels of the failure events in
the units' windows with their counts (at most ``MAX_DISTINCT + 1`` rows), and,
where some are broken down, ``failures``, the moments per arm of their share
metrics (:func:`~analysis.sql.aggregate_units.arm_moments`, without segments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import polars as pl
import sqlglot
from sqlglot import exp

from analysis.failures import (
    FAILURE_EVENTS,
    MAX_DISTINCT,
    FailureData,
    failure_metrics,
    top_labels,
)
from analysis.sql.aggregate_plan import Scope, windowed_events
from analysis.sql.aggregate_read import read_moments
from analysis.sql.aggregate_units import arm_moments
from analysis.sql.expressions import all_of, column, eq, integer, named, not_null, ref, with_ctes

__all__ = ["failure_data", "label_counts"]

Run = Callable[[str, exp.Query], pl.DataFrame]


def label_counts(s: Scope) -> exp.Query:
    """Rows ``(event, label, n)``: the failure events' labels in the units' windows."""
    query = (
        sqlglot.select(column("event"), column("label"), named(exp.Count(this=exp.Star()), "n"))
        .from_(ref("in_window"))
        .where(all_of(eq(column("pre"), integer(0)), not_null(column("label"))))
        .group_by(column("event"), column("label"))
        .limit(MAX_DISTINCT + 1)
    )
    return with_ctes(query, windowed_events(s, FAILURE_EVENTS))


def failure_data(s: Scope, run: Run) -> FailureData:
    """The labels broken down and their share metrics' moments per arm."""
    rows = [(str(e), str(lb), int(n)) for e, lb, n in run("failure_labels", label_counts(s)).rows()]
    chosen = tuple(top_labels(rows))
    if not chosen:
        return FailureData(distinct=len(rows))
    metrics = [f.metric for f in failure_metrics(chosen)]
    query, layout = arm_moments(replace(s, units=None, dimensions=()), metrics)
    moments, _, _ = read_moments(run("failures", query), layout)
    return FailureData(chosen, moments, len(rows))
