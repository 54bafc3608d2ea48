"""Warehouse push-down: an experiment's whole measurement run inside the database as SQL.

For DuckDB and SQL sources the polars path (:mod:`analysis.engines.polars_measure`)
reads every event of the experiment's units into memory. The queries built
here (:mod:`analysis.sql.aggregate_plan`, ``aggregate_units``,
``aggregate_timeline``, ``aggregate_descriptives``) reproduce that path
inside the database, and only these come back
(:mod:`analysis.sql.aggregate_read`):

* ``cleaning`` — units per variant, crossovers, event rows and duplicates;
* ``moments`` — per (dimension, segment, variant) the
  :class:`~analysis.aggregates.Moments` of every non-quantile metric, and per
  variant the :class:`~analysis.joint.JointMoments` CUPED needs; winsorised
  at pooled caps computed in the same query when the experiment asks;
* ``quantiles`` — for quantile metrics, the in-window event values and an
  integer unit code (the only per-event rows);
* ``daily`` and ``weekly`` — the raw sums of the two timelines;
* ``descriptives`` — the AI funnel and the time-on-task and trust histograms.

:func:`compile_queries` returns the SQL text for any sqlglot dialect;
:func:`measure_in_database` runs it on DuckDB or on any database polars
reads by URI (connectorx), or through a caller's ``execute`` function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import polars as pl
import sqlglot
from sqlglot import exp

from analysis.aggregates import Moments
from analysis.config.experiments import Experiment, Metric
from analysis.config.sources import DatabaseSource, DuckDBSource
from analysis.failures import FailureData
from analysis.joint import JointMoments
from analysis.measurement import ArmData, Cleaning, FlowData, Histogram, UnsureData
from analysis.partials import metric_parts
from analysis.sources.errors import SourceError
from analysis.sql.aggregate_checks import unit_metrics_query
from analysis.sql.aggregate_connect import (
    DIALECTS,
    Connection,
    Execute,
    dialect_of,
    introspect_dims,
)
from analysis.sql.aggregate_connect import connection as connected
from analysis.sql.aggregate_decay import decay_sums
from analysis.sql.aggregate_descriptives import descriptives
from analysis.sql.aggregate_plan import (
    Scope,
    all_windowed_events,
    cleaning_counts,
    make_scope,
)
from analysis.sql.aggregate_read import (
    read_assigned_units,
    read_cleaning,
    read_daily,
    read_decay,
    read_descriptives,
    read_moments,
    read_weekly,
)
from analysis.sql.aggregate_timeline import (
    TimelineMetric,
    daily_increments,
    weekly_sums,
)
from analysis.sql.aggregate_units import MISSING, MomentsLayout, arm_moments, unit_rows
from analysis.sql.expressions import ref, table, with_ctes
from analysis.sql.failures import failure_data
from analysis.sql.quantile_summaries import first_query, quantile_summaries
from analysis.sql.task_flow import flow_query, read_flow
from analysis.sql.unsure import read_unsure, unsure_query
from analysis.timeline import trending_metrics

__all__ = [
    "DIALECTS",
    "MISSING",
    "Execute",
    "WarehouseMeasurement",
    "compile_queries",
    "dialect_of",
    "measure_in_database",
]

#: The temporary tables that keep the in-window events and the per-unit table, where
#: the connection keeps rows.
IN_WINDOW, UNIT_ROWS = "proof_in_window", "proof_unit_rows"

SegmentMoments = Mapping[str, Mapping[str, Mapping[str, Mapping[str, Moments]]]]


@dataclass(frozen=True)
class WarehouseMeasurement:
    """What the statistics need, computed inside the database.

    Attributes:
        cleaning: the counts of :func:`analysis.metrics.cleaning_counts`; over
            ``bases`` without the events read and the duplicates (0), which the
            quarantine counts (:func:`analysis.quarantine.raw_cleaning`).
        data: ``moments``, ``joint`` and quantile ``samples`` keyed
            ``{metric: {variant: ...}}``, as :class:`~analysis.measurement.ArmData`.
        segments: ``{dimension: {metric: {segment: {variant: Moments}}}}``.
        dialect: the sqlglot dialect the queries were generated for.
        daily, weekly, funnel, time_on_task, trust: as the fields of
            :class:`~analysis.measurement.Measurement`.
        queries: the SQL text of each query that ran.
        rows: rows each query returned (what crossed the wire).
        unit_metrics_sql: the per-unit metric table over the given ``bases``, or
            the table that keeps it
            (:func:`~analysis.sql.aggregate_checks.unit_metrics_query`), not run
            here: its GX checks run it (:func:`analysis.sql.gx.validate_unit_metrics_sql`).
        analysed_units: the units that table must hold.
        failures: the failure labels and their share metrics (:mod:`analysis.sql.failures`).
    """

    cleaning: Cleaning
    data: ArmData
    segments: SegmentMoments
    dialect: str
    daily: Mapping[str, Mapping[dt.date, Moments]] = field(default_factory=dict)
    weekly: Mapping[str, Mapping[str, Mapping[int, Moments]]] = field(default_factory=dict)
    funnel: Mapping[str, list[tuple[str, int]]] = field(default_factory=dict)
    time_on_task: Histogram | None = None
    trust: Mapping[str, list[int]] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)
    rows: Mapping[str, int] = field(default_factory=dict)
    unit_metrics_sql: str = ""
    analysed_units: int = 0
    failures: FailureData | None = None
    decay: Mapping[str, Mapping[str, JointMoments]] = field(default_factory=dict)
    flow: FlowData | None = None
    unsure: UnsureData | None = None


@dataclass(frozen=True)
class _Plan:
    """The query trees and how to read their rows back."""

    queries: dict[str, exp.Query]
    moments: MomentsLayout
    daily_ratio: bool
    weekly: list[TimelineMetric]
    decay: list[TimelineMetric]


def _plan(s: Scope, metrics: Sequence[Metric], count_events: bool = True) -> _Plan:
    experiment = s.experiment
    queries: dict[str, exp.Query] = {"cleaning": cleaning_counts(s, count_events)}
    queries["moments"], layout = arm_moments(s, metrics)
    primary = next((m for m in metrics if m.name == experiment.metrics.primary), None)
    daily = daily_increments(s, primary) if primary is not None else None
    if daily is not None:
        queries["daily"] = daily
    trending = trending_metrics(experiment, metrics)
    weekly, weekly_layout = weekly_sums(s, trending)
    if weekly is not None:
        queries["weekly"] = weekly
    decay_layout: list[TimelineMetric] = []
    if experiment.kind == "holdout":
        decay, decay_layout = decay_sums(s, trending)
        if decay is not None:
            queries["decay"] = decay
    queries["descriptives"] = descriptives(s, experiment.ai_variants())
    if s.has_task_id:
        queries["task_flow"] = flow_query(s)
        queries["unsure"] = unsure_query(s)
    ratio = primary is not None and primary.kind == "ratio"
    return _Plan(queries, layout, ratio, weekly_layout, decay_layout)


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
    has_label: bool = False,
    has_task_id: bool = True,
) -> dict[str, str]:
    """The SQL text of each query for a sqlglot dialect (``postgres``, ``trino``, ...).

    Args:
        tables: ``{"assignments": name, "events": name}``; a name may be
            ``schema.table`` or ``catalog.schema.table``. Default: the contract names.
        columns: contract column name -> the source's column name (the
            source's ``columns:``); dimensions may be mapped too.
        dimensions: the segment dimensions to slice by; default: the experiment's.
        has_value: whether the events table has a ``value`` column (else null).
        has_label: whether it has a ``label`` column (else null); a metric that
            filters by label needs it.
        has_task_id: whether it has a ``task_id`` column (else null: no task flow).
        bases: ``{"assignments": query, "events": query}``: relations to
            aggregate over instead of ``tables`` (see :func:`measure_in_database`).
        unique_events: the events hold one row per event id and none without
            one (see :func:`measure_in_database`).

    Returns ``{"cleaning", "moments", "descriptives"}`` with SQL text, and
    ``"quantile_order"`` when a metric is a quantile (the first of its three queries;
    the other two are written from its rows at run time), ``"daily"`` when the primary
    metric has a timeline, ``"weekly"`` when the primary or a trust metric has.
    """
    labelled = [m.name for m in metrics for p in metric_parts(m) if p.label_equals is not None]
    if labelled and not has_label and bases is None:
        raise ValueError(f"metrics {labelled} filter by label: pass has_label=True")
    scope = make_scope(
        experiment,
        as_of,
        dialect,
        tables or {"assignments": "assignments", "events": "events"},
        columns or {},
        list(experiment.segments if dimensions is None else dimensions),
        has_value,
        bases,
        unique_events,
        has_label,
        has_task_id,
    )
    queries = _plan(scope, metrics).queries
    first = first_query(scope, experiment, metrics)
    if first is not None:
        queries["quantile_order"] = first
    return {name: query.sql(dialect=dialect) for name, query in queries.items()}


def measure_in_database(
    source_name: str,
    source: DatabaseSource,
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    *,
    dialect: str | None = None,
    execute: Execute | None = None,
    connection: Connection | None = None,
    bases: Mapping[str, exp.Query] | None = None,
    unique_events: bool = False,
) -> WarehouseMeasurement:
    """Every section of the measurement, in-database; the per-unit checks' query as text.

    DuckDB sources run on their file (read-only); SQL sources on the URI in
    the environment variable ``source.uri_env``, read with connectorx (ADBC
    for ``snowflake://``), the dialect following the URI's scheme. An open
    ``connection`` (:func:`~analysis.sql.aggregate_connect.connection`) is
    used as it is and left open; ``execute`` replaces the connection (e.g. a
    Spark session's ``spark.sql(q).toPandas`` wrapped into polars) and
    ``dialect`` the inferred dialect. Errors name the source and table, never
    the URI.

    ``bases`` (``{"assignments": query, "events": query}``) replaces the two
    tables by relations, e.g. the rows the quarantine keeps
    (:func:`analysis.sql.quarantine.used_rows`): each has the contract's
    column names (an assignments relation keeps its other columns under the
    source's names), and becomes a CTE of every query. The source's tables are
    still checked (columns, types) and give the segment dimensions.

    Where the connection keeps rows (DuckDB), the units, the in-window events
    (with ``unique_events``) and the per-unit table are kept once in
    temporary tables that every query reads; over a ``connection`` that
    outlives the call, ``unit_metrics_sql`` of the result reads that table,
    and runs on that connection only (:attr:`Connection.share`).

    ``unique_events``: the events hold one row per event id and none without
    one, as the quarantine's kept rows do (``duplicate_event_id``,
    ``null_event_id``): the queries neither rank events per id nor count
    distinct ids (a window and a hash table over every id, which at 100M
    events dominated the time and ran out of memory under 8 GB).
    """
    args = (source_name, source, experiment, metrics, as_of, bases, unique_events)
    if connection is not None:
        return _measure(connection, *args)
    if execute is not None:
        if dialect is None and not isinstance(source, DuckDBSource):
            raise ValueError("with execute=, a SQL source needs dialect= (e.g. 'spark')")
        return _measure(Connection(execute, dialect or "duckdb", str), *args)
    with connected(source_name, source, dialect) as opened:
        # Its temporary tables end with it: the per-unit checks' query must not read them.
        return _measure(opened, *args, lasting=False)


def _measure(
    con: Connection,
    source_name: str,
    source: DatabaseSource,
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    bases: Mapping[str, exp.Query] | None,
    unique_events: bool,
    lasting: bool = True,
) -> WarehouseMeasurement:
    dialect = con.dialect
    dims, has_value, has_label, has_task_id = introspect_dims(
        source_name, source, experiment, con.execute, dialect, con.redact
    )
    tables = dict(source.relations())

    def scope_over(relations: Mapping[str, exp.Query] | None) -> Scope:
        return make_scope(
            experiment, as_of, dialect, tables, source.columns, dims, has_value, relations,
            unique_events, has_label, has_task_id,
        )  # fmt: skip

    scope = plain = scope_over(bases)
    if con.keep is not None:
        # Every query reads the units, the in-window events and the per-unit table: keep
        # them once rather than run the quarantine's rules (a third of a push-down run's
        # time at 4M events), the joins and the per-unit aggregation again in each.
        keep = con.keep
        try:
            if bases is not None:
                kept = keep("proof_kept_assignments", bases["assignments"].sql(dialect=dialect))
                scope = scope_over({"assignments": kept, "events": bases["events"]})
            if unique_events:  # else each query deduplicates its own events, as polars does
                keep(IN_WINDOW, all_windowed_events(scope).sql(dialect=dialect))
                scope = replace(scope, in_window=table(IN_WINDOW))
            rows = sqlglot.select(exp.Star()).from_(ref("unit_rows"))
            keep(UNIT_ROWS, with_ctes(rows, unit_rows(scope, metrics)).sql(dialect=dialect))
        except Exception as exc:  # the drivers raise many types; say which, never the URI
            raise SourceError(
                f"source {source_name!r}: keeping rows in temporary tables failed "
                f"({type(exc).__name__}: {con.redact(str(exc))})"
            ) from None
        scope = replace(scope, units=table(UNIT_ROWS))
    unit_metrics_sql = unit_metrics_query(scope if lasting else plain, metrics).sql(dialect=dialect)
    # Over a quarantine's rows its counts of the events stand (raw_cleaning): the
    # events are read once, into the in-window events.
    plan = _plan(scope, metrics, count_events=bases is None)
    texts: dict[str, str] = {}
    frames: dict[str, pl.DataFrame] = {}

    def run(name: str, query: exp.Query) -> pl.DataFrame:
        texts[name] = text = query.sql(dialect=dialect)
        try:
            frames[name] = con.execute(text)
        except Exception as exc:  # the drivers raise many types; say which, never the URI
            raise SourceError(
                f"source {source_name!r}: the {name} query failed "
                f"({type(exc).__name__}: {con.redact(str(exc))})"
            ) from None
        return frames[name]

    for name, query in plan.queries.items():
        run(name, query)
    quantiles = quantile_summaries(scope, experiment, metrics, run)
    failures = failure_data(scope, run)
    moments, joint, segments = read_moments(frames["moments"], plan.moments)
    daily = {}
    if "daily" in frames:
        daily = read_daily(frames["daily"], plan.daily_ratio, as_of, experiment.start)
    weekly = read_weekly(frames["weekly"], plan.weekly) if "weekly" in frames else {}
    decay = read_decay(frames["decay"], plan.decay) if "decay" in frames else {}
    flow = read_flow(frames["task_flow"]) if "task_flow" in frames else None
    sure = read_unsure(frames["unsure"]) if "unsure" in frames else None
    funnel, time_on_task, trust = read_descriptives(
        frames["descriptives"], list(experiment.variants), experiment.ai_variants()
    )
    return WarehouseMeasurement(
        cleaning=read_cleaning(frames["cleaning"], experiment),
        data=ArmData(moments=moments, quantiles=quantiles, joint=joint),
        segments=segments,
        dialect=dialect,
        daily=daily,
        weekly=weekly,
        funnel=funnel,
        time_on_task=time_on_task,
        trust=trust,
        queries=texts,
        rows={name: frame.height for name, frame in frames.items()},
        unit_metrics_sql=unit_metrics_sql,
        analysed_units=read_assigned_units(frames["cleaning"]),
        failures=failures,
        decay=decay,
        flow=flow,
        unsure=sure,
    )
