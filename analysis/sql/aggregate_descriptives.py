"""The report's pictures as SQL counts: the AI funnel and the two histograms.

One query (:func:`descriptives`) over the in-window events of the analysis
window (no pre-period) returns, as :mod:`analysis.descriptives` computes them:

* part 0 — the AI funnel: events per (AI arm, step) (:func:`~analysis.descriptives.funnel_counts`);
* part 1 — trust-survey answers per (arm, answer 1..7): a value counts for
  the answer it rounds to, half to even as polars' ``round`` does, written
  as comparisons with the halves (exact);
* part 2 — completed-task durations per (arm, bin): ``log10`` of the
  positive values, 30 bins between the pooled linear 0.5 % and 99.5 %
  quantiles, computed in the same query with polars' arithmetic to the last
  bit (:func:`~analysis.descriptives.time_on_task_histogram`);
* part 3 — one row with those two bounds (``lo``, ``hi``; NULL without values).

Rows ``(part, variant, k, n, lo, hi)``; ``k`` is the step's index in
:data:`~analysis.descriptives.FUNNEL_STEPS`, the answer, or the bin.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp

from analysis.descriptives import EVENTS, FUNNEL_STEPS, TIME_BINS, TRUST_VALUES
from analysis.sql.aggregate_plan import Scope, windowed_events
from analysis.sql.aggregate_quantiles import linear_quantiles, pivoted, scalar
from analysis.sql.expressions import (
    all_of,
    cast,
    clipped,
    column,
    cte,
    double,
    double_literal,
    eq,
    integer,
    log10,
    lt,
    named,
    quoted,
    ref,
    string,
    union_all,
    with_ctes,
)

TASK = "task_completed"
TRUST = "trust_survey"
#: The pooled quantiles that bound the time-on-task bins.
TIME_RANGE = (0.005, 0.995)


def _row(part: int, variant: exp.Expr, k: exp.Expr, n: exp.Expr) -> list[exp.Expr]:
    nothing = double(exp.Null())
    return [
        named(integer(part), "part"),
        named(variant, "variant"),
        named(cast(k, "bigint"), "k"),
        named(cast(n, "bigint"), "n"),
        named(nothing, "lo"),
        named(nothing.copy(), "hi"),
    ]


def _answer(value: exp.Expr) -> exp.Case:
    """The answer 1..7 a value rounds to (half to even), else NULL."""
    answer = exp.Case()
    for a in TRUST_VALUES:
        low, high = double_literal(a - 0.5), double_literal(a + 0.5)
        if a % 2 == 0:  # an even answer takes both halves
            inside = all_of(
                exp.GTE(this=value, expression=low), exp.LTE(this=value, expression=high)
            )
        else:
            inside = all_of(exp.GT(this=value, expression=low), lt(value, high))
        answer = answer.when(inside, integer(a))
    return answer


def descriptives(s: Scope, ai_variants: Sequence[str]) -> exp.Query:
    """The funnel, trust and time-on-task counts, and the time-on-task bounds (module docstring)."""
    count = exp.Count(this=exp.Star())
    variant = column("variant")
    values = (
        sqlglot.select(variant, column("event"), column("value"))
        .from_(ref("in_window"))
        .where(eq(column("pre"), integer(0)))
    )
    parts: list[exp.Select] = []
    if ai_variants:
        steps = [name for name, _ in FUNNEL_STEPS]
        step = exp.Case()
        for k, name in enumerate(steps):
            step = step.when(eq(column("event"), string(name)), integer(k))
        funnel = (
            sqlglot.select(*_row(0, variant, step, count))
            .from_(ref("shown_values"))
            .where(
                all_of(
                    column("event").isin(*[string(n) for n in steps]),
                    variant.isin(*[string(v) for v in ai_variants]),
                )
            )
            .group_by(variant, column("event"))
        )
        parts.append(funnel)
    answers = (
        sqlglot.select(variant, named(_answer(column("value")), "answer"))
        .from_(ref("shown_values"))
        .where(eq(column("event"), string(TRUST)))
    )
    trust = (
        sqlglot.select(*_row(1, variant, column("answer"), count))
        .from_(ref("trust_answers"))
        .where(exp.not_(exp.Is(this=column("answer"), expression=exp.Null())))
        .group_by(variant, column("answer"))
    )
    durations = (
        sqlglot.select(variant, named(log10(column("value")), "x"))
        .from_(ref("shown_values"))
        .where(
            all_of(
                eq(column("event"), string(TASK)),
                exp.GT(this=column("value"), expression=integer(0)),
            )
        )
    )
    targets: list[tuple[exp.Query, float]] = [
        (sqlglot.select(named(column("x"), "v")).from_(ref("task_durations")), q)
        for q in TIME_RANGE
    ]
    bounds = pivoted("time_q", {"lo": (0, False), "hi": (1, False)})
    # As polars: width = (hi - lo) / bins; bin = floor((x - lo) / width), clipped to the bins.
    lo, hi = scalar("time_bounds", "lo"), scalar("time_bounds", "hi")
    width = exp.paren(
        exp.Div(
            this=exp.paren(exp.Sub(this=hi, expression=lo)), expression=double(integer(TIME_BINS))
        )
    )
    offset = exp.Div(
        this=exp.paren(exp.Sub(this=column("x"), expression=lo.copy())), expression=width
    )
    bin_ = clipped(exp.Floor(this=offset), double(integer(0)), double(integer(TIME_BINS - 1)))
    binned = (
        sqlglot.select(variant, named(cast(bin_, "bigint"), "bin"))
        .from_(ref("task_durations"))
        .where(exp.GT(this=hi.copy(), expression=lo.copy()))
    )
    parts.append(trust)
    parts.append(
        sqlglot.select(*_row(2, variant, column("bin"), count))
        .from_(ref("task_bins"))
        .group_by(variant, column("bin"))
    )
    parts.append(
        sqlglot.select(
            integer(3),
            cast(exp.Null(), "varchar"),
            cast(exp.Null(), "bigint"),
            cast(exp.Null(), "bigint"),
            column("lo"),
            column("hi"),
        ).from_(ref("time_bounds"))
    )
    names = sorted({*EVENTS})
    ctes = [
        *windowed_events(s, names),
        (cte("shown_values"), values),
        (cte("trust_answers"), answers),
        (cte("task_durations"), durations),
        *linear_quantiles("time_q", targets),
        (cte("time_bounds"), bounds),
        (cte("task_bins"), binned),
    ]
    everything = exp.Subquery(this=union_all(parts), alias=exp.TableAlias(this=quoted("counts")))
    return with_ctes(sqlglot.select(exp.Star()).from_(everything), ctes)
