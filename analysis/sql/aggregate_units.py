"""Per-unit aggregates, the unit table, winsorising and the moments, as SQL.

Continues :mod:`analysis.sql.aggregate_plan` from ``in_window``:

4. :func:`per_unit_aggregates` — per unit, every aggregate the metrics need,
   in the window and in the pre-period (the merged partials of
   :mod:`analysis.partials`);
5. :func:`unit_table` — the metric columns of
   :func:`analysis.partials.unit_table_from_partials`, winsorised as
   :func:`analysis.engines.polars_measure.winsorize_table` does when the
   experiment asks (caps at pooled linear quantiles, computed in the same
   query: per event for ratio numerators that add up values, per unit for
   mean metrics);
6. :func:`arm_moments` — per group, the centred moments in two passes: a
   window ``AVG`` per group, then sums of products of deviations from it —
   as numerically sound as the polars path, and portable (no
   ``VAR_POP``/``COVAR_POP`` semantics to match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from analysis.config.experiments import EventAggregate, Metric
from analysis.metrics import cuped_columns, event_capped
from analysis.sql.aggregate_plan import Cte, Scope, kept, windowed_events
from analysis.sql.aggregate_quantiles import linear_quantiles, pivoted, scalar
from analysis.sql.expressions import (
    all_of,
    case,
    clipped,
    column,
    cte,
    double,
    eq,
    finite,
    flag,
    integer,
    named,
    not_null,
    number,
    quoted,
    ref,
    string,
    text,
    union_all,
    window,
    with_ctes,
)

#: The segment value of units whose dimension is missing (as in metrics.segment_moments).
MISSING = "(missing)"


@dataclass(frozen=True)
class MetricColumns:
    """Internal per-unit column names of one metric (never the metric's own name)."""

    metric: Metric
    x: str
    y: str | None
    x_pre: str
    y_pre: str | None


@dataclass(frozen=True)
class MomentsLayout:
    """How to read the moments query's rows: its metrics, CUPED columns and dimensions."""

    metrics: list[MetricColumns]
    joint: list[tuple[Metric, list[str]]]
    dimensions: list[str]


def agg_key(agg: EventAggregate) -> str:
    """One key per distinct aggregate (the same event, function and value filter)."""
    return f"{agg.event}|{agg.agg}|{agg.value_equals!r}|{agg.label_equals!r}"


def metric_aggregates(metrics: Sequence[Metric]) -> dict[str, EventAggregate]:
    """Every aggregate of the non-quantile metrics, by :func:`agg_key`."""
    found: dict[str, EventAggregate] = {}
    for metric in metrics:
        if metric.kind == "quantile":
            continue
        for part in (metric.value, metric.numerator, metric.denominator):
            if part is not None:
                found[agg_key(part)] = part
    return found


def event_mask(agg: EventAggregate) -> exp.Expr:
    """The rows an aggregate takes in (its event, ``value_equals`` and ``label_equals``)."""
    conditions = [eq(column("event"), string(agg.event))]
    if agg.value_equals is not None:
        conditions.append(eq(column("value"), number(agg.value_equals)))
    if agg.label_equals is not None:
        conditions.append(eq(column("label"), string(agg.label_equals)))
    return all_of(*conditions)


def aggregate_value(agg: EventAggregate, mask: exp.Expr, value: exp.Expr) -> exp.Expr:
    """One per-unit aggregate of the rows in ``mask`` (as metrics._aggregate_expr computes it)."""
    if agg.agg == "count":
        return exp.Sum(this=flag(mask))
    values = case(mask, value, double(exp.Null()))
    return exp.Sum(this=values) if agg.agg == "sum" else exp.Avg(this=values)


def _periods(s: Scope) -> dict[str, int]:
    """Column prefix per period: ``a`` the window, ``p`` the pre-period (``pre`` value)."""
    return {"a": 0} if s.window.pre_days == 0 else {"a": 0, "p": 1}


def _capped(metrics: Sequence[Metric], s: Scope) -> dict[str, EventAggregate]:
    """Numerators capped per event (:func:`analysis.metrics.event_capped`) when winsorising."""
    if s.experiment.statistics.winsorize_percentile is None:
        return {}
    return {agg_key(m.numerator): m.numerator for m in event_capped(metrics) if m.numerator}


def _caps(name: str, targets: Sequence[tuple[str, exp.Query]], percentile: float) -> list[Cte]:
    """A one-row CTE ``name`` with ``lo_<t>``/``hi_<t>`` per target: pooled winsorising caps.

    As :func:`analysis.polars_exprs.winsorize_caps_exprs`: over the finite
    values, ``hi = Q_p(v)`` and ``lo = -Q_p(-v)``.
    """
    values: list[tuple[exp.Query, float]] = []
    columns: dict[str, tuple[int, bool]] = {}
    for target, query in targets:
        for sign, prefix in ((1, "hi"), (-1, "lo")):
            v = column("v") if sign == 1 else exp.Neg(this=column("v"))
            inner = exp.Subquery(this=query, alias=exp.TableAlias(this=quoted("s")))
            signed = sqlglot.select(named(v, "v")).from_(inner).where(finite(column("v")))
            columns[f"{prefix}_{target}"] = (len(values), sign == -1)
            values.append((signed, percentile))
    return [*linear_quantiles(f"{name}_q", values), (cte(name), pivoted(f"{name}_q", columns))]


def per_unit_aggregates(s: Scope, metrics: Sequence[Metric]) -> list[Cte]:
    """CTEs ending in ``per_unit``: per unit ``a<i>`` (window) and ``p<i>`` (pre-period).

    With winsorising, ``ca<i>``/``cp<i>`` hold the capped numerators: every
    event value clipped to the caps of its period (``event_caps``), then
    summed or averaged (:func:`analysis.metrics.capped_numerators`).
    """
    aggregates, capped = metric_aggregates(metrics), _capped(metrics, s)
    index = {key: i for i, key in enumerate(aggregates)}
    periods = _periods(s)
    columns: list[exp.Expr] = [column("unit_id")]
    for prefix, period in periods.items():
        in_period = eq(column("pre"), integer(period))
        for key, i in index.items():
            agg = aggregates[key]
            mask = all_of(event_mask(agg), in_period)
            columns.append(named(aggregate_value(agg, mask, column("value")), f"{prefix}{i}"))
            if key in capped:
                low, high = (scalar("event_caps", f"{b}_{prefix}{i}") for b in ("lo", "hi"))
                value = clipped(column("value"), low, high)
                columns.append(named(aggregate_value(agg, mask, value), f"c{prefix}{i}"))
    query = sqlglot.select(*columns).from_(ref("in_window")).group_by(column("unit_id"))
    percentile = s.experiment.statistics.winsorize_percentile
    if not capped or percentile is None:
        return [(cte("per_unit"), query)]
    targets = []
    for prefix, period in periods.items():
        for key in capped:
            i = index[key]
            mask = all_of(event_mask(aggregates[key]), eq(column("pre"), integer(period)))
            values = sqlglot.select(named(column("value"), "v")).from_(ref("in_window")).where(mask)
            targets.append((f"{prefix}{i}", values))
    return [*_caps("event_caps", targets, percentile), (cte("per_unit"), query)]


def metric_columns(metrics: Sequence[Metric]) -> list[MetricColumns]:
    """The internal per-unit columns of each (non-quantile) metric, in order."""
    layout = []
    for j, m in enumerate(m for m in metrics if m.kind != "quantile"):
        y, y_pre = (f"y{j}", f"yp{j}") if m.kind == "ratio" else (None, None)
        layout.append(MetricColumns(m, f"x{j}", y, f"xp{j}", y_pre))
    return layout


def unit_rows(s: Scope, metrics: Sequence[Metric], name: str = "unit_rows") -> list[Cte]:
    """CTEs ending in ``name``: per kept unit its variant, dimensions and metric
    columns, before winsorising (the columns of :func:`metric_columns`).

    Ratio metrics get ``x<j>``/``y<j>``, mean and proportion metrics ``x<j>``;
    ``xp<j>``/``yp<j>`` hold the pre-period.
    """
    aggregates, capped = metric_aggregates(metrics), _capped(metrics, s)
    index = {key: i for i, key in enumerate(aggregates)}
    periods = _periods(s)

    def filled(agg: EventAggregate, prefix: str, numerator: bool = False) -> exp.Expr:
        key = agg_key(agg)
        name = f"c{prefix}{index[key]}" if numerator and key in capped else f"{prefix}{index[key]}"
        if agg.agg == "mean":
            return double(column(name, "p"))
        return double(exp.Coalesce(this=column(name, "p"), expressions=[integer(0)]))

    out: list[exp.Expr] = [
        named(column("unit_id", "u"), "unit_id"),
        named(column("variant", "u"), "variant"),
        *[named(column(d, "u"), d) for d in s.dims],
    ]
    for cols in metric_columns(metrics):
        m = cols.metric
        for prefix, x_name, y_name in (("a", cols.x, cols.y), ("p", cols.x_pre, cols.y_pre)):
            if prefix not in periods:
                continue
            if m.numerator is not None and m.denominator is not None and y_name is not None:
                out.append(named(filled(m.numerator, prefix, numerator=True), x_name))
                out.append(named(filled(m.denominator, prefix), y_name))
                continue
            assert m.value is not None
            v = filled(m.value, prefix)
            if m.kind == "proportion":
                v = (
                    exp.Case()
                    .when(exp.Is(this=v, expression=exp.Null()), double(exp.Null()))
                    .when(exp.GT(this=v, expression=integer(0)), double(integer(1)))
                    .else_(double(integer(0)))
                )
            out.append(named(v, x_name))
    raw = (
        sqlglot.select(*out)
        .from_(ref("units", "u"))
        .join(
            ref("per_unit", "p"),
            on=eq(column("unit_id", "u"), column("unit_id", "p")),
            join_type="left",
        )
        .where(kept(column("crossover", "u")))
    )
    names = sorted({a.event for a in aggregates.values()})
    return [*windowed_events(s, names), *per_unit_aggregates(s, metrics), (cte(name), raw)]


def unit_table(s: Scope, metrics: Sequence[Metric]) -> tuple[list[Cte], list[MetricColumns]]:
    """CTEs ending in ``unit_metrics``: :func:`unit_rows` (or the table ``s.units``
    that holds them), winsorised when the experiment asks: mean metrics'
    columns clipped to pooled per-unit caps (``unit_caps``). Ratio numerators
    are capped per event inside :func:`unit_rows`.
    """
    layout = metric_columns(metrics)
    periods = _periods(s)
    dims = s.dims
    percentile = s.experiment.statistics.winsorize_percentile
    means = [c for c in layout if c.metric.kind == "mean"]
    winsorised = percentile is not None and bool(means)
    raw_name = "unit_metrics_raw" if winsorised else "unit_metrics"
    if s.units is None:
        raw = unit_rows(s, metrics, raw_name)
    else:
        raw = [(cte(raw_name), sqlglot.select(exp.Star()).from_(s.units))]
    if percentile is None or not winsorised:
        return raw, layout
    names = [c.x for c in means] + ([c.x_pre for c in means] if "p" in periods else [])
    targets = [
        (n, sqlglot.select(named(column(n), "v")).from_(ref("unit_metrics_raw"))) for n in names
    ]
    capped_units = sqlglot.select(
        column("unit_id"),
        column("variant"),
        *[column(d) for d in dims],
        *[
            named(
                clipped(column(c), scalar("unit_caps", f"lo_{c}"), scalar("unit_caps", f"hi_{c}")),
                c,
            )
            if c in names
            else column(c)
            for c in _metric_column_names(layout, periods)
        ],
    ).from_(ref("unit_metrics_raw"))
    return [
        *raw,
        *_caps("unit_caps", targets, percentile),
        (cte("unit_metrics"), capped_units),
    ], layout


def _metric_column_names(layout: Sequence[MetricColumns], periods: dict[str, int]) -> list[str]:
    names: list[str] = []
    for cols in layout:
        names += [n for n in (cols.x, cols.y) if n is not None]
        if "p" in periods:
            names += [n for n in (cols.x_pre, cols.y_pre) if n is not None]
    return names


def arm_moments(s: Scope, metrics: Sequence[Metric]) -> tuple[exp.Query, MomentsLayout]:
    """Per (group, segment, variant) the moments of every metric, and CUPED's joint moments.

    Groups: overall (``g = 0``) and per dimension (``g = i + 1``, segment
    ``"(missing)"`` for a missing value); a unit enters a metric with a
    complete pair only. Columns per row: ``g, seg, variant``, then per metric
    ``n, mean_x, m2_x`` (and ``mean_y, m2_y, c_xy`` for ratios), then per
    CUPED metric ``n``, the means and the upper triangle of co-moments.
    """
    ctes, metric_cols = unit_table(s, metrics)
    joint: list[tuple[Metric, list[str]]] = []
    if s.window.pre_days > 0:
        for cols in metric_cols:
            if cuped_columns(cols.metric) is None:
                continue
            names_k = [cols.x, cols.y, cols.x_pre, cols.y_pre] if cols.y else [cols.x, cols.x_pre]
            joint.append((cols.metric, [n for n in names_k if n is not None]))

    def complete_cols(overall: bool) -> list[exp.Expr]:
        out: list[exp.Expr] = []
        for j, cols in enumerate(metric_cols):
            if cols.y is None:
                out.append(named(column(cols.x), f"cx{j}"))
                continue
            both = all_of(not_null(column(cols.x)), not_null(column(cols.y)))
            out.append(named(case(both, column(cols.x), double(exp.Null())), f"cx{j}"))
            out.append(named(case(both, column(cols.y), double(exp.Null())), f"cy{j}"))
        for k, (_, names_k) in enumerate(joint):
            every = all_of(*[not_null(column(n)) for n in names_k])
            for i, n in enumerate(names_k):
                v = case(every, column(n), double(exp.Null())) if overall else double(exp.Null())
                out.append(named(v, f"j{k}_{i}"))
        return out

    branches = [
        sqlglot.select(
            named(integer(0), "g"),
            named(text(string("")), "seg"),
            named(column("variant"), "variant"),
            *complete_cols(overall=True),
        ).from_(ref("unit_metrics"))
    ]
    for i, d in enumerate(s.dims):
        branches.append(
            sqlglot.select(
                integer(i + 1),
                exp.Coalesce(this=column(d), expressions=[text(string(MISSING))]),
                column("variant"),
                *complete_cols(overall=False),
            ).from_(ref("unit_metrics"))
        )
    groups = [column("g"), column("seg"), column("variant")]
    value_cols = [f"cx{j}" for j in range(len(metric_cols))]
    value_cols += [f"cy{j}" for j, c in enumerate(metric_cols) if c.y is not None]
    value_cols += [f"j{k}_{i}" for k, (_, n) in enumerate(joint) for i in range(len(n))]
    centred = sqlglot.select(
        exp.Star(),
        *[named(window(exp.Avg(this=column(c)), groups), f"m_{c}") for c in value_cols],
    ).from_(ref("grouped"))

    def dev(c: str) -> exp.Expr:
        return exp.Paren(this=exp.Sub(this=column(c), expression=column(f"m_{c}")))

    def comoment(a: str, b: str) -> exp.Expr:
        return exp.Sum(this=exp.Mul(this=dev(a), expression=dev(b)))

    out: list[exp.Expr] = [*groups]
    for j, cols in enumerate(metric_cols):
        x = f"cx{j}"
        out += [exp.Count(this=column(x)), exp.Avg(this=column(x)), comoment(x, x)]
        if cols.y is not None:
            y = f"cy{j}"
            out += [exp.Avg(this=column(y)), comoment(y, y), comoment(x, y)]
    for k, (_, names_k) in enumerate(joint):
        vs = [f"j{k}_{i}" for i in range(len(names_k))]
        out.append(exp.Count(this=column(vs[0])))
        out += [exp.Avg(this=column(v)) for v in vs]
        out += [comoment(vs[a], vs[b]) for a in range(len(vs)) for b in range(a, len(vs))]
    query = (
        sqlglot.select(*[named(e, f"c{i}") for i, e in enumerate(out)])
        .from_(ref("centred"))
        .group_by(*groups)
    )
    everything = [
        *ctes,
        (cte("grouped"), union_all(branches)),
        (cte("centred"), centred),
    ]
    return with_ctes(query, everything), MomentsLayout(metric_cols, joint, list(s.dimensions))
