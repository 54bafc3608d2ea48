"""Warehouse push-down: an experiment's aggregation run inside the database as generated SQL.

For DuckDB and SQL sources the polars path (:mod:`analysis.metrics`) reads every
event of the experiment's units into memory. This module instead builds — with
sqlglot's expression builders, never by pasting text — the queries that
reproduce that path inside the database, and reads back only

* the cleaning counts (units per variant, crossovers, event rows, duplicates),
* per (dimension, segment, variant) the :class:`~analysis.aggregates.Moments` of
  every non-quantile metric, and per variant the
  :class:`~analysis.joint.JointMoments` CUPED needs,
* for quantile metrics, the in-window event values and an integer unit code.

The generated SQL follows :mod:`analysis.metrics` step by step:

1. assignments of the experiment before the end of the analysis date; per unit
   the first row by ``assigned_at`` (its variant, time and dimensions), and
   whether the unit was seen in more than one variant (a crossover);
2. events of the experiment's units, of the events the metrics read, before the
   end of the analysis date; one row per ``event_id`` (the first by ``ts``, then
   the other columns: identical copies give identical aggregates);
3. events joined to the non-crossed-over units and limited to
   ``[assigned_at - pre_window_days, min(end, assigned_at + window_days))``;
4. per unit, every aggregate the metrics need, in-window and pre-period; per
   unit, the metric columns of :func:`analysis.metrics.unit_table`;
5. per group, the centred moments in two passes: a window ``AVG`` per group,
   then sums of products of deviations from it — as numerically sound as the
   polars path, and portable (no ``VAR_POP``/``COVAR_POP`` semantics to match).

Every identifier (tables, the source's mapped column names, CTEs, aliases) is
quoted; the experiment id, event names, the analysis end and value filters are
literals built by sqlglot. :func:`compile_queries` returns the SQL text for any
sqlglot dialect; :func:`measure_in_database` runs it on DuckDB or on any database
polars reads by URI (connectorx), or through a caller's ``execute`` function.
"""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import sqlglot
from sqlglot import exp

from analysis import schema
from analysis.aggregates import Moments
from analysis.comparisons import ArmData
from analysis.config import DuckDBSource, EventAggregate, Experiment, Metric, SqlSource
from analysis.joint import JointMoments
from analysis.metrics import Cleaning, Window, cuped_columns
from analysis.sources import (
    SourceError,
    check_reachable,
    conform,
    connect_duckdb,
    require_columns,
    sql_uri,
    without_nested_loops,
)
from analysis.sources import redact as redact_uri
from analysis.stats.quantile import QuantileSample

#: The segment value of units whose dimension is missing (as in metrics.segment_moments).
MISSING = "(missing)"

#: sqlglot dialect per URI scheme (the part before ``://``, without a ``+driver``).
DIALECTS: Mapping[str, str] = {
    "postgres": "postgres", "postgresql": "postgres", "redshift": "redshift",
    "mysql": "mysql", "mariadb": "mysql", "mssql": "tsql", "oracle": "oracle",
    "sqlite": "sqlite", "clickhouse": "clickhouse", "bigquery": "bigquery",
    "trino": "trino", "presto": "presto", "snowflake": "snowflake",
    "databricks": "databricks", "spark": "spark", "duckdb": "duckdb",
}  # fmt: skip

#: URI schemes polars reads through ADBC rather than connectorx.
_ADBC_SCHEMES = frozenset({"snowflake"})

Execute = Callable[[str], pl.DataFrame]
"""Runs one query and returns its rows (columns are read by position)."""

SegmentMoments = Mapping[str, Mapping[str, Mapping[str, Mapping[str, Moments]]]]


