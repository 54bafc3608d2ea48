"""Read an experiment's assignments and events from a source, in the contract's types.

Three kinds of source (contract section 4): an embedded DuckDB file, parquet or
CSV files (paths or globs), and any SQL database polars can read by URI.  Each
returns polars LazyFrames already limited to one experiment — the filter on
``experiment_id`` and the semi-join of events to the experiment's units are
pushed into the database where there is one — and conformed to the contract's
column names and types.  A missing column or a type that cannot be converted
without guessing raises :class:`SourceSchemaError` naming the table, column,
expected and found type.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from analysis import schema, settings
from analysis.config import DuckDBSource, FileSource, SqlSource

_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


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


def read_experiment(name: str, source: AnySource, experiment_id: str) -> Tables:
    """Assignments of ``experiment_id`` and the events of its units, from ``source``."""
    if isinstance(source, DuckDBSource):
        tables = _read_duckdb(name, source, experiment_id)
    elif isinstance(source, FileSource):
        tables = _read_files(name, source, experiment_id)
    else:
        tables = _read_sql(name, source, experiment_id)
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


def _events_query(source: str, src: AnySource, experiment_id: str) -> tuple[str, str]:
    """SQL for the experiment's assignments and for the events of its units."""
    assignments = _sql_name(source, "assignments", src.assignments)
    events = _sql_name(source, "events", src.events)
    exp_col = '"' + src.columns.get("experiment_id", "experiment_id") + '"'
    unit_col = '"' + src.columns.get("unit_id", "unit_id") + '"'
    literal = "'" + experiment_id.replace("'", "''") + "'"
    q_assign = f"SELECT * FROM {assignments} WHERE {exp_col} = {literal}"
    q_events = (
        f"SELECT * FROM {events} WHERE {unit_col} IN "
        f"(SELECT {unit_col} FROM {assignments} WHERE {exp_col} = {literal})"
    )
    return q_assign, q_events


def _read_duckdb(name: str, src: DuckDBSource, experiment_id: str) -> Tables:
    path = Path(src.path)
    if not path.exists():
        raise SourceError(
            f"source {name!r}: DuckDB file {path} not found "
            "(run `proof simulate` to create demo data)"
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SET TimeZone='UTC'")
        q_assign, q_events = _events_query(name, src, experiment_id)
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


def _read_files(name: str, src: FileSource, experiment_id: str) -> Tables:
    raw_assign = _scan(src.assignments, src.kind, name, "assignments", src.columns)
    raw_events = _scan(src.events, src.kind, name, "events", src.columns)
    assignments = conform(raw_assign, name, "assignments", src.columns).filter(
        pl.col("experiment_id") == experiment_id
    )
    events = conform(raw_events, name, "events", src.columns).join(
        assignments.select("unit_id").unique(), on="unit_id", how="semi"
    )
    return Tables(assignments, events)


def _read_sql(name: str, src: SqlSource, experiment_id: str) -> Tables:
    uri = settings.env(src.uri_env)
    if uri is None:
        raise SourceError(
            f"source {name!r}: environment variable {src.uri_env} is not set "
            "(it must hold the database URI)"
        )
    q_assign, q_events = _events_query(name, src, experiment_id)
    try:
        assignments = pl.read_database_uri(q_assign, uri, engine="connectorx")
        events = pl.read_database_uri(q_events, uri, engine="connectorx")
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        raise SourceError(
            f"source {name!r}: cannot read from the database "
            f"({type(exc).__name__}: {_redact(str(exc), uri)})"
        ) from None
    return Tables(
        conform(assignments.lazy(), name, "assignments", src.columns),
        conform(events.lazy(), name, "events", src.columns),
    )


def _redact(message: str, uri: str) -> str:
    """Remove the URI and any password-looking part from a driver message."""
    message = message.replace(uri, "<uri>")
    return re.sub(r"://[^@\s/]+@", "://***@", message)
