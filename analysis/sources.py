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


def _sql_name(source: str, table: str, name: str) -> str:
    if not _SQL_NAME.match(name):
        raise SourceError(f"source {source!r}: table name {name!r} for {table!r} is not valid")
    return ".".join(f'"{part}"' for part in name.split("."))


def _timestamp(value: dt.datetime) -> str:
    return f"CAST('{value.isoformat()}' AS TIMESTAMP WITH TIME ZONE)"


def _events_query(
    source: str, src: AnySource, experiment_id: str, null_units: Period | None = None
) -> tuple[str, str]:
    """SQL for the experiment's assignments and for the events of its units.

    With ``null_units``, also the events without a unit in that period: one
    scan, a hash join to the experiment's distinct units (an ``IN`` inside an
    ``OR`` would not be planned as a join).
    """
    assignments = _sql_name(source, "assignments", src.assignments)
    events = _sql_name(source, "events", src.events)
    exp_col = '"' + src.columns.get("experiment_id", "experiment_id") + '"'
    unit_col = '"' + src.columns.get("unit_id", "unit_id") + '"'
    literal = "'" + experiment_id.replace("'", "''") + "'"
    q_assign = f"SELECT * FROM {assignments} WHERE {exp_col} = {literal}"
    if null_units is None:
        q_events = (
            f"SELECT * FROM {events} WHERE {unit_col} IN "
            f"(SELECT {unit_col} FROM {assignments} WHERE {exp_col} = {literal})"
        )
        return q_assign, q_events
    ts_col = '"' + src.columns.get("ts", "ts") + '"'
    since, until = null_units
    q_events = (
        f"SELECT e.* FROM {events} e LEFT JOIN "
        f'(SELECT DISTINCT {unit_col} AS "__proof_unit" FROM {assignments} '
        f"WHERE {exp_col} = {literal}) u "
        f'ON e.{unit_col} = u."__proof_unit" '
        f'WHERE u."__proof_unit" IS NOT NULL OR (e.{unit_col} IS NULL '
        f"AND e.{ts_col} >= {_timestamp(since)} AND e.{ts_col} < {_timestamp(until)})"
    )
    return q_assign, q_events


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
    except duckdb.Error as exc:
        raise SourceError(f"source {name!r}: {type(exc).__name__}: {exc}") from None
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
        q_assign, q_events = _events_query(name, src, experiment_id, null_units)
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
            cursor = con.execute(f"SELECT * FROM {_sql_name(name, role, table)} LIMIT 0")
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
    uri = sql_uri(name, src)
    check_reachable(name, uri)
    q_assign, q_events = _events_query(name, src, experiment_id, null_units)
    try:
        assignments = pl.read_database_uri(q_assign, uri, engine="connectorx")
        events = pl.read_database_uri(q_events, uri, engine="connectorx")
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        _require_sql_tables(name, src, uri)
        raise SourceError(
            f"source {name!r}: cannot read from the database "
            f"({type(exc).__name__}: {redact(str(exc), uri)})"
        ) from None
    return Tables(
        conform(assignments.lazy(), name, "assignments", src.columns),
        conform(events.lazy(), name, "events", src.columns),
    )


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
        raise SourceError(
            f"source {source!r}: cannot reach the database at {host}:{port} ({cause}); "
            "is it running, and reachable from this machine?"
        ) from None


def _require_sql_tables(name: str, src: SqlSource, uri: str) -> None:
    """After a failed read: name the table that is missing, if one is."""
    for role, table in (("assignments", src.assignments), ("events", src.events)):
        try:
            empty = pl.read_database_uri(
                f"SELECT * FROM {_sql_name(name, role, table)} WHERE 1 = 0",
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
    cols = source.columns
    unit = '"' + cols.get("unit_id", "unit_id") + '"'
    ts = '"' + cols.get("ts", "ts") + '"'
    assignments = _sql_name(name, "assignments", source.assignments)
    events = _sql_name(name, "events", source.events)
    where = (
        f"e.{ts} >= {_timestamp(since)} AND e.{ts} < {_timestamp(until)} AND e.{unit} IS NOT NULL"
    )
    joined = (
        f"FROM {events} e LEFT JOIN (SELECT DISTINCT {unit} AS u FROM {assignments}) a "
        f"ON e.{unit} = a.u WHERE {where}"
    )
    q_counts = (
        "SELECT count(*) AS events, "
        f"coalesce(sum(CASE WHEN a.u IS NULL THEN 1 ELSE 0 END), 0) AS unassigned {joined}"
    )
    q_examples = f"SELECT DISTINCT e.{unit} AS unit {joined} AND a.u IS NULL ORDER BY 1 LIMIT 5"
    if isinstance(source, DuckDBSource):
        try:
            with duckdb.connect(str(source.path), read_only=True) as con:
                con.execute("SET TimeZone='UTC'")
                counts = con.execute(q_counts).fetchone() or (0, 0)
                # a second pass over the events only when there is something to show
                examples = [r[0] for r in con.execute(q_examples).fetchall()] if counts[1] else []
        except duckdb.Error as exc:
            raise SourceError(f"source {name!r}: {type(exc).__name__}: {exc}") from None
        return EventCoverage(int(counts[0]), int(counts[1]), tuple(str(x) for x in examples))
    uri = settings.env(source.uri_env)
    if uri is None:
        raise SourceError(f"source {name!r}: environment variable {source.uri_env} is not set")
    check_reachable(name, uri)
    try:
        row = pl.read_database_uri(q_counts, uri, engine="connectorx").row(0)
        found = (
            pl.read_database_uri(q_examples, uri, engine="connectorx").to_series()
            if row[1]
            else pl.Series([], dtype=pl.String)
        )
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        raise SourceError(
            f"source {name!r}: cannot count unassigned events "
            f"({type(exc).__name__}: {redact(str(exc), uri)})"
        ) from None
    return EventCoverage(int(row[0]), int(row[1] or 0), tuple(str(x) for x in found))


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