@dataclass(frozen=True)
class WarehouseMeasurement:
    """What the statistics need, computed inside the database.

    Attributes:
        cleaning: the counts of :func:`analysis.metrics.cleaning_counts`.
        data: ``moments``, ``joint`` and quantile ``samples`` keyed
            ``{metric: {variant: ...}}``, as :class:`~analysis.comparisons.ArmData`.
        segments: ``{dimension: {metric: {segment: {variant: Moments}}}}``.
        dialect: the sqlglot dialect the queries were generated for.
        queries: the SQL text of each query that ran.
        rows: rows each query returned (what crossed the wire).
    """

    cleaning: Cleaning
    data: ArmData
    segments: SegmentMoments
    dialect: str
    queries: Mapping[str, str] = field(default_factory=dict)
    rows: Mapping[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- builders


def _id(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _str(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _int(value: int) -> exp.Expr:
    return exp.Literal.number(value)


def _num(value: float) -> exp.Expr:
    if not math.isfinite(value):
        raise ValueError(f"value_equals must be a finite number, got {value!r}")
    return exp.convert(float(value))


def _null() -> exp.Null:
    return exp.Null()


def _cast(expression: exp.Expr, to: str) -> exp.Cast:
    # ``to`` is one of a few type names written in this module, never input.
    return exp.cast(expression, exp.DataType.build(to))


def _double(expression: exp.Expr) -> exp.Cast:
    return _cast(expression, "double")


def _text(expression: exp.Expr) -> exp.Cast:
    return _cast(expression, "varchar")


def _as(expression: exp.Expr, alias: str) -> exp.Expr:
    return exp.alias_(expression, _id(alias))


def _eq(a: exp.Expr, b: exp.Expr) -> exp.EQ:
    return exp.EQ(this=a, expression=b)


def _lt(a: exp.Expr, b: exp.Expr) -> exp.LT:
    return exp.LT(this=a, expression=b)


def _not_null(expression: exp.Expr) -> exp.Expr:
    return exp.not_(exp.Is(this=expression, expression=_null()))


def _and(*conditions: exp.Expr) -> exp.Expr:
    return exp.and_(*conditions)


def _first(row_number: exp.Expr) -> exp.Expr:
    """``row_number < 2``, i.e. the first row.

    Written as an inequality on purpose: a planner without statistics on a
    computed column (PostgreSQL) takes ``= 1`` to keep 0.5% of the rows and
    picks nested loops that rescan the events; ``< 2`` is costed at a third.
    """
    return _lt(row_number, _int(2))


def _kept(crossover: exp.Expr) -> exp.Expr:
    """``crossover < 1``: a unit that did not cross over (an inequality, see :func:`_first`)."""
    return _lt(crossover, _int(1))


def _case(condition: exp.Expr, then: exp.Expr, otherwise: exp.Expr) -> exp.Case:
    return exp.Case().when(condition, then).else_(otherwise)


def _flag(condition: exp.Expr) -> exp.Case:
    """1 where the condition holds, else 0 (integers are portable, booleans are not)."""
    return _case(condition, _int(1), _int(0))


def _hours(days: int) -> exp.Interval:
    # Hours, not days: day arithmetic on zoned timestamps follows the session's
    # time zone (23- or 25-hour days); the polars path adds exact 24-hour days.
    return exp.Interval(this=_str(str(days * 24)), unit=exp.var("HOUR"))


def _timestamp(moment: dt.datetime) -> exp.Cast:
    text = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    return _cast(_str(text), "timestamptz")


def _table(name: str) -> exp.Table:
    """``catalog.schema.table`` (each part optional but the last), every part quoted."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(
            f"table name {name!r} is not 'table', 'schema.table' or 'catalog.schema.table'"
        )
    table = exp.Table(this=_id(parts[-1]))
    if len(parts) >= 2:
        table.set("db", _id(parts[-2]))
    if len(parts) == 3:
        table.set("catalog", _id(parts[0]))
    return table


def _aliased(table: exp.Table, alias: str) -> exp.Table:
    table = table.copy()
    table.set("alias", exp.TableAlias(this=_id(alias)))
    return table


def _ref(name: str, alias: str | None = None) -> exp.Table:
    """A CTE by name, optionally aliased."""
    table = exp.Table(this=_id(name))
    return table if alias is None else _aliased(table, alias)


def _window(
    function: exp.Expr,
    partition: Sequence[exp.Expr],
    order: Sequence[exp.Expr] = (),
) -> exp.Window:
    window = exp.Window(this=function, partition_by=list(partition))
    if order:
        window.set("order", exp.Order(expressions=[exp.Ordered(this=o) for o in order]))
    return window


def _with(query: exp.Select, ctes: Sequence[tuple[str, exp.Query]]) -> exp.Select:
    for name, body in ctes:
        query = query.with_(_id(name), as_=body, copy=False)
    return query


def _union_all(queries: Sequence[exp.Select]) -> exp.Query:
    result: exp.Query = queries[0]
    for query in queries[1:]:
        result = exp.union(result, query, distinct=False)
    return result


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Columns:
    """The source's name of each contract column (``columns:`` of the source config)."""

    mapping: Mapping[str, str]

    def __call__(self, contract_name: str) -> str:
        return self.mapping.get(contract_name, contract_name)


@dataclass(frozen=True)
class _MetricCols:
    """Internal per-unit column names of one metric (never the metric's own name)."""

    metric: Metric
    x: str
    y: str | None
    x_pre: str
    y_pre: str | None


@dataclass(frozen=True)
class _Plan:
    """The query trees and how to read their rows back."""

    queries: dict[str, exp.Query]
    moment_metrics: list[_MetricCols]
    joint_metrics: list[tuple[Metric, list[str]]]
    dimensions: list[str]
    quantile_events: list[str]


def _dimension_columns(columns: Mapping[str, str]) -> dict[str, str]:
    """The mapped columns that are not the contract's (segment dimensions)."""
    contract = {*schema.ASSIGNMENTS, *schema.EVENTS}
    return {k: v for k, v in columns.items() if k not in contract}


def _agg_key(agg: EventAggregate) -> str:
    """One key per distinct aggregate (the same event, function and value filter)."""
    return f"{agg.event}|{agg.agg}|{agg.value_equals!r}"


def _aggregates(metrics: Sequence[Metric]) -> dict[str, EventAggregate]:
    found: dict[str, EventAggregate] = {}
    for metric in metrics:
        if metric.kind == "quantile":
            continue
        for part in (metric.value, metric.numerator, metric.denominator):
            if part is not None:
                found[_agg_key(part)] = part
    return found


def _plan(
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    tables: Mapping[str, str],
    columns: Mapping[str, str],
    dimensions: Sequence[str],
    has_value: bool,
    bases: Mapping[str, exp.Query] | None = None,
    unique_events: bool = False,
) -> _Plan:
    window = Window(as_of, experiment.window_days, experiment.pre_window_days)
    end = _timestamp(window.end)
    experiment_id = _str(experiment.id)
    base_ctes: list[tuple[str, exp.Query]] = []
    if bases is None:
        src = _Columns(columns)
        assignments = _table(tables["assignments"])
        events = _table(tables["events"])
    else:
        # Relations with the contract's column names: only dimensions keep a mapping.
        src = _Columns(_dimension_columns(columns))
        base_ctes = [(f"base_{t}", bases[t]) for t in ("assignments", "events")]
        assignments, events = _ref("base_assignments"), _ref("base_events")
        has_value = True
    dims = [f"d{i}" for i in range(len(dimensions))]

    # 1. Assignments: first row per unit, crossovers.
    assigned = (
        sqlglot.select(
            _as(_col(src("unit_id")), "unit_id"),
            _as(_col(src("variant")), "variant"),
            _as(_col(src("assigned_at")), "assigned_at"),
            *[_as(_text(_col(src(d))), alias) for d, alias in zip(dimensions, dims, strict=True)],
        )
        .from_(assignments)
        .where(
            _and(_eq(_col(src("experiment_id")), experiment_id), _lt(_col(src("assigned_at")), end))
        )
    )
    ranked = sqlglot.select(
        exp.Star(),
        _as(
            _window(
                exp.RowNumber(),
                [_col("unit_id")],
                [_col("assigned_at"), _col("variant"), *[_col(d) for d in dims]],
            ),
            "rn",
        ),
    ).from_(_ref("assigned"))
    null_variant = exp.Max(this=_flag(exp.Is(this=_col("variant"), expression=_null())))
    variants_seen = exp.Add(
        this=exp.Count(this=exp.Distinct(expressions=[_col("variant")])), expression=null_variant
    )
    crossed = (
        sqlglot.select(
            _as(_col("unit_id"), "unit_id"),
            _as(_flag(exp.GT(this=variants_seen, expression=_int(1))), "crossover"),
        )
        .from_(_ref("assigned"))
        .group_by(_col("unit_id"))
    )
    units = (
        sqlglot.select(
            _as(_col("unit_id", "f"), "unit_id"),
            _as(_col("variant", "f"), "variant"),
            _as(_col("assigned_at", "f"), "assigned_at"),
            *[_as(_col(d, "f"), d) for d in dims],
            _as(_col("crossover", "c"), "crossover"),
        )
        .from_(_ref("ranked", "f"))
        .join(_ref("crossed", "c"), on=_eq(_col("unit_id", "f"), _col("unit_id", "c")))
        .where(_first(_col("rn", "f")))
    )
    unit_ctes: list[tuple[str, exp.Query]] = [
        *base_ctes,
        ("assigned", assigned),
        ("ranked", ranked),
        ("crossed", crossed),
        ("units", units),
    ]
    experiment_units = (
        sqlglot.select(_col(src("unit_id")))
        .from_(assignments)
        .where(_eq(_col(src("experiment_id")), experiment_id))
    )

    # Cleaning counts.
    unit_counts = (
        sqlglot.select(
            _as(_int(0), "part"),
            _as(_col("variant"), "variant"),
            _as(_col("crossover"), "crossover"),
            _as(_cast(exp.Count(this=exp.Star()), "bigint"), "n"),
            _as(_cast(_int(0), "bigint"), "n_unique"),
        )
        .from_(_ref("units"))
        .group_by(_col("variant"), _col("crossover"))
    )
    of_units = _col(src("unit_id")).isin(query=experiment_units)
    rows_read = _cast(exp.Count(this=exp.Star()), "bigint")
    if unique_events:
        event_counts = (
            sqlglot.select(_int(1), _text(_null()), _cast(_null(), "int"), rows_read, rows_read)
            .from_(events)
            .where(of_units)
        )
    else:
        # Rows and distinct ids from one row per event id (NULL ids form one group,
        # as they count once among the distinct ids): DuckDB's GROUP BY spills to
        # disk, where its COUNT(DISTINCT) must hold every id in memory.
        per_id = (
            sqlglot.select(_as(exp.Count(this=exp.Star()), "copies"))
            .from_(events)
            .where(of_units)
            .group_by(_col(src("event_id")))
        )
        event_counts = sqlglot.select(
            _int(1),
            _text(_null()),
            _cast(_null(), "int"),
            _cast(exp.Sum(this=_col("copies")), "bigint"),
            rows_read,
        ).from_(exp.Subquery(this=per_id, alias=exp.TableAlias(this=_id("ids"))))
    cleaning = _with(
        sqlglot.select(exp.Star()).from_(
            exp.Subquery(
                this=_union_all([unit_counts, event_counts]),
                alias=exp.TableAlias(this=_id("counts")),
            )
        ),
        unit_ctes,
    )
    queries: dict[str, exp.Query] = {"cleaning": cleaning}

    # 2. Events of the experiment's units, deduplicated on event_id.
    aggregates = _aggregates(metrics)
    quantile_events = sorted(
        {m.value.event for m in metrics if m.kind == "quantile" and m.value is not None}
    )
    names = sorted({a.event for a in aggregates.values()} | set(quantile_events))
    value = _double(_col(src("value"))) if has_value else _double(_null())
    relevant = (
        sqlglot.select(
            _as(_col(src("event_id")), "event_id"),
            _as(_col(src("unit_id")), "unit_id"),
            _as(_col(src("ts")), "ts"),
            _as(_col(src("event")), "event"),
            _as(value, "value"),
        )
        .from_(events)
        .where(
            _and(
                _col(src("event")).isin(*[_str(n) for n in names]),
                _lt(_col(src("ts")), end),
                _col(src("unit_id")).isin(query=experiment_units),
            )
        )
    )
    rank = (
        _int(1)
        if unique_events
        else _window(
            exp.RowNumber(),
            [_col("event_id")],
            [_col("ts"), _col("unit_id"), _col("event"), _col("value")],
        )
    )
    numbered = sqlglot.select(exp.Star(), _as(rank, "rn")).from_(_ref("relevant"))
    # 3. Joined to the non-crossed-over units, inside each unit's window.
    at = _col("assigned_at", "u")
    ts = _col("ts", "e")
    start = at if window.pre_days == 0 else exp.Sub(this=at, expression=_hours(window.pre_days))
    conditions = [
        _first(_col("rn", "e")),
        _kept(_col("crossover", "u")),
        exp.GTE(this=ts, expression=start),
        _lt(ts, end),
    ]
    if window.window_days is not None:
        conditions.append(_lt(ts, exp.Add(this=at, expression=_hours(window.window_days))))
    in_window = (
        sqlglot.select(
            _as(_col("unit_id", "u"), "unit_id"),
            _as(_col("variant", "u"), "variant"),
            _as(_col("event", "e"), "event"),
            _as(_col("value", "e"), "value"),
            _as(_flag(_lt(ts, at)), "pre"),
        )
        .from_(_ref("numbered", "e"))
        .join(_ref("units", "u"), on=_eq(_col("unit_id", "e"), _col("unit_id", "u")))
        .where(_and(*conditions))
    )
    event_ctes = [
        *unit_ctes,
        ("relevant", relevant),
        ("numbered", numbered),
        ("in_window", in_window),
    ]

    # 4. Per-unit aggregates and metric columns.
    periods = {"a": _int(0)} if window.pre_days == 0 else {"a": _int(0), "p": _int(1)}
    agg_names = {name: i for i, name in enumerate(aggregates)}
    per_unit_cols: list[exp.Expr] = [_col("unit_id")]
    for prefix, period in periods.items():
        for name, i in agg_names.items():
            per_unit_cols.append(_as(_aggregate(aggregates[name], period), f"{prefix}{i}"))
    per_unit = sqlglot.select(*per_unit_cols).from_(_ref("in_window")).group_by(_col("unit_id"))

    def filled(agg: EventAggregate, prefix: str) -> exp.Expr:
        column = _col(f"{prefix}{agg_names[_agg_key(agg)]}", "p")
        if agg.agg in ("count", "sum"):
            return _double(exp.Coalesce(this=column, expressions=[_int(0)]))
        return _double(column)

    metric_cols: list[_MetricCols] = []
    unit_metric_cols: list[exp.Expr] = [
        _as(_col("unit_id", "u"), "unit_id"),
        _as(_col("variant", "u"), "variant"),
        *[_as(_col(d, "u"), d) for d in dims],
    ]
    for j, m in enumerate(m for m in metrics if m.kind != "quantile"):
        cols = _MetricCols(
            m,
            f"x{j}",
            f"y{j}" if m.kind == "ratio" else None,
            f"xp{j}",
            f"yp{j}" if m.kind == "ratio" else None,
        )
        metric_cols.append(cols)
        for prefix, x_name, y_name in (("a", cols.x, cols.y), ("p", cols.x_pre, cols.y_pre)):
            if prefix not in periods:
                continue
            if m.kind == "ratio":
                assert m.numerator is not None
                assert m.denominator is not None
                assert y_name is not None
                unit_metric_cols.append(_as(filled(m.numerator, prefix), x_name))
                unit_metric_cols.append(_as(filled(m.denominator, prefix), y_name))
            else:
                assert m.value is not None
                v = filled(m.value, prefix)
                if m.kind == "proportion":
                    v = (
                        exp.Case()
                        .when(exp.Is(this=v, expression=_null()), _double(_null()))
                        .when(exp.GT(this=v, expression=_int(0)), _double(_int(1)))
                        .else_(_double(_int(0)))
                    )
                unit_metric_cols.append(_as(v, x_name))
    unit_metrics = (
        sqlglot.select(*unit_metric_cols)
        .from_(_ref("units", "u"))
        .join(
            _ref("per_unit", "p"),
            on=_eq(_col("unit_id", "u"), _col("unit_id", "p")),
            join_type="left",
        )
        .where(_kept(_col("crossover", "u")))
    )

    # 5. Groups: overall (g = 0) and per dimension (g = i + 1); complete cases; moments.
    joint_metrics: list[tuple[Metric, list[str]]] = []
    if window.pre_days > 0:
        for cols in metric_cols:
            if cuped_columns(cols.metric) is None:
                continue
            names_k = [cols.x, cols.y, cols.x_pre, cols.y_pre] if cols.y else [cols.x, cols.x_pre]
            joint_metrics.append((cols.metric, [n for n in names_k if n is not None]))

    def complete_cols(overall: bool) -> list[exp.Expr]:
        out: list[exp.Expr] = []
        for j, cols in enumerate(metric_cols):
            if cols.y is None:
                out.append(_as(_col(cols.x), f"cx{j}"))
                continue
            both = _and(_not_null(_col(cols.x)), _not_null(_col(cols.y)))
            out.append(_as(_case(both, _col(cols.x), _double(_null())), f"cx{j}"))
            out.append(_as(_case(both, _col(cols.y), _double(_null())), f"cy{j}"))
        for k, (_, names_k) in enumerate(joint_metrics):
            every = _and(*[_not_null(_col(n)) for n in names_k])
            for i, n in enumerate(names_k):
                v = _case(every, _col(n), _double(_null())) if overall else _double(_null())
                out.append(_as(v, f"j{k}_{i}"))
        return out

    branches = [
        sqlglot.select(
            _as(_int(0), "g"),
            _as(_text(_str("")), "seg"),
            _as(_col("variant"), "variant"),
            *complete_cols(overall=True),
        ).from_(_ref("unit_metrics"))
    ]
    for i, d in enumerate(dims):
        branches.append(
            sqlglot.select(
                _int(i + 1),
                exp.Coalesce(this=_col(d), expressions=[_text(_str(MISSING))]),
                _col("variant"),
                *complete_cols(overall=False),
            ).from_(_ref("unit_metrics"))
        )
    groups = [_col("g"), _col("seg"), _col("variant")]
    value_cols = [f"cx{j}" for j in range(len(metric_cols))]
    value_cols += [f"cy{j}" for j, c in enumerate(metric_cols) if c.y is not None]
    value_cols += [f"j{k}_{i}" for k, (_, n) in enumerate(joint_metrics) for i in range(len(n))]
    centred = sqlglot.select(
        exp.Star(),
        *[_as(_window(exp.Avg(this=_col(c)), groups), f"m_{c}") for c in value_cols],
    ).from_(_ref("grouped"))

    def dev(c: str) -> exp.Expr:
        return exp.Paren(this=exp.Sub(this=_col(c), expression=_col(f"m_{c}")))

    def comoment(a: str, b: str) -> exp.Expr:
        return exp.Sum(this=exp.Mul(this=dev(a), expression=dev(b)))

    out: list[exp.Expr] = [*groups]
    for j, cols in enumerate(metric_cols):
        x = f"cx{j}"
        out += [exp.Count(this=_col(x)), exp.Avg(this=_col(x)), comoment(x, x)]
        if cols.y is not None:
            y = f"cy{j}"
            out += [exp.Avg(this=_col(y)), comoment(y, y), comoment(x, y)]
    for k, (_, names_k) in enumerate(joint_metrics):
        vs = [f"j{k}_{i}" for i in range(len(names_k))]
        out.append(exp.Count(this=_col(vs[0])))
        out += [exp.Avg(this=_col(v)) for v in vs]
        out += [comoment(vs[a], vs[b]) for a in range(len(vs)) for b in range(a, len(vs))]
    moments = _with(
        sqlglot.select(*[_as(e, f"c{i}") for i, e in enumerate(out)])
        .from_(_ref("centred"))
        .group_by(*groups),
        [
            *event_ctes,
            ("per_unit", per_unit),
            ("unit_metrics", unit_metrics),
            ("grouped", _union_all(branches)),
            ("centred", centred),
        ],
    )
    queries["moments"] = moments

    # Quantile metrics: the in-window values and a unit code, nothing else.
    if quantile_events:
        which = exp.Case()
        for k, name in enumerate(quantile_events):
            which = which.when(_eq(_col("event"), _str(name)), _int(k))
        quantiles = _with(
            sqlglot.select(
                _as(which, "k"),
                _as(_col("variant"), "variant"),
                _as(_col("value"), "value"),
                _as(_window(exp.DenseRank(), [], [_col("unit_id")]), "unit"),
            )
            .from_(_ref("in_window"))
            .where(
                _and(
                    _eq(_col("pre"), _int(0)),
                    _not_null(_col("value")),
                    _col("event").isin(*[_str(n) for n in quantile_events]),
                )
            ),
            event_ctes,
        )
        queries["quantiles"] = quantiles
    return _Plan(queries, metric_cols, joint_metrics, list(dimensions), quantile_events)


def _aggregate(agg: EventAggregate, pre: exp.Expr) -> exp.Expr:
    """One per-unit aggregate of one period, as metrics._aggregate_expr computes it."""
    conditions = [_eq(_col("event"), _str(agg.event)), _eq(_col("pre"), pre)]
    if agg.value_equals is not None:
        conditions.append(_eq(_col("value"), _num(agg.value_equals)))
    mask = _and(*conditions)
    if agg.agg == "count":
        return exp.Sum(this=_flag(mask))
    values = _case(mask, _col("value"), _double(_null()))
    return exp.Sum(this=values) if agg.agg == "sum" else exp.Avg(this=values)


# --------------------------------------------------------------------------- compile


def compile_queries(
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    dialect: str,
    tables: Mapping[str, str] | None = None,
    columns: Mapping[str, str] | None = None,
    dimensions: Sequence[str] | None = None,
    has_value: bool = True,
    bases: Mapping[str, exp.Query] | None = None,
    unique_events: bool = False,
) -> dict[str, str]:
    """The SQL text of each query for a sqlglot dialect (``postgres``, ``trino``, ...).

    Args:
        tables: ``{"assignments": name, "events": name}``; a name may be
            ``schema.table`` or ``catalog.schema.table``. Default: the contract names.
        columns: contract column name -> the source's column name (the
            source's ``columns:``); dimensions may be mapped too.
        dimensions: the segment dimensions to slice by; default: the experiment's.
        has_value: whether the events table has a ``value`` column (else null).
        bases: ``{"assignments": query, "events": query}``: relations to
            aggregate over instead of ``tables`` (see :func:`measure_in_database`).
        unique_events: the events hold one row per event id and none without
            one (see :func:`measure_in_database`).

    Returns ``{"cleaning": sql, "moments": sql}`` and ``"quantiles"`` when a
    metric is a quantile.
    """
    plan = _plan(
        experiment,
        metrics,
        as_of,
        tables or {"assignments": "assignments", "events": "events"},
        columns or {},
        list(experiment.segments if dimensions is None else dimensions),
        has_value,
        bases,
        unique_events,
    )
    return {name: query.sql(dialect=dialect) for name, query in plan.queries.items()}


# --------------------------------------------------------------------------- read back


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _read_cleaning(frame: pl.DataFrame, experiment: Experiment) -> Cleaning:
    by_variant = dict.fromkeys(experiment.variants, 0)
    crossovers = rows = unique = 0
    for part, variant, crossover, n, n_unique in frame.rows():
        if int(part) == 1:
            rows, unique = int(n or 0), int(n_unique or 0)
        elif int(crossover):
            crossovers += int(n)
        else:
            by_variant[variant] = by_variant.get(variant, 0) + int(n)
    return Cleaning(
        events=rows,
        duplicates_dropped=rows - unique,
        crossovers_excluded=crossovers,
        units=by_variant,
    )


def _read_moments(
    frame: pl.DataFrame, plan: _Plan
) -> tuple[dict[str, dict[str, Moments]], dict[str, dict[str, JointMoments]], dict[str, Any]]:
    moments: dict[str, dict[str, Moments]] = {c.metric.name: {} for c in plan.moment_metrics}
    joint: dict[str, dict[str, JointMoments]] = {m.name: {} for m, _ in plan.joint_metrics}
    segments: dict[str, dict[str, dict[str, dict[str, Moments]]]] = {
        d: {c.metric.name: {} for c in plan.moment_metrics} for d in plan.dimensions
    }
    for row in frame.rows():
        g, seg, variant = int(row[0]), row[1], row[2]
        pos = 3
        for cols in plan.moment_metrics:
            n, mean_x, m2_x = int(row[pos] or 0), row[pos + 1], row[pos + 2]
            pos += 3
            mean_y, m2_y, c_xy = 1.0, 0.0, 0.0
            if cols.y is not None:
                mean_y, m2_y, c_xy = _f(row[pos]), _f(row[pos + 1]), _f(row[pos + 2])
                pos += 3
            m = Moments.empty() if n == 0 else Moments(n, _f(mean_x), mean_y, _f(m2_x), m2_y, c_xy)
            if g == 0:
                moments[cols.metric.name][variant] = m
            else:
                segments[plan.dimensions[g - 1]][cols.metric.name].setdefault(seg, {})[variant] = m
        for metric, names_k in plan.joint_metrics:
            k = len(names_k)
            n = int(row[pos] or 0)
            means = tuple(_f(v) for v in row[pos + 1 : pos + 1 + k])
            pos += 1 + k
            upper: dict[tuple[int, int], float] = {}
            for a in range(k):
                for b in range(a, k):
                    upper[a, b] = _f(row[pos])
                    pos += 1
            if g == 0:
                joint[metric.name][variant] = (
                    JointMoments.empty(k)
                    if n == 0
                    else JointMoments(
                        n,
                        means,
                        tuple(
                            tuple(upper[min(a, b), max(a, b)] for b in range(k)) for a in range(k)
                        ),
                    )
                )
    sorted_segments = {
        d: {name: dict(sorted(by_value.items())) for name, by_value in by_metric.items()}
        for d, by_metric in segments.items()
    }
    return moments, joint, sorted_segments


def _read_samples(
    frame: pl.DataFrame, plan: _Plan, metrics: Sequence[Metric]
) -> dict[str, dict[str, QuantileSample]]:
    samples: dict[str, dict[str, QuantileSample]] = {}
    frame = frame.rename(dict(zip(frame.columns, ["k", "variant", "value", "unit"], strict=True)))
    for m in metrics:
        if m.kind != "quantile":
            continue
        assert m.value is not None
        part = frame.filter(pl.col("k") == plan.quantile_events.index(m.value.event))
        samples[m.name] = {
            str(variant): QuantileSample(
                group["value"].cast(pl.Float64).to_numpy(),
                group["unit"].cast(pl.Int64).to_numpy().astype(np.int64),
            )
            for (variant,), group in part.partition_by("variant", as_dict=True).items()
        }
    return samples


# --------------------------------------------------------------------------- execute


def dialect_of(uri: str) -> str:
    """The sqlglot dialect of a database URI, from its scheme (``postgresql://`` -> postgres)."""
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0].lower()
    try:
        return DIALECTS[scheme]
    except KeyError:
        known = ", ".join(sorted(DIALECTS))
        raise SourceError(
            f"no SQL dialect known for URI scheme {scheme!r} (known: {known}); pass dialect="
        ) from None


def measure_in_database(
    source_name: str,
    source: DuckDBSource | SqlSource,
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    *,
    dialect: str | None = None,
    execute: Execute | None = None,
    bases: Mapping[str, exp.Query] | None = None,
    unique_events: bool = False,
) -> WarehouseMeasurement:
    """Cleaning counts, moments, joint moments, segments and quantile samples, in-database.

    DuckDB sources run on their file (read-only); SQL sources on the URI in
    the environment variable ``source.uri_env``, read with connectorx (ADBC
    for ``snowflake://``), the dialect following the URI's scheme. ``execute``
    replaces the connection (e.g. a Spark session's ``spark.sql(q).toPandas``
    wrapped into polars) and ``dialect`` the inferred dialect. Errors name the
    source and table, never the URI.

    ``bases`` (``{"assignments": query, "events": query}``) replaces the two
    tables by relations, e.g. the rows the quarantine keeps
    (:func:`analysis.validation_sql.used_rows`): each has the contract's
    column names (an assignments relation keeps its other columns under the
    source's names), and becomes a CTE of every query. The source's tables are
    still checked (columns, types) and give the segment dimensions.

    ``unique_events``: the events hold one row per event id and none without
    one, as the quarantine's kept rows do (``duplicate_event_id``,
    ``null_event_id``): the queries neither rank events per id nor count
    distinct ids (a window and a hash table over every id, which at 100M
    events dominated the time and ran out of memory under 8 GB).
    """
    closers: list[Callable[[], None]] = []
    redact: Callable[[str], str] = str
    if execute is None:
        execute, dialect, redact = _connect(source_name, source, dialect, closers)
    elif dialect is None:
        if not isinstance(source, DuckDBSource):
            raise ValueError("with execute=, a SQL source needs dialect= (e.g. 'spark')")
        dialect = "duckdb"
    try:
        dims, has_value = _introspect_dims(
            source_name, source, experiment, execute, dialect, redact
        )
        plan = _plan(
            experiment,
            metrics,
            as_of,
            {"assignments": source.assignments, "events": source.events},
            source.columns,
            dims,
            has_value,
            bases,
            unique_events,
        )
        texts = {name: q.sql(dialect=dialect) for name, q in plan.queries.items()}
        frames: dict[str, pl.DataFrame] = {}
        for name, text in texts.items():
            try:
                frames[name] = execute(text)
            except Exception as exc:  # the drivers raise many types; say which, never the URI
                raise SourceError(
                    f"source {source_name!r}: the {name} query failed "
                    f"({type(exc).__name__}: {redact(str(exc))})"
                ) from None
    finally:
        for close in closers:
            close()
    moments, joint, segments = _read_moments(frames["moments"], plan)
    samples = _read_samples(frames["quantiles"], plan, metrics) if "quantiles" in frames else {}
    return WarehouseMeasurement(
        cleaning=_read_cleaning(frames["cleaning"], experiment),
        data=ArmData(moments=moments, samples=samples, joint=joint),
        segments=segments,
        dialect=dialect,
        queries=texts,
        rows={name: frame.height for name, frame in frames.items()},
    )


def _introspect_dims(
    source_name: str,
    source: DuckDBSource | SqlSource,
    experiment: Experiment,
    execute: Execute,
    dialect: str,
    redact: Callable[[str], str],
) -> tuple[list[str], bool]:
    found: dict[str, pl.DataFrame] = {}
    for role in ("assignments", "events"):
        name = getattr(source, role)
        query = sqlglot.select(exp.Star()).from_(_table(name)).where(_eq(_int(1), _int(0)))
        try:
            found[role] = execute(query.sql(dialect=dialect))
        except Exception as exc:  # the drivers raise many types; say which, never the URI
            raise SourceError(
                f"source {source_name!r}: cannot read table {name!r} (the {role} table): "
                f"{type(exc).__name__}: {redact(str(exc))}"
            ) from None
        require_columns(source_name, role, found[role].columns, source.columns)
    # The contract's type checks (e.g. timezone-naive timestamps), on the empty frames.
    names = {
        role: conform(frame.lazy(), source_name, role, source.columns).collect_schema().names()
        for role, frame in found.items()
    }
    dims = [
        d for d in experiment.segments if d in names["assignments"] and d not in schema.ASSIGNMENTS
    ]
    return dims, source.columns.get("value", "value") in found["events"].columns


def _connect(
    source_name: str,
    source: DuckDBSource | SqlSource,
    dialect: str | None,
    closers: list[Callable[[], None]],
) -> tuple[Execute, str, Callable[[str], str]]:
    if isinstance(source, DuckDBSource):
        con = connect_duckdb(source_name, source)
        closers.append(con.close)

        def run_duckdb(query: str) -> pl.DataFrame:
            frame: pl.DataFrame = con.sql(query).pl()
            return frame

        return run_duckdb, dialect or "duckdb", str
    uri = sql_uri(source_name, source)
    check_reachable(source_name, uri)
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0].lower()
    adbc = scheme in _ADBC_SCHEMES
    if DIALECTS.get(scheme) == "postgres":
        uri = without_nested_loops(uri)

    def run_uri(query: str) -> pl.DataFrame:
        if adbc:
            return pl.read_database_uri(query, uri, engine="adbc")
        return pl.read_database_uri(query, uri, engine="connectorx")

    def without_uri(message: str) -> str:
        return redact_uri(message, uri)

    return run_uri, dialect or dialect_of(uri), without_uri
