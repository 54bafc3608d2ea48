"""Read an experiment's assignments and events from a source, in the contract's types.

Three kinds of source (contract section 4): an embedded DuckDB file, parquet or
CSV files (paths or globs), and any SQL database polars can read by URI.  Each
returns polars LazyFrames already limited to one experiment — the filter on
``experiment_id`` and the semi-join of events to the experiment's units are
pushed into the database where there is one — and conformed to the contract's
column names and types.  A missing column or a type that cannot be converted
without guessing raises :class:`SourceSchemaError` naming the table, column,
expected and found type.

A table that does not exist, an empty CSV file and a database that cannot be
reached each raise :class:`SourceError` naming the source and the table or the
cause (never the URI's credentials). :func:`event_coverage` counts the events
whose unit no assignment row names, for the validation's unassigned-share check.

The queries are sqlglot trees in the source's dialect: every identifier (the
tables, the ``columns:`` mapping) is quoted and escaped, every value a literal,
so nothing in a config is ever pasted into SQL. Failures say whether a retry can
mend them (:func:`retryable`): a database that does not answer or drops the
connection may be back in a minute (:class:`SourceUnavailableError`); a login it
refuses or a database it does not have will not (:class:`SourceAccessError`).
"""

from __future__ import annotations

import datetime as dt
import glob
import re
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import psycopg
from sqlglot import exp

from analysis import schema, settings
from analysis.config import DuckDBSource, FileSource, SqlSource

_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
#: Seconds to wait for a TCP connection to a SQL source before saying it is unreachable
#: (the drivers would retry for about 30 s; the flow's load task retries instead).
CONNECT_TIMEOUT = 3.0
_DEFAULT_PORTS: Mapping[str, int] = {
    "postgres": 5432, "postgresql": 5432, "redshift": 5439, "mysql": 3306, "mariadb": 3306,
    "mssql": 1433, "oracle": 1521, "clickhouse": 9000, "bigquery": 443,
}  # fmt: skip


class SourceError(RuntimeError):
    """A source cannot be read (missing file, unset URI, unreachable database)."""


class SourceUnavailableError(SourceError):
    """The database does not answer, or dropped the connection: a retry may succeed."""


class SourceAccessError(SourceError):
    """The database refused the login or has no such database: no retry can succeed."""


#: Driver messages of a login refused or a database that does not exist (psycopg,
#: connectorx's PostgreSQL and MySQL drivers, SQL Server): never worth a retry.
_REFUSED = re.compile(
    r"authentication failed|password authentication|no pg_hba\.conf entry"
    r"|role \S+ does not exist|database \S+ does not exist|unknown database"
    r"|access denied for user|login failed for user",
    re.IGNORECASE,
)
#: Driver messages of a database that did not answer in time, refused or dropped the
#: connection, or was restarting: worth a retry.
_TRANSIENT = re.compile(
    r"cannot reach the database|connection refused|could not connect|connection reset"
    r"|broken pipe|server closed the connection|connection (was )?closed|\btimed out\b"
    r"|\btimeout\b|terminating connection|database system is (starting up|shutting down)"
    r"|too many (connections|clients)|network is unreachable|no route to host"
    r"|temporary failure in name resolution|could not set lock|conflicting lock",
    re.IGNORECASE,
)


def retryable(exc: BaseException) -> bool:
    """Whether reading the source again may succeed where ``exc`` stopped it.

    A database that did not answer or dropped the connection: yes. A refused
    login, an unknown database, a missing table or column, a bad config: no.
    A :class:`SourceError` of another module (the push-down checks) is judged
    by the driver message it carries; an ``OSError`` that escaped the drivers
    (a reset connection) is retried; anything else is a bug and is not.
    """
    if isinstance(exc, SourceAccessError | SourceSchemaError):
        return False
    if isinstance(exc, SourceUnavailableError):
        return True
    if isinstance(exc, SourceError):
        return _transient(str(exc))
    return isinstance(exc, OSError)


def _transient(message: str) -> bool:
    return not _REFUSED.search(message) and bool(_TRANSIENT.search(message))


