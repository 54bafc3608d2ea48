"""The GX suites run by GX's SQL engine, inside the database.

:func:`validate_sql` runs ``expectations/<table>.json`` (filled by
:func:`analysis.suites.params.run_params`) over two query assets, the experiment's
assignments (``WHERE experiment_id = …``) and the events of its units, each
with the source's columns **renamed to the contract's names** in the query
(``SELECT "user_id" AS "unit_id" …``). The expectations therefore run with
their kwargs unchanged, except for two translations GX's SQL engine needs: a
``row_condition`` becomes GX's structured condition (the pandas parser is
refused by the SQL engine), and a type check runs as
``expect_column_values_to_be_in_type_list`` on a table asset of the base table
(a query asset has no column types) with the types Proof's reader accepts for
the contract type. It returns the :class:`ValidationReport` of the polars
path, so ``format_summary`` and the report page are unchanged. An expectation
this module cannot translate is reported as failed, with an ``error`` saying
why, never skipped. :func:`check_experiment_sql` is a run's check: the
quarantine (:func:`analysis.sql.quarantine.quarantine_sql`), then the suites.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlglot import exp

from analysis.config.experiments import Experiment, Metric
from analysis.partitions.batches import BatchOutcome
from analysis.quarantine import TABLES
from analysis.sources.coverage import EventCoverage
from analysis.sql.database import Database, SqlTable
from analysis.sql.expressions import column, finite
from analysis.sql.gx_context import GxSql, gx_session
from analysis.sql.gx_spark import GxSpark
from analysis.sql.quarantine import SqlQuarantine, quarantine_sql
from analysis.sql.rows import count_rows, event_coverage, experiment_queries
from analysis.suites.conditions import parse_condition
from analysis.suites.load import DEFAULT_SUITE_DIR, Expectation, Suite, SuiteError, load_suite
from analysis.suites.params import experiment_period, run_params
from analysis.validation.gx import raw_alias
from analysis.validation.tables import expectation_outcome, unassigned_share
from analysis.validation_report import ValidationReport

__all__ = ["check_experiment_sql", "validate_sql", "validate_unit_metrics_sql"]

_TYPE_CHECK = "expect_column_values_to_be_of_type"
_UNASSIGNED_SHARE = "expect_unassigned_event_share_to_be_at_most"
#: Expectation types GX runs on PostgreSQL as they are written in the suites
#: (checked against the polars path by tests/test_validation_sql.py).
_AS_WRITTEN = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_column_to_exist",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
    }
)


def _gx_row_condition(text: str) -> dict[str, Any]:
    """GX's structured condition for ``column=="value"`` (the SQL engine's own syntax)."""
    column, value = parse_condition(text)
    return {"type": "comparison", "column": {"name": column}, "operator": "==", "parameter": value}


def _sql_expectation(e: Expectation, aliases: Mapping[str, str]) -> Expectation:
    """``e`` as GX's SQL engine takes it: a structured row_condition, no pandas parser;
    a ``non_finite`` rule on its column's raw values (``aliases``: alias -> column)."""
    kwargs = dict(e.kwargs)
    if e.non_finite and raw_alias(str(e.column)) in aliases:
        kwargs["column"] = raw_alias(str(e.column))
    if e.condition is not None:
        kwargs.pop("condition_parser", None)
        kwargs["row_condition"] = _gx_row_condition(e.condition)
    return e if kwargs == e.kwargs else e.with_kwargs(kwargs)


def _gx_query(
    query: exp.Select, suite: Suite, table: SqlTable
) -> tuple[exp.Select, dict[str, str]]:
    """The query GX validates, and its aliases (alias -> column).

    A column with a ``non_finite`` rule is read twice, as the pandas adapter
    does: under its name with NaN and ±inf as NULL (its range and set rules
    judge finite values and pass those, as nulls), and raw under
    :func:`analysis.validation.gx.raw_alias` for the ``non_finite`` rule.
    """
    caught = {str(e.column) for e in suite.gx() if e.non_finite and e.column in table.columns}
    if not caught:
        return query, {}
    items: list[exp.Expr] = []
    for name in table.columns:
        if name in caught:
            finite_only = exp.Case().when(finite(column(name)), column(name))
            items += [exp.alias_(finite_only, name, quoted=True),
                      exp.alias_(column(name), raw_alias(name), quoted=True)]  # fmt: skip
        else:
            items.append(column(name))
    wrapped = exp.select(*items).from_(query.subquery("__proof_rows"))
    return wrapped, {raw_alias(c): c for c in caught}


