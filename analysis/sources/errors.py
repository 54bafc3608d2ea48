"""The errors of reading a source, and whether reading it again may succeed.

A database that does not answer or drops the connection may be back in a
minute (:class:`SourceUnavailableError`); a login it refuses or a database it
does not have will not (:class:`SourceAccessError`); a table that does not
match the contract is a :class:`SourceSchemaError`. :func:`retryable` tells
them apart, reading the driver's message where it must; :func:`redact` keeps
the URI and its credentials out of every message.
"""

from __future__ import annotations

import re

from analysis.config.sources import SqlSource


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


def _refused(name: str, src: SqlSource, why: str) -> str:
    """One line: the source, the database's reason, and where the URI comes from."""
    fatal = re.search(r"FATAL:\s*(.+)", why)
    reason = (fatal.group(1) if fatal else why).strip().splitlines()[0]
    return (
        f"source {name!r}: the database refused the connection: {reason} "
        f"(check the URI in {src.uri_env}; not retried)"
    )


def redact(message: str, uri: str) -> str:
    """Remove the URI and any password-looking part from a driver message."""
    message = message.replace(uri, "<uri>")
    return re.sub(r"://[^@\s/]+@", "://***@", message)
