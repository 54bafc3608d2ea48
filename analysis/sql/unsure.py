"""The database engine's calibration by bucket (:mod:`analysis.unsure`): one query.

Per (unit, task) in the units' windows: the AI outputs shown, the mean
confidence and latency, and whether it was accepted, edited or rejected; the
tasks with one output are bucketed by each dimension; per unit and bucket the
tasks, the outcomes, the confidence sum and the gap (where every task of the
unit there has a confidence); per (dimension, arm, bucket) the centred moments
of each rate's pair ``(x, tasks)``, over the units with both (as
:func:`~analysis.polars_exprs.moment_exprs`).
"""

from __future__ import annotations

import polars as pl
import sqlglot
from sqlglot import exp

from analysis.aggregates import Moments
from analysis.measurement import UnsureData
from analysis.sql.aggregate_plan import Scope, windowed_events
from analysis.sql.aggregate_read import as_float
from analysis.sql.expressions import (
    all_of,
    case,
    column,
    cte,
    double,
    eq,
    flag,
    integer,
    named,
    not_null,
    number,
    ref,
    string,
    union_all,
    window,
    with_ctes,
)
from analysis.unsure import CONFIDENCE, DIMENSIONS, GAP, OUTCOMES, UNSURE_EVENTS

__all__ = ["read_unsure", "unsure_query"]

WHATS: tuple[str, ...] = (*(name for name, _ in OUTCOMES), CONFIDENCE, GAP)
GROUPS = ("dim", "variant", "bucket")


def _bucket(value: exp.Expr, edges: tuple[float, ...]) -> exp.Expr:
    """The index of the bucket ``[edges[i], edges[i+1])`` (the last one closed); null outside."""
    inside: exp.Expr = exp.GTE(this=value, expression=number(edges[0]))
    if edges[-1] != float("inf"):
        inside = all_of(inside, exp.LTE(this=value.copy(), expression=number(edges[-1])))
    index: exp.Expr = integer(0)
    for edge in edges[1:-1]:
        index = exp.Add(
            this=index, expression=flag(exp.GTE(this=value.copy(), expression=number(edge)))
        )
    return case(inside, index, exp.Null())


def _of(event: str, value: exp.Expr) -> exp.Expr:
    return case(eq(column("event"), string(event)), value, exp.Null())


def unsure_query(s: Scope) -> exp.Query:
    """Rows ``dim, variant, bucket``, then per rate ``n, mean_x, mean_y, m2_x, m2_y, c_xy``."""
    tasks = (
        sqlglot.select(
            column("unit_id"),
            column("variant"),
            named(exp.Sum(this=flag(eq(column("event"), string("ai_shown")))), "shown"),
            *[
                named(exp.Avg(this=_of(event, column("value"))), name)
                for name, event, _ in DIMENSIONS
            ],
            *[
                named(exp.Max(this=flag(eq(column("event"), string(event)))), name)
                for name, event in OUTCOMES
            ],
        )
        .from_(ref("in_window"))
        .where(all_of(eq(column("pre"), integer(0)), not_null(column("task_id"))))
        .group_by(column("unit_id"), column("variant"), column("task_id"))
    )
    outcomes = [column(name) for name, _ in OUTCOMES]
    cells = union_all(
        [
            sqlglot.select(
                named(string(dimension), "dim"),
                column("unit_id"),
                column("variant"),
                named(_bucket(column(dimension), edges), "bucket"),
                *outcomes,
                named(column(CONFIDENCE), "c"),
            )
            .from_(ref("unsure_tasks"))
            .where(eq(column("shown"), integer(1)))
            for dimension, _, edges in DIMENSIONS
        ]
    )
    complete = eq(exp.Count(this=column("c")), exp.Count(this=exp.Star()))
    summed_c = exp.Sum(this=column("c"))
    per_unit = (
        sqlglot.select(
            *[column(g) for g in GROUPS],
            named(double(exp.Count(this=exp.Star())), "tasks"),
            *[named(double(exp.Sum(this=column(name))), name) for name, _ in OUTCOMES],
            named(case(complete, summed_c, exp.Null()), CONFIDENCE),
            named(
                case(
                    complete.copy(),
                    exp.Sub(this=exp.Sum(this=column("accepted")), expression=summed_c.copy()),
                    exp.Null(),
                ),
                GAP,
            ),
        )
        .from_(ref("unsure_cells"))
        .where(not_null(column("bucket")))
        .group_by(*[column(g) for g in GROUPS], column("unit_id"))
    )
    partition = [column(g) for g in GROUPS]
    pairs: list[exp.Expr] = []
    for what in WHATS:
        pairs += [
            named(column(what), f"x_{what}"),
            named(case(not_null(column(what)), column("tasks"), exp.Null()), f"y_{what}"),
        ]
    paired = sqlglot.select(*partition, *pairs).from_(ref("unsure_units"))
    means = []
    for what in WHATS:
        for part in ("x", "y"):
            name = f"{part}_{what}"
            means.append(named(window(exp.Avg(this=column(name)), partition), f"m{name}"))
    centred = sqlglot.select(exp.Star(), *means).from_(ref("unsure_paired"))

    def dev(name: str) -> exp.Expr:
        return exp.Paren(this=exp.Sub(this=column(name), expression=column(f"m{name}")))

    out: list[exp.Expr] = [*[column(g) for g in GROUPS]]
    for what in WHATS:
        x, y = f"x_{what}", f"y_{what}"
        out += [
            exp.Count(this=column(x)),
            exp.Avg(this=column(x)),
            exp.Avg(this=column(y)),
            exp.Sum(this=exp.Mul(this=dev(x), expression=dev(x))),
            exp.Sum(this=exp.Mul(this=dev(y), expression=dev(y))),
            exp.Sum(this=exp.Mul(this=dev(x), expression=dev(y))),
        ]
    query = (
        sqlglot.select(*[named(e, f"c{i}") for i, e in enumerate(out)])
        .from_(ref("unsure_centred"))
        .group_by(*[column(g) for g in GROUPS])
    )
    ctes = [
        *windowed_events(s, UNSURE_EVENTS),
        (cte("unsure_tasks"), tasks),
        (cte("unsure_cells"), cells),
        (cte("unsure_units"), per_unit),
        (cte("unsure_paired"), paired),
        (cte("unsure_centred"), centred),
    ]
    return with_ctes(query, ctes)


def read_unsure(frame: pl.DataFrame) -> UnsureData:
    """:class:`~analysis.measurement.UnsureData` from :func:`unsure_query`'s rows."""
    found: dict[str, dict[str, dict[int, dict[str, Moments]]]] = {d: {} for d, _, _ in DIMENSIONS}
    for row in frame.rows():
        dim, variant, bucket = str(row[0]), str(row[1]), int(row[2])
        cells: dict[str, Moments] = {}
        for k, what in enumerate(WHATS):
            n, *sums = row[3 + 6 * k : 9 + 6 * k]
            if n:
                cells[what] = Moments(int(n), *(as_float(v) for v in sums))
        found[dim].setdefault(variant, {})[bucket] = cells
    return UnsureData(found)