def _type_expectation(e: Expectation, table: SqlTable, db: Database) -> Expectation | BatchOutcome:
    """A contract type check as ``in_type_list`` over the base table's catalog type.

    On DuckDB and Spark the catalog type :func:`~analysis.sql.database.reflect`
    read is compared here: GX would reflect the table through duckdb-engine's
    PostgreSQL inspector, which DuckDB cannot answer (``pg_collation``), and a
    Spark session's views are no table GX can ask about.
    """
    types = db.types
    catalog_through_gx = db.dialect == "postgres"
    column = str(e.kwargs.get("column"))
    type_ = str(e.kwargs.get("type_"))
    accepted = types.get(type_)
    if accepted is None:
        return BatchOutcome(
            e.key, False, error=f"cannot run inside the database: no database types for {type_!r}"
        )
    source = table.source_column(column)
    if source is None:  # an optional column the source does not have: read as NULL
        return BatchOutcome(e.key, True, observed="absent (read as NULL)")
    found = table.types.get(source, "")
    spelled = [found] if found.split("(")[0].strip() in accepted else []
    if not catalog_through_gx:
        return BatchOutcome(e.key, bool(spelled), observed=found)
    return Expectation(
        e.key,
        e.table,
        "expect_column_values_to_be_in_type_list",
        {"column": source, "type_list": [*accepted, *spelled]},
        e.meta,
    )


def _run_suite(
    gx: GxSql | GxSpark, db: Database, suite: Suite, table: SqlTable, query: exp.Select
) -> dict[str, BatchOutcome]:
    found: dict[str, BatchOutcome] = {}
    on_query: list[Expectation] = []
    on_table: list[Expectation] = []
    query, aliases = _gx_query(query, suite, table)
    for e in suite.gx():
        try:
            if e.type == _TYPE_CHECK:
                typed = _type_expectation(e, table, db)
                if isinstance(typed, BatchOutcome):
                    found[e.key] = typed
                else:
                    on_table.append(typed)
            elif e.type in _AS_WRITTEN:
                on_query.append(_sql_expectation(e, aliases))
            else:
                found[e.key] = BatchOutcome(
                    e.key,
                    False,
                    error=f"cannot run inside the database: {e.type} is not translated",
                )
        except SuiteError as exc:
            found[e.key] = BatchOutcome(
                e.key, False, error=f"cannot run inside the database: {exc}"
            )
    asset = gx.rows.add_query_asset(f"{table.role}_rows", query=query.sql(dialect=db.dialect))
    index = [c for c in suite.index_columns if c in table.columns]
    for outcome in gx.validate(asset, on_query, index, aliases):
        found[outcome.key] = outcome
    if on_table:
        base = gx.catalog.add_table_asset(
            f"{table.role}_table", table_name=table.name, schema_name=table.schema
        )
        for outcome in gx.validate(base, on_table, ()):
            found[outcome.key] = outcome
    return found


