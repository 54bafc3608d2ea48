"""Pooled linear quantiles as SQL, equal to polars' to the last bit.

Winsorising (:mod:`analysis.sql.aggregate_units`) caps at them and the
time-on-task histogram (:mod:`analysis.sql.aggregate_descriptives`) bins
between them. polars' ``quantile(q, interpolation="linear")`` over ``n``
sorted values takes ``pos = (n - 1) q``, the values at ``floor(pos)`` and
``ceil(pos)`` (0-based), and ``(pos - floor(pos)) * (upper - lower) + lower``
between them; the SQL does the same double operations in the same order, on
values ranked with ``ROW_NUMBER()``, and reads the level as text cast to a
double (:func:`~analysis.sql.expressions.double_literal`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp

from analysis.sql.aggregate_plan import Cte
from analysis.sql.expressions import (
    case,
    column,
    cte,
    double,
    double_literal,
    eq,
    integer,
    named,
    quoted,
    ref,
    union_all,
    window,
)


def linear_quantiles(name: str, targets: Sequence[tuple[exp.Query, float]]) -> list[Cte]:
    """CTEs ending in ``name``: rows ``(key, value)``, the linear quantile of each target.

    Each target is a query of one column ``v`` and a level ``q``; its key is
    its index. The quantile is polars' ``quantile(q, interpolation="linear")``
    to the last bit: with ``pos = (n - 1) q`` over the sorted values, the
    values at ``floor(pos)`` and ``ceil(pos)`` (0-based), and
    ``(pos - floor(pos)) * (upper - lower) + lower`` between them (the same
    double operations in the same order). A target without values has no row.
    """
    branches = [
        sqlglot.select(
            named(integer(k), "key"), named(double_literal(q), "q"), named(double(column("v")), "v")
        ).from_(exp.Subquery(this=values, alias=exp.TableAlias(this=quoted("t"))))
        for k, (values, q) in enumerate(targets)
    ]
    key = [column("key")]
    ranked = sqlglot.select(
        column("key"),
        column("q"),
        column("v"),
        named(window(exp.RowNumber(), key, [column("v")]), "rn"),
        named(window(exp.Count(this=exp.Star()), key), "n"),
    ).from_(ref(f"{name}_values"))
    n_less_one = double(exp.Sub(this=column("n"), expression=integer(1)))
    positioned = sqlglot.select(
        column("key"),
        column("v"),
        column("rn"),
        named(exp.Mul(this=n_less_one, expression=column("q")), "pos"),
    ).from_(ref(f"{name}_ranked"))

    def at(rank: exp.Expr) -> exp.Expr:
        row = eq(column("rn"), exp.Add(this=rank, expression=integer(1)))
        return exp.Max(this=case(row, column("v"), double(exp.Null())))

    picked = (
        sqlglot.select(
            column("key"),
            named(exp.Max(this=column("pos")), "pos"),
            named(at(exp.Floor(this=column("pos"))), "lower"),
            named(at(exp.Ceil(this=column("pos"))), "upper"),
        )
        .from_(ref(f"{name}_positioned"))
        .group_by(column("key"))
    )
    lower, upper = column("lower"), column("upper")
    fraction = exp.paren(exp.Sub(this=column("pos"), expression=exp.Floor(this=column("pos"))))
    step = exp.Mul(this=fraction, expression=exp.paren(exp.Sub(this=upper, expression=lower)))
    quantile = case(eq(lower, upper), lower, exp.Add(this=step, expression=lower))
    final = sqlglot.select(column("key"), named(quantile, "value")).from_(ref(f"{name}_picked"))
    return [
        (cte(f"{name}_values"), union_all(branches)),
        (cte(f"{name}_ranked"), ranked),
        (cte(f"{name}_positioned"), positioned),
        (cte(f"{name}_picked"), picked),
        (cte(name), final),
    ]


def scalar(name: str, value: str) -> exp.Subquery:
    """``(SELECT "value" FROM "name")``: one value of a one-row CTE.

    A scalar subquery, not a cross join: PostgreSQL runs it once (an
    InitPlan), where a join of no equality would be a nested loop, which
    Proof's PostgreSQL sessions penalise (``enable_nestloop=off``).
    """
    return exp.Subquery(this=sqlglot.select(column(value)).from_(ref(name)))


def pivoted(name: str, columns: Mapping[str, tuple[int, bool]]) -> exp.Select:
    """One row from :func:`linear_quantiles`' ``name``: ``{column: (key, negate)}``.

    A key without a row gives NULL (no values: nothing to cap or bin).
    """
    out = []
    for alias, (key, negate) in columns.items():
        value = exp.Max(
            this=case(eq(column("key"), integer(key)), column("value"), double(exp.Null()))
        )
        out.append(named(exp.Neg(this=value) if negate else value, alias))
    return sqlglot.select(*out).from_(ref(name))
