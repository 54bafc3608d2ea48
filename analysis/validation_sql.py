"""Validation and quarantine inside PostgreSQL, for ``kind: sql`` sources.

The polars path (:mod:`analysis.validation`, :mod:`analysis.quarantine`) reads
every row of an experiment into polars and hands pandas copies to GX. For a SQL
source this module runs the same suites where the data lives:

- :func:`validate_sql` runs ``expectations/<table>.json`` (filled by
  :func:`analysis.suites.run_params`) with GX's SQL engine over two query assets,
  the experiment's assignments (``WHERE experiment_id = …``) and the events of
  its units, each with the source's columns **renamed to the contract's names**
  in the query (``SELECT "user_id" AS "unit_id" …``). The expectations therefore
  run with their kwargs unchanged, except for two translations GX's SQL engine
  needs: a ``row_condition`` becomes GX's structured condition (the pandas
  parser is refused by the SQL engine), and a type check runs as
  ``expect_column_values_to_be_in_type_list`` on a table asset of the base table
  (a query asset has no column types) with the PostgreSQL types Proof's reader
  accepts for the contract type. It returns the :class:`ValidationReport` of the
  polars path, so ``format_summary`` and the report page are unchanged. An
  expectation this module cannot translate is reported as failed, with an
  ``error`` saying why, never skipped.
- :func:`quarantine_sql` labels every row with the first quarantine reason that
  applies — the row-level rules of the suites, translated to SQL by sqlglot (the
  same semantics as :func:`analysis.suites.failing_rows`), then crossovers,
  duplicate assignments, the events of crossed-over and quarantined units and
  duplicate event ids, as :func:`analysis.quarantine.split` does — and returns
  only the quarantined rows (as polars frames, with ``reason``) and the counts.
- :func:`passing_predicate` is the SQL condition "passes every row-level rule",
  for a push-down analysis; :func:`labelled_query` is the query of every row
  with its reason (NULL for a used row), the group rules included.

Every identifier is quoted and every literal built by sqlglot: no input is
pasted into SQL text. Errors name the source and never the URI's credentials.
PostgreSQL only (the driver is psycopg 3: ``postgresql+psycopg://``).
"""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl
import sqlalchemy as sa
from sqlglot import exp

from analysis import schema
from analysis.config import DuckDBSource, Experiment, SqlSource
from analysis.partitions import MAX_EXAMPLES, BatchOutcome
from analysis.quarantine import (
    CROSSOVER,
    DUPLICATE_ASSIGNMENT,
    DUPLICATE_EVENT_ID,
    REASON,
    TABLES,
    UNIT_ASSIGNMENT_QUARANTINED,
    UNIT_CROSSED_OVER,
    QuarantineResult,
)
from analysis.sources import (
    EventCoverage,
    SourceError,
    SourceSchemaError,
    check_reachable,
    conform,
    connect_duckdb,
    redact,
    sql_uri,
    without_nested_loops,
)
from analysis.suites import (
    DEFAULT_SUITE_DIR,
    Expectation,
    Suite,
    SuiteError,
    experiment_period,
    load_suite,
    parse_condition,
    run_params,
)
from analysis.validation import (
    ValidationReport,
    batch_outcome,
    expectation_outcome,
    raw_alias,
    unassigned_share,
)

__all__ = [
    "DIALECT",
    "DUCKDB_TYPES",
    "PG_TYPES",
    "Database",
    "SqlQuarantine",
    "SqlTable",
    "check_experiment_sql",
    "check_source",
    "database",
    "experiment_queries",
    "failing_predicate",
    "kept_rows",
    "labelled_query",
    "passing_predicate",
    "quarantine_sql",
    "reflect",
    "sqlalchemy_url",
    "used_rows",
    "validate_sql",
    "validates_in_database",
]

log = logging.getLogger(__name__)

DIALECT = "postgres"
_QUIET_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")
_WORK = "__proof_reason"
_UNIT_KEY = "__proof_unit"  # the experiment's distinct units, joined to its events
_UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
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