def _driver_error(message: str) -> type[SourceError]:
    """The class of a wrapped driver failure, from the driver's message."""
    if _REFUSED.search(message):
        return SourceAccessError
    return SourceUnavailableError if _TRANSIENT.search(message) else SourceError


class SourceSchemaError(SourceError):
    """A table of a source does not match the contract."""

    def __init__(self, source: str, table: str, column: str, expected: str, found: str) -> None:
        self.source, self.table, self.column = source, table, column
        self.expected, self.found = expected, found
        super().__init__(
            f"source {source!r}, table {table!r}, column {column!r}: "
            f"expected {expected}, found {found}"
        )


@dataclass
class Tables:
    """The two input tables of one experiment, as lazy frames in the contract's types."""

    assignments: pl.LazyFrame
    events: pl.LazyFrame
    # Keeps database connections alive as long as the lazy frames that read from them.
    _resources: list[Any] = field(default_factory=list, repr=False)


AnySource = DuckDBSource | FileSource | SqlSource
#: ``(since, until)``: the events without a unit_id with ``since <= ts < until`` are read too.
Period = tuple[dt.datetime, dt.datetime]


def read_experiment(
    name: str, source: AnySource, experiment_id: str, *, null_units: Period | None = None
) -> Tables:
    """Assignments of ``experiment_id`` and the events of its units, from ``source``.

    ``null_units`` (``suites.experiment_period``): also the events whose
    ``unit_id`` is null and whose ``ts`` is in that period, which no join to
    the units can find; the quarantine sets them aside as ``null_unit_id``.
    """
    if isinstance(source, DuckDBSource):
        tables = _read_duckdb(name, source, experiment_id, null_units)
    elif isinstance(source, FileSource):
        tables = _read_files(name, source, experiment_id, null_units)
    else:
        tables = _read_sql(name, source, experiment_id, null_units)
    return tables


def conform(lf: pl.LazyFrame, source: str, table: str, columns: Mapping[str, str]) -> pl.LazyFrame:
    """Rename mapped columns and cast to the contract's types, or fail clearly.

    Safe conversions are made (integers to float, other time zones to UTC,
    other time units to microseconds, categoricals to strings); anything that
    would need a guess — above all timezone-naive timestamps — is an error.
    """
    found_schema = lf.collect_schema()
    renames = {src: dst for dst, src in columns.items() if src in found_schema and src != dst}
    if renames:
        lf = lf.rename(renames)
        found_schema = lf.collect_schema()
    expected_schema = schema.TABLES[table]
    exprs: list[pl.Expr] = []
    for column, expected in expected_schema.items():
        if column not in found_schema:
            if column in schema.OPTIONAL_COLUMNS[table]:
                exprs.append(pl.lit(None, dtype=expected).alias(column))
                continue
            present = ", ".join(found_schema.names())
            mapped = f" (mapped from {columns[column]!r})" if column in columns else ""
            raise SourceSchemaError(
                source, table, column + mapped, str(expected), f"no such column; has: {present}"
            )
        exprs.append(_cast(pl.col(column), found_schema[column], expected, source, table, column))
    if table == "assignments":
        # Any other column is a segment dimension; dimensions are strings.
        for column, dtype in found_schema.items():
            if column not in expected_schema:
                exprs.append(
                    pl.col(column).cast(pl.String) if dtype != pl.String else pl.col(column)
                )
    return lf.select(exprs)


def _cast(
    expr: pl.Expr,
    found: pl.DataType,
    expected: pl.DataType,
    source: str,
    table: str,
    column: str,
) -> pl.Expr:
    def fail(why: str = "") -> SourceSchemaError:
        return SourceSchemaError(source, table, column, str(expected), f"{found}{why}")

    if found == expected:
        return expr
    if isinstance(expected, pl.String):
        if isinstance(found, pl.Categorical | pl.Enum | pl.Null):
            return expr.cast(pl.String)
        raise fail()
    if isinstance(expected, pl.Float64):
        if found.is_numeric() or isinstance(found, pl.Null):
            return expr.cast(pl.Float64)
        raise fail()
    if isinstance(expected, pl.Datetime):
        if isinstance(found, pl.Null):
            return expr.cast(expected)
        if isinstance(found, pl.String):
            raise fail(
                " (text that is not a timestamp: write ISO 8601 with an offset, e.g."
                " 2026-10-01T12:00:00Z; a CSV file without rows has no values to read it from)"
            )
        if not isinstance(found, pl.Datetime):
            raise fail()
        if found.time_zone is None:
            raise fail(
                " (timezone-naive timestamps: store them with a time zone, e.g. as UTC;"
                " Proof does not guess which zone they are in)"
            )
        return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    raise fail()


