"""Count the events of a period whose unit no assignment row names.

The validation's unassigned-share check reads :func:`event_coverage`: the
count runs in the database for DuckDB and SQL sources, with polars for files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from analysis import settings
from analysis.config.sources import DatabaseSource, DuckDBSource, FileSource
from analysis.sources.conform import conform
from analysis.sources.connect import check_login, check_reachable
from analysis.sources.errors import SourceError, _driver_error, redact
from analysis.sources.read import _scan
from analysis.sources.sql import AnySource, _coverage_queries, sql_dialect

if TYPE_CHECKING:  # the SQL wing imports this package
    from analysis.sql.aggregate_connect import Connection


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


def coverage_on(
    connection: Connection,
    name: str,
    source: DatabaseSource,
    since: dt.datetime,
    until: dt.datetime,
) -> EventCoverage:
    """:func:`event_coverage`, counted on a run's open connection."""
    q_counts, q_examples = _coverage_queries(name, source, since, until, connection.dialect)
    try:
        events, unassigned = connection.execute(q_counts).row(0)
        examples = (
            connection.execute(q_examples).to_series()
            if unassigned
            else pl.Series([], dtype=pl.String)
        )
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        raise SourceError(
            f"source {name!r}: cannot count unassigned events "
            f"({type(exc).__name__}: {connection.redact(str(exc))})"
        ) from None
    return EventCoverage(int(events), int(unassigned or 0), tuple(str(x) for x in examples))


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