#: PostgreSQL types (as GX reports the catalog's, upper case) that Proof's
#: reader converts to each contract type without guessing (``sources.conform``).
#: A length or precision (``VARCHAR(20)``, ``NUMERIC(10, 2)``) is accepted too.
PG_TYPES: Mapping[str, tuple[str, ...]] = {
    "str": ("TEXT", "VARCHAR", "CHARACTER VARYING", "CHAR", "CHARACTER", "BPCHAR", "NAME",
            "CITEXT"),
    "Timestamp": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"),
    "float64": ("DOUBLE PRECISION", "REAL", "SMALLINT", "INTEGER", "BIGINT", "NUMERIC",
                "DECIMAL"),
}  # fmt: skip
#: DuckDB types (as GX reports them, upper case) that Proof's reader converts
#: to each contract type (``sources.conform``: integers to float, enums to text).
DUCKDB_TYPES: Mapping[str, tuple[str, ...]] = {
    "str": ("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "ENUM"),
    "Timestamp": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_TZ"),
    "float64": ("DOUBLE", "FLOAT", "REAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT",
                "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "DECIMAL",
                "NUMERIC"),
}  # fmt: skip
#: The type a column absent from the source is read as (only optional columns may be).
_NULL_TYPES: Mapping[str, str] = {"str": "TEXT", "Timestamp": "TIMESTAMPTZ", "float64": "DOUBLE"}


def _contract_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "Timestamp"
    return "float64" if isinstance(dtype, pl.Float64) else "str"


# --------------------------------------------------------------------------- the source


def sqlalchemy_url(uri: str) -> str:
    """The SQLAlchemy URL of a PostgreSQL URI, with the psycopg 3 driver.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``; a URI
    that already names psycopg is kept; any other scheme is an error.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError("not a database URI")
    base, _, driver = scheme.lower().partition("+")
    if base not in {"postgresql", "postgres"} or driver not in {"", "psycopg"}:
        raise ValueError(
            f"validation inside the database supports PostgreSQL through psycopg 3 "
            f"(postgresql://…), not {scheme}://"
        )
    return f"postgresql+psycopg://{rest}"


def _plain_uri(uri: str) -> str:
    """The URI as connectorx reads it (``postgresql://``)."""
    return "postgresql://" + uri.partition("://")[2]


@dataclass(frozen=True, slots=True)
class SqlTable:
    """One input table of a SQL source, as the database describes it.

    ``columns`` maps each output column (the contract's names, then an
    assignments table's segment dimensions) to its source column, or to None
    for an optional contract column the table does not have (read as NULL).
    ``types`` are the catalog types of the source columns (GX's spelling).
    """

    role: str
    schema: str | None
    name: str
    columns: Mapping[str, str | None]
    types: Mapping[str, str]

    def table(self) -> exp.Table:
        return exp.table_(self.name, db=self.schema, quoted=True)

    def source_column(self, column: str) -> str | None:
        return self.columns.get(column)


def _split_name(source: str, role: str, name: str) -> tuple[str | None, str]:
    parts = name.split(".")
    if len(parts) > 2 or not all(parts):
        raise SourceError(f"source {source!r}: table name {name!r} for {role!r} is not valid")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


@dataclass(frozen=True)
class Database:
    """Where a source's rows live: PostgreSQL (a ``sql`` source) or a DuckDB file.

    ``uri`` is what messages must never show (a URI with its password; the
    DuckDB path is harmless but handled the same way); ``dialect`` is
    sqlglot's; ``url`` and ``connect_args`` are SQLAlchemy's (psycopg 3, or
    duckdb-engine reading the file read-only).
    """

    source: str
    uri: str
    dialect: str
    url: str
    connect_args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def types(self) -> Mapping[str, tuple[str, ...]]:
        return DUCKDB_TYPES if self.dialect == "duckdb" else PG_TYPES

    def fetch(self, sql: str) -> pl.DataFrame:
        """Run one query; the rows come back as a polars frame (never the URI in errors)."""
        try:
            if self.dialect != "duckdb":
                uri = without_nested_loops(_plain_uri(self.uri))
                return pl.read_database_uri(sql, uri, engine="connectorx")
            # Through duckdb-engine, so that the file is opened with the configuration
            # GX's engine uses: DuckDB refuses two configurations of one file at once.
            engine = sa.create_engine(
                self.url, poolclass=sa.pool.NullPool, connect_args=dict(self.connect_args)
            )
            try:
                with engine.connect() as con:
                    raw: Any = con.connection.driver_connection
                    raw.execute("SET TimeZone='UTC'")
                    return cast(pl.DataFrame, raw.sql(sql).pl())
            finally:
                engine.dispose()
        except Exception as exc:  # the drivers raise many types; say which, never the URI
            raise SourceError(
                f"source {self.source!r}: query failed inside the database ({_why(exc, self.uri)})"
            ) from None


def database(source: str, src: SqlSource | DuckDBSource) -> Database:
    """The database of ``src``: an unset variable, a URI that is not PostgreSQL or a
    missing DuckDB file is a :class:`SourceError` naming the source."""
    if isinstance(src, DuckDBSource):
        connect_duckdb(source, src).close()  # names a missing or unreadable file
        path = str(Path(src.path).resolve())
        # One configuration for every connection (GX's and Proof's): DuckDB refuses
        # a second configuration of a file that is open in the process.
        limit = {"config": {"memory_limit": src.memory_limit}} if src.memory_limit else {}
        return Database(source, path, "duckdb", f"duckdb:///{path}", {"read_only": True, **limit})
    uri = sql_uri(source, src)
    try:
        url = sqlalchemy_url(uri)
    except ValueError as exc:
        raise SourceError(f"source {source!r}: {exc}") from None
    return Database(source, uri, DIALECT, url)


@contextmanager
def _engine(db: Database) -> Iterator[sa.Engine]:
    """A SQLAlchemy engine; fails fast, naming host and port, when nothing answers."""
    if db.dialect != "duckdb":
        check_reachable(db.source, db.uri)
    try:
        engine = sa.create_engine(
            db.url, poolclass=sa.pool.NullPool, connect_args=dict(db.connect_args)
        )
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(
            f"source {db.source!r}: cannot connect to the database ({_why(exc, db.uri)})"
        ) from None
    try:
        yield engine
    finally:
        engine.dispose()


def _why(exc: BaseException, uri: str) -> str:
    """The driver's own message, first line, without the URI or a password."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    first = text[0] if text else type(inner).__name__
    return f"{type(inner).__name__}: {redact(first, uri)}"


def _catalog_types(engine: sa.Engine, table: str, schema_name: str | None) -> dict[str, str]:
    """Column name -> catalog type (upper case) of one table.

    DuckDB is asked through ``information_schema``: duckdb-engine's inspector
    is PostgreSQL's, whose column query reads ``pg_collation``, which DuckDB
    does not have.
    """
    if engine.dialect.name != "duckdb":
        found = sa.inspect(engine).get_columns(table, schema=schema_name)
        return {
            str(c["name"]): str(c["type"].compile(dialect=engine.dialect)).upper() for c in found
        }
    query = sa.text(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = :table AND table_schema = COALESCE(:schema, current_schema()) "
        "ORDER BY ordinal_position"
    )
    with engine.connect() as con:
        rows = con.execute(query, {"table": table, "schema": schema_name}).all()
    if not rows:
        raise sa.exc.NoSuchTableError(table)
    return {str(n): str(t).upper() for n, t in rows}


def reflect(source: str, src: SqlSource | DuckDBSource, engine: sa.Engine) -> dict[str, SqlTable]:
    """Both tables of ``src`` as the catalog describes them; a missing one is an error.

    A missing table raises :class:`SourceError` naming it; a missing required
    column raises :class:`SourceSchemaError`, as the polars reader would.
    """
    described: dict[str, SqlTable] = {}
    for role, name in (("assignments", src.assignments), ("events", src.events)):
        db, table = _split_name(source, role, name)
        try:
            types = _catalog_types(engine, table, db)
        except sa.exc.NoSuchTableError:
            raise SourceError(
                f"source {source!r}: table {name!r} (the {role} table) does not exist"
            ) from None
        except sa.exc.SQLAlchemyError as exc:
            raise SourceError(
                f"source {source!r}: cannot read table {name!r} (the {role} table): "
                f"{_why(exc, str(engine.url))}"
            ) from None
        columns: dict[str, str | None] = {}
        for column, dtype in schema.TABLES[role].items():
            mapped = src.columns.get(column, column)
            if mapped in types:
                columns[column] = mapped
            elif column in schema.OPTIONAL_COLUMNS[role]:
                columns[column] = None
            else:
                via = f" (mapped from {mapped!r})" if mapped != column else ""
                raise SourceSchemaError(
                    source, role, column + via, str(dtype),
                    f"no such column; has: {', '.join(types)}",
                )  # fmt: skip
        if role == "assignments":
            taken = set(columns) | {s for s in columns.values() if s}
            columns |= {c: c for c in types if c not in taken}
        described[role] = SqlTable(role, db, table, columns, types)
    return described


def _select(table: SqlTable) -> exp.Select:
    """Every column of ``table`` under its contract name (absent optional ones as NULL)."""
    contract = schema.TABLES[table.role]
    items: list[exp.Expr] = []
    for column, source in table.columns.items():
        if source is None:
            null_type = _NULL_TYPES[_contract_type(contract[column])]
            value: exp.Expr = exp.cast(exp.null(), exp.DataType.build(null_type))
        else:
            value = exp.column(source, quoted=True)
        items.append(exp.alias_(value, column, quoted=True))
    return exp.select(*items).from_(table.table())


def experiment_queries(
    tables: Mapping[str, SqlTable],
    experiment_id: str,
    null_units: tuple[dt.datetime, dt.datetime] | None = None,
) -> dict[str, exp.Select]:
    """The experiment's assignments and the events of its units, columns renamed.

    The same rows as :func:`analysis.sources.read_experiment` reads: assignments
    ``WHERE experiment_id = <id>``, events whose unit is in one of those rows,
    and with ``null_units`` (``suites.experiment_period``) the events without a
    unit whose ``ts`` is in that period (one scan: a left join to the distinct
    units, since an ``IN`` inside an ``OR`` would not be planned as a join).
    """
    a, e = tables["assignments"], tables["events"]
    exp_col = exp.column(a.source_column("experiment_id") or "experiment_id", quoted=True)
    unit_a = exp.column(a.source_column("unit_id") or "unit_id", quoted=True)
    unit_e = exp.column(e.source_column("unit_id") or "unit_id", quoted=True)
    of_experiment = exp_col.eq(exp.Literal.string(experiment_id))
    assignments = _select(a).where(of_experiment)
    if null_units is None:
        units = exp.select(unit_a).from_(a.table()).where(of_experiment)
        return {"assignments": assignments, "events": _select(e).where(unit_e.isin(query=units))}
    key = exp.column(_UNIT_KEY, table="__proof_units", quoted=True)
    units = (
        exp.select(exp.alias_(unit_a, _UNIT_KEY, quoted=True))
        .distinct()
        .from_(a.table())
        .where(of_experiment)
    )
    ts_e = exp.column(e.source_column("ts") or "ts", quoted=True)
    since, until = null_units
    unitless = exp.and_(unit_e.is_(exp.null()), ts_e >= _literal(since), ts_e < _literal(until))
    events = (
        _select(e)
        .join(units.subquery("__proof_units"), on=unit_e.eq(key), join_type="left")
        .where(exp.or_(exp.not_(key.is_(exp.null())), exp.paren(unitless)))
    )
    return {"assignments": assignments, "events": events}


# --------------------------------------------------------------------------- row rules as SQL


def _literal(value: Any) -> exp.Expr:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise SuiteError(f"timezone-naive bound {value.isoformat()} in a rule")
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("TIMESTAMPTZ"))
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise SuiteError(f"no SQL literal for {value!r}")


def _col(name: str, columns: Mapping[str, str], table: str | None) -> exp.Column:
    return exp.column(columns.get(name, name), table=table, quoted=True)


def _false_if_null(predicate: exp.Expr) -> exp.Expr:
    return exp.func("COALESCE", exp.paren(predicate), exp.false())


def _finite(column: exp.Expr) -> exp.Expr:
    """TRUE for a finite number, FALSE for NaN, +inf and -inf, NULL for NULL.

    PostgreSQL and DuckDB order NaN above every number, +inf included.
    """
    infinity = [exp.cast(exp.Literal.string(v), exp.DataType.build("DOUBLE"))
                for v in ("-Infinity", "Infinity")]  # fmt: skip
    return exp.and_(
        exp.GT(this=column.copy(), expression=infinity[0]),
        exp.LT(this=column.copy(), expression=infinity[1]),
    )


def failing_predicate(
    expectation: Expectation, columns: Mapping[str, str] | None = None, table: str | None = None
) -> exp.Expr:
    """SQL that is TRUE (never NULL) for the rows breaking a per-row rule.

    The translation of :func:`analysis.suites.failing_rows` (nulls pass a
    range or a set, and so do NaN and ±inf for a ``finite_only`` rule; a
    ``row_condition`` that is NULL does not apply). A ``non_finite`` rule is
    the range of the finite floats, which NaN breaks as in polars.
    ``columns`` maps contract names to source names (the source's ``columns:``),
    ``table`` qualifies them.
    """
    names = columns or {}
    column = expectation.kwargs.get("column")
    if column is None or expectation.type in _UNIQUENESS:
        raise SuiteError(f"{expectation.key}: {expectation.type} is not a per-row rule")
    col = _col(str(column), names, table)
    when: exp.Expr = exp.true()
    if expectation.condition is not None:
        on, value = parse_condition(expectation.condition)
        when = _false_if_null(_col(on, names, table).eq(exp.Literal.string(value)))
    kind = expectation.type
    if kind == "expect_column_values_to_not_be_null":
        return exp.and_(col.is_(exp.null()), when)
    present: exp.Expr = exp.not_(col.is_(exp.null()))
    if expectation.finite_only:
        present = exp.and_(present, _false_if_null(_finite(col)))
    if kind == "expect_column_values_to_be_in_set":
        allowed = [col.eq(_literal(v)) for v in expectation.kwargs["value_set"]]
        inside = exp.or_(*allowed) if allowed else exp.false()
        return exp.and_(present, exp.not_(_false_if_null(inside)), when)
    if kind == "expect_column_values_to_be_between":
        low, high = expectation.kwargs.get("min_value"), expectation.kwargs.get("max_value")
        outside: list[exp.Expr] = []
        if low is not None:
            strict = bool(expectation.kwargs.get("strict_min"))
            outside.append(exp.LTE(this=col, expression=_literal(low)) if strict else
                           exp.LT(this=col, expression=_literal(low)))  # fmt: skip
        if high is not None:
            strict = bool(expectation.kwargs.get("strict_max"))
            outside.append(exp.GTE(this=col, expression=_literal(high)) if strict else
                           exp.GT(this=col, expression=_literal(high)))  # fmt: skip
        if not outside:
            return exp.false()
        return exp.and_(present, _false_if_null(exp.or_(*outside)), when)
    raise SuiteError(f"{expectation.key}: no SQL translation of {kind}")


def _row_rules(suite: Suite) -> list[Expectation]:
    return [e for e in suite.row_level() if e.type not in _UNIQUENESS]


def _reason_case(
    suite: Suite, columns: Mapping[str, str] | None = None, table: str | None = None
) -> exp.Expr:
    """The first row-level reason that applies (suite order), else NULL."""
    rules = _row_rules(suite)
    if not rules:
        return exp.cast(exp.null(), exp.DataType.build("TEXT"))
    case = exp.Case()
    for e in rules:
        case = case.when(failing_predicate(e, columns, table), exp.Literal.string(str(e.reason)))
    return case


def passing_predicate(
    suite: Suite, columns: Mapping[str, str] | None = None, table: str | None = None
) -> exp.Expr:
    """SQL that is TRUE for the rows that pass every row-level rule of ``suite``.

    A push-down analysis adds it to its WHERE (``.sql(dialect="postgres")``).
    Group rules (crossovers, duplicates) are not in it: :func:`labelled_query`
    has them.
    """
    fails = [failing_predicate(e, columns, table) for e in _row_rules(suite)]
    return exp.not_(exp.paren(exp.or_(*fails))) if fails else exp.true()


# --------------------------------------------------------------------------- group rules


def _c(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _str_order(name: str, dtype: pl.DataType | None) -> exp.Expr:
    """Sort key of a column as polars orders it: text by bytes (COLLATE "C")."""
    column = _c(name)
    if dtype is None or isinstance(dtype, pl.String):
        return exp.Collate(this=column, expression=exp.Identifier(this="C", quoted=True))
    return column


def _extra_copies(
    prefix: str,
    source: str,
    columns: Sequence[str],
    candidate: exp.Expr,
    key: str,
    order: Sequence[str],
    reason: str,
) -> list[tuple[str, exp.Expr]]:
    """CTEs labelling the copies beyond the first of each repeated ``key`` among candidates.

    The first copy is the one ``quarantine._extra_copies`` keeps: by ``order``,
    text by bytes (``COLLATE "C"``), nulls last. Only the rows of repeated keys
    are sorted (a hash aggregate finds them); ``<prefix>_final`` holds every row.
    """
    contract = {**schema.TABLES["assignments"], **schema.TABLES["events"]}
    repeated = f"{prefix}_repeated"
    keys = (
        exp.select(_c(key))
        .from_(source)
        .where(candidate.copy())
        .group_by(_c(key))
        .having(exp.Count(this=exp.Star()) > 1)
    )
    in_repeated = exp.and_(
        candidate.copy(), _c(key).isin(query=exp.select(_c(key)).from_(repeated))
    )
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[_c(key)],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=_str_order(c, contract.get(c)), nulls_first=False) for c in order
            ]
        ),
    )
    rest = (
        exp.select(*[_c(c) for c in columns], _c(_WORK))
        .from_(source)
        .where(exp.not_(_false_if_null(in_repeated.copy())))
    )
    copies = (
        exp.select(
            *[_c(c) for c in columns],
            exp.alias_(exp.Case().when(rank > 1, exp.Literal.string(reason)), _WORK),
        )
        .from_(source)
        .where(in_repeated)
    )
    return [(repeated, keys), (f"{prefix}_final", exp.union(rest, copies, distinct=False))]


def _labelled(
    tables: Mapping[str, SqlTable],
    suites: Mapping[str, Suite],
    experiment: Experiment,
    as_of: dt.date,
) -> dict[str, exp.Select]:
    """Every row of each table with ``__proof_reason`` (NULL: used), as quarantine.split."""
    queries = experiment_queries(tables, experiment.id, experiment_period(experiment, as_of))
    end = _literal(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC))
    a_cols = list(tables["assignments"].columns)
    e_cols = list(tables["events"].columns)

    def star(columns: Sequence[str]) -> list[exp.Expr]:
        return [_c(c) for c in columns]

    in_time = exp.and_(exp.not_(_c("assigned_at").is_(exp.null())), _c("assigned_at") < end)
    a_rules = exp.select(*star(a_cols), exp.alias_(_reason_case(suites["assignments"]), _WORK))
    crossed = (
        exp.select(_c("unit_id"))
        .from_("a_raw")
        .where(
            exp.and_(
                exp.not_(_c("unit_id").is_(exp.null())),
                exp.not_(_c("variant").is_(exp.null())),
                in_time,
            )
        )
        .group_by(_c("unit_id"))
        .having(exp.Count(this=exp.Distinct(expressions=[_c("variant")])) > 1)
    )
    in_crossed = _c("unit_id").isin(query=exp.select(_c("unit_id")).from_("crossed"))
    a_cross = exp.select(
        *star(a_cols),
        exp.alias_(
            exp.func(
                "COALESCE",
                _c(_WORK),
                exp.Case().when(in_crossed, exp.Literal.string(CROSSOVER)),
            ),
            _WORK,
        ),
    ).from_("a_rules")
    others = [c for c in a_cols if c not in ("unit_id", "assigned_at")]
    ctes: list[tuple[str, exp.Expr]] = [
        ("a_raw", queries["assignments"]),
        ("a_rules", a_rules.from_("a_raw")),
        ("crossed", crossed),
        ("a_cross", a_cross),
        *_extra_copies(
            "a",
            "a_cross",
            a_cols,
            exp.and_(_c(_WORK).is_(exp.null()), in_time),
            "unit_id",
            ["assigned_at", *others],
            DUPLICATE_ASSIGNMENT,
        ),
    ]
    units = exp.not_(_c("unit_id").is_(exp.null()))
    kept = (
        exp.select(_c("unit_id")).from_("a_final").where(exp.and_(_c(_WORK).is_(exp.null()), units))
    )
    lost = (
        exp.select(_c("unit_id"))
        .from_("a_final")
        .where(
            exp.and_(
                units,
                exp.not_(_c("unit_id").isin(query=kept)),
                exp.not_(in_crossed),
            )
        )
    )
    e_reason = exp.func(
        "COALESCE",
        _reason_case(suites["events"]),
        exp.Case()
        .when(in_crossed, exp.Literal.string(UNIT_CROSSED_OVER))
        .when(
            _c("unit_id").isin(query=exp.select(_c("unit_id")).from_("lost")),
            exp.Literal.string(UNIT_ASSIGNMENT_QUARANTINED),
        ),
    )
    e_rules = exp.select(*star(e_cols), exp.alias_(e_reason, _WORK)).from_("e_raw")
    e_candidate = exp.and_(_c(_WORK).is_(exp.null()), exp.not_(_c("event_id").is_(exp.null())))
    e_others = [c for c in e_cols if c not in ("event_id", "ts")]
    e_ctes = [
        *ctes,
        ("lost", lost),
        ("e_raw", queries["events"]),
        ("e_rules", e_rules),
        *_extra_copies(
            "e", "e_rules", e_cols, e_candidate, "event_id", ["ts", *e_others], DUPLICATE_EVENT_ID
        ),
    ]
    return {
        "assignments": _with(ctes, exp.select(exp.Star()).from_("a_final")),
        "events": _with(e_ctes, exp.select(exp.Star()).from_("e_final")),
        "crossed": _with(ctes, exp.select(exp.Count(this=exp.Star())).from_("crossed")),
    }


def _with(ctes: Sequence[tuple[str, exp.Expr]], body: exp.Select) -> exp.Select:
    for name, query in ctes:
        body = body.with_(name, as_=query)
    return body


def labelled_query(
    source: str,
    src: SqlSource | DuckDBSource,
    experiment: Experiment,
    as_of: dt.date,
    table: str,
    *,
    now: dt.datetime,
    engine: sa.Engine,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> exp.Select:
    """Every row of ``table`` (contract names) with ``__proof_reason``: NULL for a used row.

    ``WHERE "__proof_reason" IS NULL`` gives exactly the rows
    :func:`analysis.quarantine.split` uses, group rules included.
    """
    params = run_params(experiment, as_of, now)
    suites = {t: load_suite(t, params, suite_dir) for t in TABLES}
    return _labelled(reflect(source, src, engine), suites, experiment, as_of)[table]


def used_rows(
    source: str,
    src: SqlSource | DuckDBSource,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> dict[str, exp.Select]:
    """The rows :func:`analysis.quarantine.split` uses, per table, as queries.

    :func:`labelled_query` ``WHERE "__proof_reason" IS NULL``, without the
    reason column: the contract's column names (an assignments table's other
    columns under their own names). ``now`` must be the ``now`` the
    quarantine ran with (it bounds ``ts_in_future``).
    """
    params = run_params(experiment, as_of, now)
    suites = {t: load_suite(t, params, suite_dir) for t in TABLES}
    with _engine(database(source, src)) as engine:
        tables = reflect(source, src, engine)
    labelled = _labelled(tables, suites, experiment, as_of)
    return {
        table: exp.select(*[_c(c) for c in tables[table].columns])
        .from_(labelled[table].subquery("l"))
        .where(_c(_WORK).is_(exp.null()))
        for table in TABLES
    }


def check_source(source: str, src: SqlSource | DuckDBSource) -> dict[str, SqlTable]:
    """Connect and describe both tables: an unset variable, an unreachable database,
    a missing table or a missing column is a :class:`SourceError` naming the source."""
    with _engine(database(source, src)) as engine:
        return reflect(source, src, engine)


# --------------------------------------------------------------------------- quarantine


@dataclass(frozen=True)
class SqlQuarantine:
    """What the database set aside: only the quarantined rows come back.

    ``rows[table]``: the quarantined rows, every column (contract names and
    types, an assignments table's segment dimensions) plus ``reason`` (or
    ``quarantine_reason`` when the input has a ``reason`` column);
    ``counts[table]``: rows per reason; ``rows_in[table]``: rows of the experiment.
    """

    rows: Mapping[str, pl.DataFrame]
    counts: Mapping[str, Mapping[str, int]]
    rows_in: Mapping[str, int]
    crossover_units: int = 0
    queries: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def rows_quarantined(self) -> dict[str, int]:
        return {t: frame.height for t, frame in self.rows.items()}

    @property
    def quarantined(self) -> Mapping[str, pl.DataFrame]:
        """The quarantined rows per table, as ``QuarantineResult.quarantined``."""
        return self.rows


def _reason_column(columns: Sequence[str]) -> str:
    return REASON if REASON not in columns else f"quarantine_{REASON}"


def quarantine_sql(
    source: str,
    src: SqlSource | DuckDBSource,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> SqlQuarantine:
    """The quarantine of :func:`analysis.quarantine.split`, computed inside the database.

    Each row gets the first reason that applies, in the order of ``split``;
    only the quarantined rows are read back. The caller writes them with
    ``quarantine/<table>.parquet`` as today.
    """
    now = now or dt.datetime.now(dt.UTC)
    db = database(source, src)
    params = run_params(experiment, as_of, now)
    suites = {t: load_suite(t, params, suite_dir) for t in TABLES}
    with _engine(db) as engine:
        tables = reflect(source, src, engine)
        labelled = _labelled(tables, suites, experiment, as_of)
        rows: dict[str, pl.DataFrame] = {}
        counts: dict[str, dict[str, int]] = {}
        texts: dict[str, str] = {}
        for table in TABLES:
            columns = list(tables[table].columns)
            name = _reason_column(columns)
            out = (
                exp.select(*[_c(c) for c in columns], _c(_WORK))
                .from_(labelled[table].subquery("l"))
                .where(exp.not_(_c(_WORK).is_(exp.null())))
                .order_by(*[exp.Ordered(this=_c(c), nulls_first=False) for c in columns])
            )
            texts[table] = out.sql(dialect=db.dialect)
            frame = db.fetch(texts[table])
            reason = frame.get_column(_WORK).alias(name)
            conformed = conform(frame.drop(_WORK).lazy(), source, table, {}).collect()
            rows[table] = conformed.with_columns(reason)
            per_reason = reason.value_counts(sort=False)
            counts[table] = {str(r): int(n) for r, n in sorted(per_reason.iter_rows())}
        period = experiment_period(experiment, as_of)
        rows_in = _rows(db, experiment_queries(tables, experiment.id, period))
        crossed = db.fetch(labelled["crossed"].sql(dialect=db.dialect)).item()
    return SqlQuarantine(rows, counts, rows_in, int(crossed or 0), texts)


# --------------------------------------------------------------------------- GX on SQL


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
    :func:`analysis.validation.raw_alias` for the ``non_finite`` rule.
    """
    caught = {str(e.column) for e in suite.gx() if e.non_finite and e.column in table.columns}
    if not caught:
        return query, {}
    items: list[exp.Expr] = []
    for column in table.columns:
        if column in caught:
            finite = exp.Case().when(_finite(_c(column)), _c(column))
            items += [exp.alias_(finite, column, quoted=True),
                      exp.alias_(_c(column), raw_alias(column), quoted=True)]  # fmt: skip
        else:
            items.append(_c(column))
    wrapped = exp.select(*items).from_(query.subquery("__proof_rows"))
    return wrapped, {raw_alias(c): c for c in caught}


def _type_expectation(e: Expectation, table: SqlTable, db: Database) -> Expectation | BatchOutcome:
    """A contract type check as ``in_type_list`` over the base table's catalog type.

    On DuckDB the catalog type :func:`reflect` read is compared here: GX would
    reflect the table through duckdb-engine's PostgreSQL inspector, which
    DuckDB cannot answer (``pg_collation``).
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


def _coverage(db: Database, queries: Mapping[str, exp.Select]) -> EventCoverage:
    """Events of the experiment's rows whose unit no assignment row names (as the polars path)."""
    units = exp.select(_c("unit_id")).from_(queries["assignments"].subquery("a"))
    units = units.where(exp.not_(_c("unit_id").is_(exp.null())))
    orphan = exp.not_(_c("unit_id").isin(query=units))
    named = exp.not_(_c("unit_id").is_(exp.null()))
    events = queries["events"].subquery("e")
    counts = (
        exp.select(
            exp.Count(this=exp.Star()),
            exp.func("COALESCE", exp.Sum(this=exp.Case().when(orphan, exp.Literal.number(1))), 0),
        )
        .from_(events)
        .where(named)
    )
    examples = (
        exp.select(_c("unit_id"))
        .from_(queries["events"].subquery("e"))
        .where(exp.and_(named, orphan))
        .group_by(_c("unit_id"))
        .order_by(exp.Ordered(this=_str_order("unit_id", None)))
        .limit(MAX_EXAMPLES)
    )
    row = db.fetch(counts.sql(dialect=db.dialect)).row(0)
    found = db.fetch(examples.sql(dialect=db.dialect)).to_series()
    return EventCoverage(int(row[0]), int(row[1] or 0), tuple(str(u) for u in found))


def _rows(db: Database, queries: Mapping[str, exp.Select]) -> dict[str, int]:
    counts = exp.select(
        *[
            exp.alias_(exp.select(exp.Count(this=exp.Star())).from_(q.subquery("t")).subquery(), t)
            for t, q in queries.items()
        ]
    )
    row = db.fetch(counts.sql(dialect=db.dialect)).row(0)
    return {t: int(n) for t, n in zip(queries, row, strict=True)}


def validate_sql(
    source: str,
    src: SqlSource | DuckDBSource,
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

    The SQL twin of :func:`analysis.validation.validate_experiment` (same
    suites, same outcomes, same report): one GX run per table over the
    experiment's rows, no partitions and no cache. ``coverage`` feeds the
    unassigned-event share (without it, it is counted over the experiment's
    rows, as the polars path does); ``quarantine`` (``SqlQuarantine.counts``)
    is carried into the summary. ``temp_table=False`` for a database where
    the user may not create temporary tables (a read-only standby): GX then
    runs the experiment's query again for every metric (slower).
    """
    now = now or dt.datetime.now(dt.UTC)
    db = database(source, src)
    params = run_params(experiment, as_of, now)
    suites = [load_suite(t, params, suite_dir) for t in TABLES]
    with _engine(db) as engine:
        tables = reflect(source, src, engine)
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
            f"source {source!r}: validation inside the database failed ({_why(exc, db.uri)})"
        ) from None
    for e in suites[1].proof():
        if e.type == _UNASSIGNED_SHARE:
            share = unassigned_share(e, {}, coverage or _coverage(db, queries))
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
        _rows(db, queries),
        {t: dict(c) for t, c in (quarantine or {}).items()},
        {"validated": 0, "reused": 0},
    )


def check_experiment_sql(
    source: str,
    src: SqlSource | DuckDBSource,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    temp_table: bool = True,
) -> tuple[SqlQuarantine, ValidationReport]:
    """:func:`quarantine_sql`, then :func:`validate_sql` with its counts (one ``now``)."""
    now = now or dt.datetime.now(dt.UTC)
    held = quarantine_sql(source, src, experiment, as_of, now=now, suite_dir=suite_dir)
    report = validate_sql(
        source,
        src,
        experiment,
        as_of,
        now=now,
        coverage=coverage,
        quarantine=held.counts,
        suite_dir=suite_dir,
        temp_table=temp_table,
    )
    return held, report


def kept_rows(
    source: str,
    src: SqlSource | DuckDBSource,
    experiment: Experiment,
    as_of: dt.date,
    held: SqlQuarantine,
    *,
    now: dt.datetime,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> QuarantineResult:
    """The split the polars path makes, from a quarantine that ran inside the database.

    Only the rows the quarantine keeps are read (:func:`used_rows`, with the
    quarantine's ``now``), conformed to the contract's types; the quarantined
    rows, counts and rows in are ``held``'s. The result is what
    :func:`analysis.quarantine.split` returns over the same rows (tested), so
    the per-day partials and every metric run on it unchanged.
    """
    db = database(source, src)
    queries = used_rows(source, src, experiment, as_of, now=now, suite_dir=suite_dir)
    used = {
        table: conform(db.fetch(query.sql(dialect=db.dialect)).lazy(), source, table, {}).collect()
        for table, query in queries.items()
    }
    assigned = pl.concat(
        [used["assignments"].get_column("unit_id"), held.rows["assignments"].get_column("unit_id")]
    ).drop_nulls()
    unassigned = used["events"].filter(~pl.col("unit_id").is_in(assigned.implode())).height
    return QuarantineResult(
        assignments=used["assignments"],
        events=used["events"],
        quarantined=held.rows,
        counts=held.counts,
        rows_in=held.rows_in,
        crossover_units=held.crossover_units,
        unassigned_events=unassigned,
    )


def validates_in_database(source: object) -> bool:
    """Whether a run checks ``source``'s rows inside the database (push-down, or DuckDB)."""
    if isinstance(source, DuckDBSource):
        return source.validate_in_database or source.pushdown
    return isinstance(source, SqlSource) and source.pushdown