def _sql_table(source: str, table: str, name: str) -> exp.Table:
    """``[schema.]table`` as a quoted table; any other text is refused, naming it."""
    if not _SQL_NAME.match(name):
        raise SourceError(f"source {source!r}: table name {name!r} for {table!r} is not valid")
    *schema_name, table_name = name.split(".")
    table_expr = exp.Table(this=_ident(table_name))
    if schema_name:
        table_expr.set("db", _ident(schema_name[0]))
    return table_expr


def _sql_name(source: str, table: str, name: str, dialect: str | None = None) -> str:
    return _sql_table(source, table, name).sql(dialect=dialect)


def _ident(name: str) -> exp.Identifier:
    """A quoted identifier: the dialect's quote inside it is escaped, never ends it."""
    return exp.to_identifier(name, quoted=True)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _aliased(table: exp.Table, alias: str) -> exp.Table:
    table = table.copy()
    table.set("alias", exp.TableAlias(this=_ident(alias)))
    return table


def _timestamp(value: dt.datetime) -> exp.Cast:
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("timestamptz"))


def sql_dialect(src: AnySource, uri: str | None = None) -> str | None:
    """sqlglot's dialect for ``src``: DuckDB's, the configured one, or the URI's
    (None: sqlglot's own, ANSI quoting)."""
    if isinstance(src, DuckDBSource):
        return "duckdb"
    if isinstance(src, SqlSource) and src.dialect is not None:
        return src.dialect
    if uri is None:
        return None
    from analysis.warehouse import DIALECTS  # it imports this module

    return DIALECTS.get(urllib.parse.urlsplit(uri).scheme.split("+")[0].lower())


def _events_query(
    source: str,
    src: AnySource,
    experiment_id: str,
    null_units: Period | None = None,
    dialect: str | None = None,
) -> tuple[str, str]:
    """SQL for the experiment's assignments and for the events of its units.

    With ``null_units``, also the events without a unit in that period: one
    scan, a hash join to the experiment's distinct units (an ``IN`` inside an
    ``OR`` would not be planned as a join).
    """
    assignments = _sql_table(source, "assignments", src.assignments)
    events = _sql_table(source, "events", src.events)
    exp_name = src.columns.get("experiment_id", "experiment_id")
    unit_name = src.columns.get("unit_id", "unit_id")
    of_experiment = _col(exp_name).eq(exp.Literal.string(experiment_id))
    q_assign = exp.select(exp.Star()).from_(assignments).where(of_experiment)
    if null_units is None:
        units = exp.select(_col(unit_name)).from_(assignments.copy()).where(of_experiment.copy())
        q_events = exp.select(exp.Star()).from_(events).where(_col(unit_name).isin(query=units))
        return q_assign.sql(dialect=dialect), q_events.sql(dialect=dialect)
    since, until = null_units
    units = (
        exp.select(exp.alias_(_col(unit_name), "__proof_unit", quoted=True))
        .distinct()
        .from_(assignments.copy())
        .where(of_experiment.copy())
    )
    key = _col("__proof_unit", "u")
    unit, ts = _col(unit_name, "e"), _col(src.columns.get("ts", "ts"), "e")
    unitless = exp.and_(
        unit.is_(exp.null()), ts.copy() >= _timestamp(since), ts.copy() < _timestamp(until)
    )
    q_events = (
        exp.select(exp.Column(this=exp.Star(), table=_ident("e")))
        .from_(_aliased(events, "e"))
        .join(units.subquery(_ident("u")), on=unit.copy().eq(key), join_type="left")
        .where(exp.or_(exp.not_(key.copy().is_(exp.null())), exp.paren(unitless)))
    )
    return q_assign.sql(dialect=dialect), q_events.sql(dialect=dialect)