def validate_sql(
    db: Database,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    quarantine: Mapping[str, Mapping[str, int]] | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    temp_table: bool = True,
    rows: Mapping[str, exp.Select] | None = None,
) -> ValidationReport:
    """Validate one experiment's raw assignments and events inside the database.

    The SQL twin of :func:`analysis.validation.experiment.validate_experiment` (same
    suites, same outcomes, same report): one GX run per table over the
    experiment's rows, no partitions and no cache. ``coverage`` feeds the
    unassigned-event share (without it, it is counted over the experiment's
    rows, as the polars path does); ``quarantine`` (``SqlQuarantine.counts``)
    is carried into the summary. ``temp_table=False`` for a database where
    the user may not create temporary tables (a read-only standby): GX then
    runs the experiment's query again for every metric (slower). ``rows``: the
    experiment's rows where the run keeps them (:meth:`SqlQuarantine.read_rows`),
    read as they are (no copy) instead of the tables.
    """
    now = now or dt.datetime.now(dt.UTC)
    params = run_params(experiment, as_of, now)
    suites = [load_suite(t, params, suite_dir) for t in TABLES]
    tables = db.tables
    if rows is None:
        queries = experiment_queries(tables, experiment.id, experiment_period(experiment, as_of))
    else:
        queries, temp_table = dict(rows), False
    found: dict[str, BatchOutcome] = {}
    with gx_session(db, temp_table=temp_table) as gx:
        for suite in suites:
            found |= _run_suite(gx, db, suite, tables[suite.table], queries[suite.table])
    for e in suites[1].proof():
        if e.type == _UNASSIGNED_SHARE:
            share = unassigned_share(e, {}, coverage or event_coverage(db, queries))
            if share is not None:
                found[e.key] = share
    outcomes = tuple(
        expectation_outcome(e, found[e.key])
        for s in suites
        for e in s.expectations
        if e.key in found
    )
    return ValidationReport(
        outcomes,
        count_rows(db, queries),
        {t: dict(c) for t, c in (quarantine or {}).items()},
        {"validated": 0, "reused": 0},
    )


def check_experiment_sql(
    db: Database,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    temp_table: bool = True,
) -> tuple[SqlQuarantine, ValidationReport]:
    """:func:`~analysis.sql.quarantine.quarantine_sql`, then :func:`validate_sql` with its
    counts (one ``now``, one database handle)."""
    now = now or dt.datetime.now(dt.UTC)
    held = quarantine_sql(db, experiment, as_of, now=now, suite_dir=suite_dir)
    # The rows the quarantine keeps on the run's connection are the ones GX checks.
    rows = held.read_rows() if db.connection is not None else None
    report = validate_sql(
        db,
        experiment,
        as_of,
        now=now,
        coverage=coverage,
        quarantine=held.counts,
        suite_dir=suite_dir,
        temp_table=temp_table,
        rows=rows,
    )
    return held, report


def validate_unit_metrics_sql(
    db: Database,
    query: str,
    experiment: Experiment,
    metrics: Sequence[Metric],
    assigned_units: int,
    *,
    as_of: dt.date,
    now: dt.datetime,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> ValidationReport:
    """The per-unit metric table, computed by ``query`` inside the database, against
    ``unit_metrics.json``: the SQL twin of
    :func:`analysis.validation.tables.validate_unit_metrics`.

    ``query`` is :func:`analysis.sql.aggregate_checks.unit_metrics_query` in the
    database's dialect; only its counts and a few example units come back.
    GX materialises it once, unless it reads a table the run keeps on the
    connection ``db`` carries (then GX runs on that connection, see :class:`GxSql`).
    """
    params = run_params(experiment, as_of, now, metrics=metrics, assigned_units=assigned_units)
    suite = load_suite("unit_metrics", params, suite_dir)
    found: dict[str, BatchOutcome] = {}
    on_query: list[Expectation] = []
    for e in suite.gx():
        if e.type in _AS_WRITTEN:
            on_query.append(_sql_expectation(e, {}))
        else:
            found[e.key] = BatchOutcome(
                e.key, False, error=f"cannot run inside the database: {e.type} is not translated"
            )
    with gx_session(db, temp_table=db.share is None) as gx:
        asset = gx.rows.add_query_asset("unit_metrics_rows", query=query)
        for outcome in gx.validate(asset, on_query, suite.index_columns):
            found[outcome.key] = outcome
    rows = max((o.element_count or 0 for o in found.values()), default=0)
    outcomes = tuple(
        expectation_outcome(e, found[e.key]) for e in suite.expectations if e.key in found
    )
    return ValidationReport(outcomes, {"unit_metrics": rows})
