"""Quantile metrics (p95 AI latency) summarised inside the database: no event value leaves it.

The outer CI of a quantile (:mod:`analysis.stats.quantile`) needs, per arm,
N, four order statistics and integer sums over units
(:class:`~analysis.stats.quantile.QuantileSummary`). Each step's query
depends on the rows of the one before, so they run in turn, each returning
at most two rows per target (a metric in one arm, or in the pooled AI arms):

1. ``quantile_order``: N and the two order statistics at and after rank
   ``floor((N - 1) p) + 1``, ranked with ``ROW_NUMBER()``: those around q̂
   (:func:`~analysis.stats.quantile.linear_position` picks them);
2. ``quantile_share``: per unit, the events at or below q̂ and the events,
   summed over units as integers (:class:`~analysis.stats.quantile.ShareSums`);
3. ``quantile_bounds``: the order statistics at the outer ranks
   (:func:`~analysis.stats.quantile.outer_ranks`).

The arithmetic between the steps is Python's, the same functions the
in-memory engine calls, so both engines give the same summary to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl
import sqlglot
from sqlglot import exp

from analysis.config.experiments import POOLED, Experiment, Metric
from analysis.sql.aggregate_plan import Cte, Scope, windowed_events
from analysis.sql.expressions import (
    all_of,
    cast,
    column,
    cte,
    double,
    double_literal,
    eq,
    flag,
    integer,
    named,
    not_null,
    ref,
    string,
    union_all,
    window,
    with_ctes,
)
from analysis.stats.quantile import (
    QuantileSummary,
    ShareSums,
    interpolate,
    linear_position,
    outer_ranks,
)

__all__ = [
    "QUANTILE_QUERIES",
    "Target",
    "first_query",
    "quantile_summaries",
    "quantile_values",
    "targets",
]

#: The queries, in the order they run.
QUANTILE_QUERIES = ("quantile_order", "quantile_share", "quantile_bounds")

Run = Callable[[str, exp.Query], pl.DataFrame]
"""Runs a named query and returns its rows (columns read by position)."""


@dataclass(frozen=True)
class Target:
    """One summary to compute: a quantile metric over the events of ``variants``, as ``arm``."""

    metric: Metric
    arm: str
    variants: tuple[str, ...]


def targets(experiment: Experiment, metrics: Sequence[Metric]) -> list[Target]:
    """Every arm of every quantile metric, and the pooled AI arms where the experiment pools."""
    pooled = tuple(experiment.pooled_ai_variants())
    found = []
    for m in metrics:
        if m.kind != "quantile":
            continue
        found += [Target(m, arm, (arm,)) for arm in experiment.variants]
        if pooled and not m.ai_only:
            found.append(Target(m, POOLED, pooled))
    return found


def quantile_values(s: Scope, found: Sequence[Target]) -> list[Cte]:
    """CTEs ending in ``quantile_values``: rows ``(key, unit_id, value)``, each target's
    in-window values, keyed by its index in ``found``."""
    events = sorted({t.metric.value.event for t in found if t.metric.value is not None})
    branches = []
    for k, t in enumerate(found):
        assert t.metric.value is not None
        branches.append(
            sqlglot.select(
                named(integer(k), "key"), column("unit_id"), named(double(column("value")), "value")
            )
            .from_(ref("in_window"))
            .where(
                all_of(
                    eq(column("pre"), integer(0)),
                    not_null(column("value")),
                    eq(column("event"), string(t.metric.value.event)),
                    column("variant").isin(*[string(v) for v in t.variants]),
                )
            )
        )
    return [*windowed_events(s, events), (cte("quantile_values"), union_all(branches))]


def first_query(s: Scope, experiment: Experiment, metrics: Sequence[Metric]) -> exp.Query | None:
    """The first query (``quantile_order``), or None without a quantile metric; the
    others are written from the rows of the one before."""
    found = targets(experiment, metrics)
    return _around(quantile_values(s, found), found) if found else None


def _ranked(values: Sequence[Cte], keys: Sequence[int]) -> list[Cte]:
    ranked = (
        sqlglot.select(
            column("key"),
            column("value"),
            named(window(exp.RowNumber(), [column("key")], [column("value")]), "rn"),
            named(window(exp.Count(this=exp.Star()), [column("key")]), "n"),
        )
        .from_(ref("quantile_values"))
        .where(column("key").isin(*[integer(k) for k in keys]))
    )
    return [*values, (cte("quantile_ranked"), ranked)]


def _around(values: Sequence[Cte], found: Sequence[Target]) -> exp.Query:
    """Rows ``(key, n, rank, value)``: per key, the values at ranks ``floor((n - 1) p) + 1``
    and the next (none past ``n``), which hold the two around q̂ whatever the rounding."""
    level = exp.Case()
    for k, t in enumerate(found):
        level = level.when(eq(column("key"), integer(k)), double_literal(_level(t)))
    below = exp.Floor(
        this=exp.Mul(
            this=double(exp.Sub(this=column("n"), expression=integer(1))), expression=level
        )
    )
    rank = exp.Sub(this=column("rn"), expression=below)
    query = (
        sqlglot.select(column("key"), column("n"), column("rn"), column("value"))
        .from_(ref("quantile_ranked"))
        .where(rank.between(integer(1), integer(2)))
    )
    return with_ctes(query, _ranked(values, range(len(found))))


def _order(values: Sequence[Cte], ranks: Mapping[int, set[int]]) -> exp.Query:
    """Rows ``(key, rank, value)``: the values at the 1-based ``ranks`` of each key."""
    wanted = [
        all_of(eq(column("key"), integer(k)), column("rn").isin(*[integer(r) for r in sorted(rs)]))
        for k, rs in ranks.items()
    ]
    query = (
        sqlglot.select(column("key"), column("rn"), column("value"))
        .from_(ref("quantile_ranked"))
        .where(exp.or_(*wanted))
    )
    return with_ctes(query, _ranked(values, list(ranks)))


def _share(values: Sequence[Cte], estimates: Mapping[int, float]) -> exp.Query:
    """Rows ``(key, n, x, y, xx, yy, xy)``: integer sums over units of events <= q̂ and events."""
    estimate = exp.Case()
    for k, q in estimates.items():
        estimate = estimate.when(eq(column("key"), integer(k)), double_literal(q))
    per_unit = (
        sqlglot.select(
            column("key"),
            named(
                cast(
                    exp.Sum(this=flag(exp.LTE(this=column("value"), expression=estimate))), "BIGINT"
                ),
                "x",
            ),
            named(cast(exp.Count(this=exp.Star()), "BIGINT"), "y"),
        )
        .from_(ref("quantile_values"))
        .where(column("key").isin(*[integer(k) for k in estimates]))
        .group_by(column("key"), column("unit_id"))
    )

    def total(value: exp.Expr, alias: str) -> exp.Expr:
        return named(cast(exp.Sum(this=value), "BIGINT"), alias)

    x, y = column("x"), column("y")
    query = (
        sqlglot.select(
            column("key"),
            named(cast(exp.Count(this=exp.Star()), "BIGINT"), "n"),
            total(x, "x"),
            total(y, "y"),
            total(exp.Mul(this=x, expression=x), "xx"),
            total(exp.Mul(this=y, expression=y), "yy"),
            total(exp.Mul(this=x, expression=y), "xy"),
        )
        .from_(ref("quantile_per_unit"))
        .group_by(column("key"))
    )
    return with_ctes(query, [*values, (cte("quantile_per_unit"), per_unit)])


def _by_rank(frame: pl.DataFrame) -> dict[tuple[int, int], float]:
    return {(int(k), int(r)): float(v) for k, r, v in frame.iter_rows()}


def quantile_summaries(
    s: Scope,
    experiment: Experiment,
    metrics: Sequence[Metric],
    run: Run,
) -> dict[str, dict[str, QuantileSummary]]:
    """``{metric: {arm: QuantileSummary}}``, by the three queries of the module docstring.

    Each query computes the values in CTEs (over the kept in-window events, where
    the connection keeps them). An arm without values has no summary.
    """
    found = targets(experiment, metrics)
    if not found:
        return {}
    ctes = quantile_values(s, found)
    alpha = experiment.alpha
    counts: dict[int, int] = {}
    around: dict[tuple[int, int], float] = {}
    for k, n, rank, value in run("quantile_order", _around(ctes, found)).iter_rows():
        counts[int(k)] = int(n)
        around[int(k), int(rank)] = float(value)
    if not counts:
        return {}
    positions = {k: linear_position(n, _level(found[k])) for k, n in counts.items()}
    estimates = {
        k: interpolate(around[k, b + 1], around[k, a + 1], w) for k, (b, a, w) in positions.items()
    }
    share = {
        int(row[0]): ShareSums(*(int(v) for v in row[1:]))
        for row in run("quantile_share", _share(ctes, estimates)).iter_rows()
    }
    ranks = {k: outer_ranks(counts[k], _level(found[k]), share[k], alpha) for k in counts}
    wanted = {k: set(r) for k, r in ranks.items() if r is not None}
    bounds = _by_rank(run("quantile_bounds", _order(ctes, wanted))) if wanted else {}
    result: dict[str, dict[str, QuantileSummary]] = {}
    for k, n in counts.items():
        t, r = found[k], ranks[k]
        lower, upper = (
            (float("nan"), float("nan")) if r is None else (bounds[k, r[0]], bounds[k, r[1]])
        )
        summary = QuantileSummary(_level(t), alpha, n, estimates[k], share[k], lower, upper)
        result.setdefault(t.metric.name, {})[t.arm] = summary
    return result


def _level(t: Target) -> float:
    assert t.metric.quantile is not None
    return t.metric.quantile