def connect_duckdb(name: str, src: DuckDBSource) -> duckdb.DuckDBPyConnection:
    """A read-only connection in UTC, or a SourceError that names the file."""
    path = Path(src.path)
    if not path.exists():
        raise SourceError(
            f"source {name!r}: DuckDB file {path} not found "
            "(run `proof simulate` to create demo data)"
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SET TimeZone='UTC'")
        if src.memory_limit is not None:
            con.execute("SET memory_limit = ?", [src.memory_limit])
    except duckdb.Error as exc:  # a writer's lock may be gone on a retry
        raise _driver_error(str(exc))(f"source {name!r}: {type(exc).__name__}: {exc}") from None
    return con


def sql_uri(name: str, src: SqlSource) -> str:
    """The database URI from the source's environment variable, or a SourceError naming it."""
    uri = settings.env(src.uri_env)
    if uri is None:
        raise SourceError(
            f"source {name!r}: environment variable {src.uri_env} is not set "
            "(it must hold the database URI)"
        )
    return uri


def without_nested_loops(uri: str) -> str:
    """A PostgreSQL URI whose sessions plan without nested-loop joins.

    PostgreSQL estimates one row for the quarantine's labelled relations
    (their CASE and COALESCE filters defeat its statistics, ANALYZE or not),
    then joins events to units in a nested loop that rescans the events once
    per unit: quadratic in units (68 s for 2,000 units where hash joins take
    0.4 s). Every join of these queries is an equality on ``unit_id``, which
    hash and merge joins serve. The setting travels as the libpq ``options``
    parameter, added to any the URI already has.
    """
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    given = " ".join(v for k, v in query if k == "options")
    options = f"{given} -c enable_nestloop=off".strip()
    rest = [(k, v) for k, v in query if k != "options"]
    encoded = urllib.parse.urlencode([*rest, ("options", options)], quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


def _read_duckdb(
    name: str, src: DuckDBSource, experiment_id: str, null_units: Period | None = None
) -> Tables:
    con = connect_duckdb(name, src)
    try:
        _require_duckdb_tables(con, name, src)
        q_assign, q_events = _events_query(name, src, experiment_id, null_units, "duckdb")
        # One cursor per lazy frame: a DuckDB connection serves one query at a
        # time, and a plan that reads both frames would find it busy.
        cursors = [con.cursor(), con.cursor()]
        for cursor in cursors:
            cursor.execute("SET TimeZone='UTC'")
        assignments = cursors[0].sql(q_assign).pl(lazy=True)
        events = cursors[1].sql(q_events).pl(lazy=True)
    except duckdb.Error as exc:
        raise SourceError(f"source {name!r}: {type(exc).__name__}: {exc}") from None
    return Tables(
        conform(assignments, name, "assignments", src.columns),
        conform(events, name, "events", src.columns),
        [con, *cursors],
    )


#: Columns the source queries filter or join on, per table: checked before querying.
_QUERY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "assignments": ("experiment_id", "unit_id"),
    "events": ("unit_id", "ts"),
}


def require_columns(source: str, role: str, found: list[str], columns: Mapping[str, str]) -> None:
    """A column the query needs is missing: say so as the contract check would."""
    for column in _QUERY_COLUMNS[role]:
        mapped = columns.get(column, column)
        if mapped not in found:
            via = f" (mapped from {mapped!r})" if mapped != column else ""
            raise SourceSchemaError(
                source,
                role,
                column + via,
                str(schema.TABLES[role][column]),
                f"no such column; has: {', '.join(found)}",
            )


def _require_duckdb_tables(con: duckdb.DuckDBPyConnection, name: str, src: DuckDBSource) -> None:
    """A missing table is named, with the tables the file does have; so is a key column."""
    for role, table in (("assignments", src.assignments), ("events", src.events)):
        try:
            query = f"SELECT * FROM {_sql_name(name, role, table, 'duckdb')} LIMIT 0"
            cursor = con.execute(query)
            require_columns(name, role, [d[0] for d in cursor.description or ()], src.columns)
        except duckdb.CatalogException:
            found = con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY 1, 2"
            ).fetchall()
            has = ", ".join(t if s == "main" else f"{s}.{t}" for s, t in found) or "none"
            raise SourceError(
                f"source {name!r}: table {table!r} (the {role} table) does not exist "
                f"in {src.path}; tables there: {has}"
            ) from None


