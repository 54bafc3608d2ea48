"""The database engine's task flow (:mod:`analysis.task_flow`): one query, a row per arm.

Per (unit, task) in the units' windows, whether the task was started and
reached each step; per unit the started tasks at each step; per arm the raw
sums ``n, Σy, Σy², Σx, Σx², Σxy`` per step (counts: exact in float64), which
:func:`~analysis.aggregates.moments_from_sums` turns into moments as the
polars engine's are. Every kept unit enters, with zeros without tasks.
"""

from __future__ import annotations

import polars as pl
import sqlglot
from sqlglot import exp

from analysis.aggregates import Moments, moments_from_sums
from analysis.measurement import FlowData
from analysis.sql.aggregate_plan import Scope, kept, windowed_events
from analysis.sql.aggregate_read import as_float
from analysis.sql.expressions import (
    all_of,
    column,
    cte,
    double,
    eq,
    flag,
    integer,
    named,
    not_null,
    ref,
    string,
    with_ctes,
)
from analysis.task_flow import FLOW_EVENTS, FLOW_STEPS, STARTED

__all__ = ["flow_query", "read_flow"]


def _times(a: exp.Expr, b: exp.Expr) -> exp.Expr:
    return exp.Mul(this=a, expression=b)


def flow_query(s: Scope) -> exp.Query:
    """Rows ``variant, n, Σy, Σy², then Σx, Σx², Σxy per step`` (module docstring)."""
    steps = [(STARTED, STARTED), *((step, event) for step, event, _ in FLOW_STEPS)]
    tasks = (
        sqlglot.select(
            column("unit_id"),
            *[
                named(exp.Max(this=flag(eq(column("event"), string(event)))), f"f_{step}")
                for step, event in steps
            ],
        )
        .from_(ref("in_window"))
        .where(all_of(eq(column("pre"), integer(0)), not_null(column("task_id"))))
        .group_by(column("unit_id"), column("task_id"))
    )
    per_unit = (
        sqlglot.select(
            column("unit_id"),
            *[named(double(exp.Sum(this=column(f"f_{step}"))), f"c_{step}") for step, _ in steps],
        )
        .from_(ref("flow_tasks"))
        .where(eq(column(f"f_{STARTED}"), integer(1)))
        .group_by(column("unit_id"))
    )
    zero = double(integer(0))
    rows = (
        sqlglot.select(
            column("variant", "u"),
            *[
                named(exp.Coalesce(this=column(f"c_{step}", "f"), expressions=[zero.copy()]), step)
                for step, _ in steps
            ],
        )
        .from_(ref("units", "u"))
        .join(
            ref("flow_units", "f"),
            on=eq(column("unit_id", "u"), column("unit_id", "f")),
            join_type="left",
        )
        .where(kept(column("crossover", "u")))
    )
    y = column(STARTED)
    sums: list[exp.Expr] = [
        column("variant"),
        exp.Count(this=exp.Star()),
        exp.Sum(this=y),
        exp.Sum(this=_times(y.copy(), y.copy())),
    ]
    for step, _, _ in FLOW_STEPS:
        x = column(step)
        sums += [
            exp.Sum(this=x),
            exp.Sum(this=_times(x.copy(), x.copy())),
            exp.Sum(this=_times(x.copy(), y.copy())),
        ]
    query = (
        sqlglot.select(*[named(e, f"c{i}") for i, e in enumerate(sums)])
        .from_(ref("flow_rows"))
        .group_by(column("variant"))
    )
    ctes = [
        *windowed_events(s, FLOW_EVENTS),
        (cte("flow_tasks"), tasks),
        (cte("flow_units"), per_unit),
        (cte("flow_rows"), rows),
    ]
    return with_ctes(query, ctes)


def read_flow(frame: pl.DataFrame) -> FlowData:
    """:class:`~analysis.measurement.FlowData` from :func:`flow_query`'s rows."""
    found: dict[str, dict[str, Moments]] = {step: {} for step, _, _ in FLOW_STEPS}
    for row in frame.rows():
        variant, n, sy, syy = str(row[0]), int(row[1] or 0), as_float(row[2]), as_float(row[3])
        for k, (step, _, _) in enumerate(FLOW_STEPS):
            sx, sxx, sxy = (as_float(v) for v in row[4 + 3 * k : 7 + 3 * k])
            found[step][variant] = moments_from_sums(n, sx, sy, sxx, syy, sxy, ratio=True)
    return FlowData(found)
