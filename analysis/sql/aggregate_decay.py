"""A holdout's decay sums as SQL (:func:`analysis.timeline.decay_moments`).

From the unit-weeks of :func:`.aggregate_timeline.weekly_rows`: per unit the
five sums of :data:`analysis.stats.decay.DECAY_SUMS` over its fully observed
weeks, then per arm their joint moments (means by a window ``AVG``, then sums
of products of deviations, as :func:`.aggregate_units.arm_moments` does).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp

from analysis.config.experiments import Metric
from analysis.sql.aggregate_plan import Scope
from analysis.sql.aggregate_timeline import TimelineMetric, numbered, weekly_rows
from analysis.sql.expressions import (
    column,
    cte,
    double,
    eq,
    integer,
    named,
    ref,
    window,
    with_ctes,
)
from analysis.stats.decay import DECAY_SUMS

__all__ = ["decay_sums"]


def _times(*factors: exp.Expr) -> exp.Expr:
    product = factors[0]
    for f in factors[1:]:
        product = exp.Mul(this=product, expression=f)
    return product


def _week_sums(k: exp.Expr, i: int) -> exp.Expr:
    """Over weeks ``w = 0 .. k-1``: the sum of 1, of w and of w² (``i`` = 2, 3, 4)."""
    less = exp.Paren(this=exp.Sub(this=k.copy(), expression=integer(1)))
    if i == 2:
        return k.copy()
    if i == 3:
        return exp.Div(this=_times(k.copy(), less), expression=integer(2))
    twice = exp.Paren(this=exp.Sub(this=_times(integer(2), k.copy()), expression=integer(1)))
    return exp.Div(this=_times(less, k.copy(), twice), expression=integer(6))


def decay_sums(
    s: Scope, metrics: Sequence[Metric]
) -> tuple[exp.Query | None, list[TimelineMetric]]:
    """Rows per arm: ``variant``, then per metric the units ``n``, the means of the five
    decay sums (:data:`analysis.stats.decay.DECAY_SUMS`) and their co-moments' upper
    triangle (as :func:`.aggregate_units.arm_moments`' joint moments).

    A unit's sums run over its fully observed weeks; a mean or proportion metric's
    ``y`` is 1 in each of them, so its three ``y`` sums follow from the weeks ``k``:
    ``k``, ``k(k-1)/2`` and ``(k-1)k(2k-1)/6``.
    """
    ctes, layout = weekly_rows(s, metrics)
    if not layout:
        return None, []
    week = double(column("week"))
    per_unit: list[exp.Expr] = [column("unit_id")]
    for j, m in enumerate(layout):
        x, y = column(f"x{j}"), column(f"y{j}")
        parts = [x, _times(week, x)]
        if m.ratio:
            parts += [y, _times(week, y), _times(week, week.copy(), y)]
        per_unit += [named(exp.Sum(this=p), f"d{j}_{i}") for i, p in enumerate(parts)]
    cells = sqlglot.select(*per_unit).from_(ref("weekly_rows")).group_by(column("unit_id"))
    k = double(column("weeks", "u"))
    values: list[exp.Expr] = [column("variant", "u")]
    for j, m in enumerate(layout):
        for i in range(len(DECAY_SUMS)):
            if i < 2 or m.ratio:
                summed: exp.Expr = exp.Coalesce(
                    this=column(f"d{j}_{i}", "d"), expressions=[double(integer(0))]
                )
            else:
                summed = _week_sums(k, i)
            values.append(named(double(summed), f"v{j}_{i}"))
    units = (
        sqlglot.select(*values)
        .from_(ref("weekly_units", "u"))
        .join(
            ref("decay_cells", "d"),
            on=eq(column("unit_id", "u"), column("unit_id", "d")),
            join_type="left",
        )
        .where(exp.GT(this=column("weeks", "u"), expression=integer(0)))
    )
    cols = [f"v{j}_{i}" for j in range(len(layout)) for i in range(len(DECAY_SUMS))]
    centred = sqlglot.select(
        exp.Star(),
        *[named(window(exp.Avg(this=column(c)), [column("variant")]), f"m_{c}") for c in cols],
    ).from_(ref("decay_units"))

    def dev(c: str) -> exp.Expr:
        return exp.Paren(this=exp.Sub(this=column(c), expression=column(f"m_{c}")))

    out: list[exp.Expr] = [column("variant")]
    for j in range(len(layout)):
        vs = [f"v{j}_{i}" for i in range(len(DECAY_SUMS))]
        out.append(exp.Count(this=column(vs[0])))
        out += [exp.Avg(this=column(v)) for v in vs]
        out += [
            exp.Sum(this=exp.Mul(this=dev(vs[a]), expression=dev(vs[b])))
            for a in range(len(DECAY_SUMS))
            for b in range(a, len(DECAY_SUMS))
        ]
    query = sqlglot.select(*numbered(*out)).from_(ref("decay_centred")).group_by(column("variant"))
    everything = [
        *ctes,
        (cte("decay_cells"), cells),
        (cte("decay_units"), units),
        (cte("decay_centred"), centred),
    ]
    return with_ctes(query, everything), layout