def _scan(
    path: str, kind: str, source: str, table: str, columns: Mapping[str, str]
) -> pl.LazyFrame:
    is_remote = "://" in path
    if not is_remote and not glob.glob(path):
        raise SourceError(f"source {source!r}: no {kind} file matches {path} for table {table!r}")
    if kind == "parquet":
        return pl.scan_parquet(path)
    # CSV has no types: fix the non-time columns to the contract's, and let
    # timestamps be inferred, so that a value without an offset stays naive
    # (and is refused) instead of being taken for UTC.
    overrides = {
        columns.get(name, name): dtype
        for name, dtype in schema.TABLES[table].items()
        if not isinstance(dtype, pl.Datetime)
    }
    return pl.scan_csv(path, try_parse_dates=True, schema_overrides=overrides)


def _conform_scan(
    lf: pl.LazyFrame, path: str, source: str, table: str, columns: Mapping[str, str]
) -> pl.LazyFrame:
    try:
        return conform(lf, source, table, columns)
    except pl.exceptions.NoDataError:
        raise SourceError(
            f"source {source!r}: the {table} file {path} is empty (not even a header row)"
        ) from None


def _read_files(
    name: str, src: FileSource, experiment_id: str, null_units: Period | None = None
) -> Tables:
    raw_assign = _scan(src.assignments, src.kind, name, "assignments", src.columns)
    raw_events = _scan(src.events, src.kind, name, "events", src.columns)
    assignments = _conform_scan(
        raw_assign, src.assignments, name, "assignments", src.columns
    ).filter(pl.col("experiment_id") == experiment_id)
    conformed = _conform_scan(raw_events, src.events, name, "events", src.columns)
    events = conformed.join(assignments.select("unit_id").unique(), on="unit_id", how="semi")
    if null_units is not None:
        since, until = null_units
        unitless = pl.col("unit_id").is_null() & (pl.col("ts") >= since) & (pl.col("ts") < until)
        events = pl.concat([events, conformed.filter(unitless)])
    return Tables(assignments, events)


def _read_sql(
    name: str, src: SqlSource, experiment_id: str, null_units: Period | None = None
) -> Tables:
    uri = _connectable(name, src)
    dialect = sql_dialect(src, uri)
    q_assign, q_events = _events_query(name, src, experiment_id, null_units, dialect)
    try:
        assignments = pl.read_database_uri(q_assign, uri, engine="connectorx")
        events = pl.read_database_uri(q_events, uri, engine="connectorx")
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        why = redact(str(exc), uri)
        kind = _driver_error(why)
        if kind is SourceAccessError:
            raise SourceAccessError(_refused(name, src, why)) from None
        if kind is SourceError:  # not the connection: a table or a column, named if so
            _require_sql_tables(name, src, uri, dialect)
        raise kind(
            f"source {name!r}: cannot read from the database ({type(exc).__name__}: {why})"
        ) from None
    return Tables(
        conform(assignments.lazy(), name, "assignments", src.columns),
        conform(events.lazy(), name, "events", src.columns),
    )


def _connectable(name: str, src: SqlSource) -> str:
    """The source's URI, once its database answers and accepts the login."""
    uri = sql_uri(name, src)
    check_reachable(name, uri)
    check_login(name, src, uri)
    return uri


def _refused(name: str, src: SqlSource, why: str) -> str:
    """One line: the source, the database's reason, and where the URI comes from."""
    fatal = re.search(r"FATAL:\s*(.+)", why)
    reason = (fatal.group(1) if fatal else why).strip().splitlines()[0]
    return (
        f"source {name!r}: the database refused the connection: {reason} "
        f"(check the URI in {src.uri_env}; not retried)"
    )


