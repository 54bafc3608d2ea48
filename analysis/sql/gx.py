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
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlglot import exp

from analysis.config.experiments import Experiment
from analysis.partitions.batches import MAX_EXAMPLES, BatchOutcome
from analysis.quarantine import TABLES
from analysis.sources.coverage import EventCoverage
from analysis.sources.errors import SourceError
from analysis.sql.database import Database, SqlTable, why
from analysis.sql.expressions import column, finite
from analysis.sql.quarantine import SqlQuarantine, quarantine_sql
from analysis.sql.rows import count_rows, event_coverage, experiment_queries
from analysis.suites.conditions import parse_condition
from analysis.suites.load import DEFAULT_SUITE_DIR, Expectation, Suite, SuiteError, load_suite
from analysis.suites.params import experiment_period, run_params
from analysis.validation.gx import batch_outcome, raw_alias
from analysis.validation.tables import expectation_outcome, unassigned_share
from analysis.validation_report import ValidationReport

__all__ = ["check_experiment_sql", "validate_sql"]

_QUIET_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")
_TYPE_CHECK = "expect_column_values_to_be_of_type"
_UNASSIGNED_SHARE = "expect_unassigned_event_share_to_be_at_most"
#: Expectation types GX runs on PostgreSQL as they are written in the suites
#: (checked against the polars path by tests/test_validation_sql.py).
_AS_WRITTEN = frozenset(
    {
        "expect_table_row_count_to_be_between",
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

    On DuckDB the catalog type :func:`~analysis.sql.database.reflect` read is
    compared here: GX would reflect the table through duckdb-engine's
    PostgreSQL inspector, which DuckDB cannot answer (``pg_collation``).
    """
    types = db.types
    catalog_through_gx = db.dialect != "duckdb"
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


@contextmanager
def _buffered_results() -> Iterator[None]:
    """GX's SQL engine reading every result before it gives its connection back.

    ``SqlAlchemyExecutionEngine.execute_query`` returns the cursor after the
    ``with`` block has returned the connection to the pool; PostgreSQL's
    driver has the rows already, DuckDB's reads them lazily and finds the
    result gone, so every metric came back empty and every check silently
    passed or failed. Buffering (``Result.freeze``) inside the block fixes
    it. Patched only while a DuckDB validation runs (the flows hold one GX
    lock), and only if GX still has the method.
    """
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    cls = engine.SqlAlchemyExecutionEngine
    original = getattr(cls, "execute_query", None)
    if original is None:
        yield
        return

    def execute_query(self: Any, query: Any) -> Any:
        with self.get_connection() as connection:
            result = self._execute_query_with_recovery(connection, query)
            return result.freeze()() if result.returns_rows else result

    setattr(cls, "execute_query", execute_query)  # noqa: B010 (a method, on purpose)
    try:
        yield
    finally:
        setattr(cls, "execute_query", original)  # noqa: B010


class _GxSql:
    """One ephemeral GX context with two data sources on the database.

    ``rows`` materialises a query asset once into a temporary table
    (``create_temp_table``): GX otherwise runs the query again for every metric,
    and reads all of its rows to learn the column names. ``catalog`` reads base
    tables' column types and never copies them.
    """

    def __init__(self, db: Database, *, temp_table: bool = True) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        sources = self.context.data_sources
        if db.dialect == "duckdb":
            kwargs = {"connect_args": dict(db.connect_args)}  # create_engine's
            add_sql: Any = sources.add_sql  # its stub omits ``kwargs``
            self.rows = add_sql(
                f"proof_{db.source}_rows", connection_string=db.url,
                create_temp_table=temp_table, kwargs=kwargs,
            )  # fmt: skip
            self.catalog = add_sql(
                f"proof_{db.source}_catalog", connection_string=db.url,
                create_temp_table=False, kwargs=kwargs,
            )  # fmt: skip
            return
        self.rows = sources.add_postgres(
            f"proof_{db.source}_rows", connection_string=db.url, create_temp_table=temp_table
        )
        self.catalog = sources.add_postgres(
            f"proof_{db.source}_catalog", connection_string=db.url, create_temp_table=False
        )

    def close(self) -> None:
        """Close GX's pooled connections (its temporary tables go with them)."""
        for source in (self.rows, self.catalog):
            source.get_execution_engine().close()
            source.get_engine().dispose()

    def validate(
        self,
        asset: Any,
        expectations: Sequence[Expectation],
        index: Sequence[str],
        aliases: Mapping[str, str] | None = None,
    ) -> list[BatchOutcome]:
        if not expectations:
            return []
        from great_expectations.core import ExpectationSuite
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )
        from great_expectations.validator.v1_validator import Validator

        suite = ExpectationSuite(
            name=f"proof_{asset.name}",
            expectations=[ExpectationConfiguration(**e.gx_config()) for e in expectations],
        )
        result_format: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": MAX_EXAMPLES,
        }
        if index:
            result_format["unexpected_index_column_names"] = list(index)
        # One batch per validation: Batch.validate would load (and materialise) it twice.
        definition = asset.add_batch_definition_whole_table("batch")
        validator = Validator(batch_definition=definition, result_format=result_format)
        result = validator.validate_expectation_suite(suite)
        return [
            batch_outcome(r, index, None, aliases) for r in result.results if r.expectation_config
        ]


def _run_suite(
    gx: _GxSql, db: Database, suite: Suite, table: SqlTable, query: exp.Select
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
) -> ValidationReport:
    """Validate one experiment's raw assignments and events inside the database.

    The SQL twin of :func:`analysis.validation.experiment.validate_experiment` (same
    suites, same outcomes, same report): one GX run per table over the
    experiment's rows, no partitions and no cache. ``coverage`` feeds the
    unassigned-event share (without it, it is counted over the experiment's
    rows, as the polars path does); ``quarantine`` (``SqlQuarantine.counts``)
    is carried into the summary. ``temp_table=False`` for a database where
    the user may not create temporary tables (a read-only standby): GX then
    runs the experiment's query again for every metric (slower).
    """
    now = now or dt.datetime.now(dt.UTC)
    params = run_params(experiment, as_of, now)
    suites = [load_suite(t, params, suite_dir) for t in TABLES]
    tables = db.tables
    queries = experiment_queries(tables, experiment.id, experiment_period(experiment, as_of))
    found: dict[str, BatchOutcome] = {}
    try:
        with warnings.catch_warnings():
            # GX and its dependencies emit deprecation noise on import and use.
            warnings.simplefilter("ignore")
            with _buffered_results() if db.dialect == "duckdb" else nullcontext():
                gx = _GxSql(db, temp_table=temp_table)
                try:
                    for suite in suites:
                        found |= _run_suite(
                            gx, db, suite, tables[suite.table], queries[suite.table]
                        )
                finally:
                    gx.close()
    except SourceError:
        raise
    except Exception as exc:  # GX wraps driver errors in many types; never show the URI
        raise SourceError(
            f"source {db.source!r}: validation inside the database failed ({why(exc, db.uri)})"
        ) from None
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
    report = validate_sql(
        db,
        experiment,
        as_of,
        now=now,
        coverage=coverage,
        quarantine=held.counts,
        suite_dir=suite_dir,
        temp_table=temp_table,
    )
    return held, report
