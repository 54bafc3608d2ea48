"""Connect to a source's database, failing fast and clearly when it cannot be used.

The URI comes from the source's environment variable (:func:`sql_uri`); a
DuckDB file opens read-only in UTC (:func:`connect_duckdb`). Before a driver
is called, :func:`check_reachable` says when the database's port does not
answer and :func:`check_login` when PostgreSQL refuses the login: the drivers
would retry each for about 30 s before saying why. :func:`without_nested_loops`
gives a PostgreSQL URI whose sessions plan without nested-loop joins.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import duckdb
import psycopg

from analysis import settings
from analysis.config.sources import DuckDBSource, SqlSource
from analysis.sources.errors import (
    SourceAccessError,
    SourceError,
    SourceUnavailableError,
    _driver_error,
    _refused,
    redact,
)

#: Seconds to wait for a TCP connection to a SQL source before saying it is unreachable
#: (the drivers would retry for about 30 s; the flow's load task retries instead).
CONNECT_TIMEOUT = 3.0
_DEFAULT_PORTS: Mapping[str, int] = {
    "postgres": 5432, "postgresql": 5432, "redshift": 5439, "mysql": 3306, "mariadb": 3306,
    "mssql": 1433, "oracle": 1521, "clickhouse": 9000, "bigquery": 443,
    "sc": 15002,  # Spark Connect
}  # fmt: skip


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


def _connectable(name: str, src: SqlSource) -> str:
    """The source's URI, once its database answers and accepts the login."""
    uri = sql_uri(name, src)
    check_reachable(name, uri)
    check_login(name, src, uri)
    return uri


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
