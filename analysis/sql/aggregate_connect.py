"""How the push-down queries reach a database: a connection, its dialect, its tables.

:func:`connection` opens a source for :func:`analysis.sql.aggregate.measure_in_database`
(DuckDB's file read-only, or a URI polars reads with connectorx or ADBC) and
says how to keep rows in a temporary table, and how to lend the connection to
GX, where the connection can;
:func:`introspect_dims` checks both tables and finds the segment dimensions.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from analysis import schema
from analysis.config.experiments import Experiment
from analysis.config.sources import DatabaseSource, DuckDBSource, SparkSource
from analysis.sources.conform import conform, require_columns
from analysis.sources.connect import check_reachable, connect_duckdb, sql_uri, without_nested_loops
from analysis.sources.errors import SourceError
from analysis.sources.errors import redact as redact_uri
from analysis.sql.expressions import eq, integer, quoted, table

__all__ = [
    "DIALECTS",
    "Connection",
    "Execute",
    "KeepRows",
    "connection",
    "dialect_of",
    "introspect_dims",
    "open_connection",
]

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

KeepRows = Callable[[str, str], exp.Select]
"""Stores a query's rows in a temporary table by name; returns the query reading it."""


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


def introspect_dims(
    source_name: str,
    source: DatabaseSource,
    experiment: Experiment,
    execute: Execute,
    dialect: str,
    redact: Callable[[str], str],
) -> tuple[list[str], bool, bool, bool]:
    """The segment dimensions the assignments hold, and whether the events have a
    ``value``, a ``label`` and a ``task_id`` column (each may be absent: read as null)."""
    found: dict[str, pl.DataFrame] = {}
    for role in ("assignments", "events"):
        name = source.relations()[role]
        query = sqlglot.select(exp.Star()).from_(table(name)).where(eq(integer(1), integer(0)))
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
    columns = found["events"].columns
    has = [source.columns.get(c, c) in columns for c in ("value", "label", "task_id")]
    return dims, has[0], has[1], has[2]


@dataclass(frozen=True)
class Connection:
    """One open connection of a push-down run and what it can do.

    ``keep`` stores a query's rows in a temporary table, ``share`` gives
    another client (GX's SQLAlchemy engine) this same connection, so that it
    reads those tables; both are None where the connection cannot (connectorx
    opens a connection per query, so no temporary table outlives it).
    ``close`` closes it (and drops its temporary tables); closing twice is harmless.
    """

    execute: Execute
    dialect: str
    redact: Callable[[str], str]
    keep: KeepRows | None = None
    share: Callable[[], Any] | None = None
    close: Callable[[], None] = lambda: None


@contextmanager
def connection(
    source_name: str, source: DatabaseSource, dialect: str | None
) -> Iterator[Connection]:
    """The connection of one push-down run (:func:`open_connection`), closed on leaving."""
    opened = open_connection(source_name, source, dialect)
    try:
        yield opened
    finally:
        opened.close()


def open_connection(source_name: str, source: DatabaseSource, dialect: str | None) -> Connection:
    """The connection of one push-down run; the caller closes it."""
    if isinstance(source, SparkSource):
        from analysis.sql.spark import open_spark  # pyspark only where a source asks

        return open_spark(source_name, source)
    if isinstance(source, DuckDBSource):
        return _duckdb_connection(connect_duckdb(source_name, source), dialect or "duckdb")
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

    return Connection(run_uri, dialect or dialect_of(uri), without_uri)


def _duckdb_connection(con: duckdb.DuckDBPyConnection, dialect: str) -> Connection:
    def run_duckdb(query: str) -> pl.DataFrame:
        frame: pl.DataFrame = con.sql(query).pl()
        return frame

    def keep_rows(name: str, query: str) -> exp.Select:
        # A temporary table lives in the connection's memory (spilled under
        # memory_limit), never in the read-only file.
        con.execute(f"CREATE TEMPORARY TABLE {quoted(name).sql()} AS {query}")
        return sqlglot.select(exp.Star()).from_(table(name))

    def share() -> Any:
        """This connection as duckdb-engine's DBAPI connection, which closing leaves open
        (the ``creator`` of a SQLAlchemy engine on a ``StaticPool``)."""
        from duckdb_engine import ConnectionWrapper

        class Borrowed(ConnectionWrapper):
            def close(self) -> None:
                """The run closes it, not the borrower."""

        return Borrowed(con)

    return Connection(run_duckdb, dialect, str, keep_rows, share, con.close)