def check_login(name: str, src: SqlSource, uri: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """PostgreSQL: fail at once when the server refuses the login or the database.

    connectorx's connection pool retries a refused login for 30 s before it
    says why, and a read makes several; one psycopg connection says it at
    once. A refusal raises :class:`SourceAccessError` (never retried), a
    connection that fails :class:`SourceUnavailableError`; any other complaint
    (a parameter only connectorx knows) is left to connectorx. Other
    databases are not checked.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.split("+")[0].lower() not in {"postgres", "postgresql"}:
        return
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    libpq = [(k, v) for k, v in query if not k.startswith("cx")]  # cxprotocol: connectorx's
    conninfo = urllib.parse.urlunsplit(
        parts._replace(scheme="postgresql", query=urllib.parse.urlencode(libpq))
    )
    try:
        psycopg.connect(conninfo, connect_timeout=max(2, round(timeout))).close()
    except psycopg.Error as exc:
        why = redact(str(exc), uri)
        kind = _driver_error(why)
        if kind is SourceAccessError:
            raise SourceAccessError(_refused(name, src, why)) from None
        if kind is SourceUnavailableError:
            first = why.strip().splitlines()[0] if why.strip() else type(exc).__name__
            raise SourceUnavailableError(
                f"source {name!r}: cannot connect to the database ({first})"
            ) from None


def check_reachable(source: str, uri: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast, naming host and port, when a database's TCP port does not answer.

    URIs without a host (SQLite files, Unix sockets) are not checked.
    """
    try:
        parts = urllib.parse.urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise SourceError(f"source {source!r}: the database URI is not valid") from None
    scheme = parts.scheme.split("+")[0].lower()
    port = port or _DEFAULT_PORTS.get(scheme)
    if not host or port is None:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        cause = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise SourceUnavailableError(
            f"source {source!r}: cannot reach the database at {host}:{port} ({cause}); "
            "is it running, and reachable from this machine?"
        ) from None


def _require_sql_tables(name: str, src: SqlSource, uri: str, dialect: str | None) -> None:
    """After a failed read: name the table that is missing, if one is, or the column."""
    for role, table in (("assignments", src.assignments), ("events", src.events)):
        try:
            empty = pl.read_database_uri(
                f"SELECT * FROM {_sql_name(name, role, table, dialect)} WHERE 1 = 0",
                uri,
                engine="connectorx",
            )
        except Exception as exc:  # which table fails is all we want to know
            raise SourceError(
                f"source {name!r}: cannot read table {table!r} (the {role} table): "
                f"{type(exc).__name__}: {redact(str(exc), uri)}"
            ) from None
        require_columns(name, role, empty.columns, src.columns)


@dataclass(frozen=True, slots=True)
class EventCoverage:
    """Events of a period, and how many of them belong to units no assignment row names."""

    events: int
    unassigned: int
    examples: tuple[str, ...] = ()

    @property
    def share(self) -> float:
        return self.unassigned / self.events if self.events else 0.0


def event_coverage(
    name: str, source: AnySource, since: dt.datetime, until: dt.datetime
) -> EventCoverage:
    """Events with ``since <= ts < until``, and those whose unit is in no assignment row.

    Any experiment's assignment counts: this measures whether events and
    assignments join at all (ids in another format, a broken assignment
    service), not which experiment a unit is in. Events without a unit_id are
    left out of both counts, as the polars and in-database paths do: they are
    the experiment's ``null_unit_id`` rows. The count runs in the database
    for DuckDB and SQL sources.
    """
    if isinstance(source, FileSource):
        return _file_coverage(name, source, since, until)
    if isinstance(source, DuckDBSource):
        q_counts, q_examples = _coverage_queries(name, source, since, until, "duckdb")
        try:
            with duckdb.connect(str(source.path), read_only=True) as con:
                con.execute("SET TimeZone='UTC'")
                counts = con.execute(q_counts).fetchone() or (0, 0)
                # a second pass over the events only when there is something to show
                examples = [r[0] for r in con.execute(q_examples).fetchall()] if counts[1] else []
        except duckdb.Error as exc:
            message = f"source {name!r}: {type(exc).__name__}: {exc}"
            raise _driver_error(str(exc))(message) from None
        return EventCoverage(int(counts[0]), int(counts[1]), tuple(str(x) for x in examples))
    uri = settings.env(source.uri_env)
    if uri is None:
        raise SourceError(f"source {name!r}: environment variable {source.uri_env} is not set")
    q_counts, q_examples = _coverage_queries(name, source, since, until, sql_dialect(source, uri))
    check_reachable(name, uri)
    check_login(name, source, uri)
    try:
        row = pl.read_database_uri(q_counts, uri, engine="connectorx").row(0)
        found = (
            pl.read_database_uri(q_examples, uri, engine="connectorx").to_series()
            if row[1]
            else pl.Series([], dtype=pl.String)
        )
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        why = redact(str(exc), uri)
        raise _driver_error(why)(
            f"source {name!r}: cannot count unassigned events ({type(exc).__name__}: {why})"
        ) from None
    return EventCoverage(int(row[0]), int(row[1] or 0), tuple(str(x) for x in found))


def _coverage_queries(
    name: str,
    source: DuckDBSource | SqlSource,
    since: dt.datetime,
    until: dt.datetime,
    dialect: str | None,
) -> tuple[str, str]:
    """The counts of :func:`event_coverage`, and up to five units no assignment names."""
    unit_name = source.columns.get("unit_id", "unit_id")
    ts = _col(source.columns.get("ts", "ts"), "e")
    unit, key = _col(unit_name, "e"), _col("u", "a")
    units = exp.select(exp.alias_(_col(unit_name), "u", quoted=True)).distinct()
    units = units.from_(_sql_table(name, "assignments", source.assignments))
    in_period = exp.and_(
        ts >= _timestamp(since), ts.copy() < _timestamp(until), exp.not_(unit.is_(exp.null()))
    )

    def joined(*columns: exp.Expr) -> exp.Select:
        return (
            exp.select(*columns)
            .from_(_aliased(_sql_table(name, "events", source.events), "e"))
            .join(units.subquery(_ident("a")), on=unit.copy().eq(key.copy()), join_type="left")
            .where(in_period.copy())
        )

    no_assignment = key.copy().is_(exp.null())
    unassigned = exp.Sum(
        this=exp.Case().when(no_assignment, exp.Literal.number(1)).else_(exp.Literal.number(0))
    )
    q_counts = joined(
        exp.alias_(exp.Count(this=exp.Star()), "events", quoted=True),
        exp.alias_(
            exp.Coalesce(this=unassigned, expressions=[exp.Literal.number(0)]),
            "unassigned",
            quoted=True,
        ),
    )
    q_examples = (
        joined(exp.alias_(unit.copy(), "unit", quoted=True))
        .distinct()
        .where(no_assignment.copy())
        .order_by(exp.Literal.number(1))
        .limit(5)
    )
    return q_counts.sql(dialect=dialect), q_examples.sql(dialect=dialect)


def _file_coverage(
    name: str, src: FileSource, since: dt.datetime, until: dt.datetime
) -> EventCoverage:
    assignments = _scan(src.assignments, src.kind, name, "assignments", src.columns)
    events = _scan(src.events, src.kind, name, "events", src.columns)
    units = conform(assignments, name, "assignments", src.columns).select("unit_id").unique()
    in_period = (
        conform(events, name, "events", src.columns)
        .filter((pl.col("ts") >= since) & (pl.col("ts") < until) & pl.col("unit_id").is_not_null())
        .select("unit_id")
    )
    unassigned = in_period.join(units, on="unit_id", how="anti")
    total = in_period.select(pl.len()).collect().item()
    missing = unassigned.select(pl.len()).collect().item()
    examples = unassigned.unique().sort("unit_id").head(5).collect().get_column("unit_id")
    return EventCoverage(int(total), int(missing), tuple(str(x) for x in examples))


def redact(message: str, uri: str) -> str:
    """Remove the URI and any password-looking part from a driver message."""
    message = message.replace(uri, "<uri>")
    return re.sub(r"://[^@\s/]+@", "://***@", message)
