"""Has new data landed? Cheap fingerprints of sources, and the state of the last look.

A *fingerprint* says what a source looks like now without reading its rows:

- DuckDB: the row count and the newest time of each table (``count(*)``,
  ``max(ts)``, ``max(assigned_at)``);
- SQL databases: the newest time of each table (``max(...)`` only: a
  ``count(*)`` can be slow on a large warehouse);
- parquet/CSV files: the name, size and modification time of every file the
  globs match, and the days named in the paths (``date=2026-11-20/…`` or
  ``events-2026-11-20.parquet``: new day partitions).

:func:`detect` compares the fingerprints with the state of the last look, kept
per experiment, and says which experiments have new data and as of which day.
The state is a small JSON file written atomically. Nothing here knows about
Prefect: the ``watch-sources`` flow calls these functions and emits the events.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from analysis import settings
from analysis.config.sources import DuckDBSource, FileSource, SparkSource, SqlSource, is_path
from analysis.sources.errors import SourceError

log = logging.getLogger(__name__)

STATE_VERSION = 1
_DAY = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

AnySource = DuckDBSource | FileSource | SqlSource | SparkSource


@dataclass(frozen=True)
class Fingerprint:
    """What a source looks like now.

    Attributes:
        digest: changes whenever the source's data changes (a SHA-256 of ``detail``).
        max_ts: the newest event time (UTC), when the source tells it cheaply.
        days: the days named in the source's file paths (day partitions).
        detail: the numbers the digest is made of, for logs and the state file.
        stamp: changes on *any* write to the source's files (their sizes and
            modification times), also one that keeps counts and newest times,
            such as an in-place UPDATE; None when the source has no files to
            look at (SQL databases), so it cannot prove it is unchanged.
    """

    digest: str
    max_ts: dt.datetime | None = None
    days: tuple[dt.date, ...] = ()
    detail: Mapping[str, Any] | None = None
    stamp: str | None = None


@dataclass(frozen=True)
class Seen:
    """The state of one experiment's source at the last look."""

    source: str
    digest: str
    max_ts: dt.datetime | None
    days: tuple[dt.date, ...]
    checked_at: dt.datetime


@dataclass(frozen=True)
class Landed:
    """New data for an experiment: the reason, and the day to analyse (None: yesterday)."""

    experiment_id: str
    source: str
    as_of: dt.date | None
    reason: str


# --------------------------------------------------------------------------- fingerprints


def _digest(detail: Mapping[str, Any]) -> str:
    text = json.dumps(detail, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _utc(value: object) -> dt.datetime | None:
    """A database's max(ts) as an aware UTC datetime (a naive one is taken to be UTC)."""
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def partition_days(paths: Iterable[str]) -> tuple[dt.date, ...]:
    """The distinct days (YYYY-MM-DD) named in ``paths``, sorted; invalid dates are ignored."""
    days: set[dt.date] = set()
    for path in paths:
        for year, month, day in _DAY.findall(path):
            try:
                days.add(dt.date(int(year), int(month), int(day)))
            except ValueError:
                continue
    return tuple(sorted(days))


def files_fingerprint(patterns: Iterable[str]) -> Fingerprint:
    """Name, size and modification time of every file matching ``patterns`` (local globs)."""
    files: list[list[Any]] = []
    for pattern in patterns:
        if "://" in pattern:
            msg = f"remote files ({pattern}) cannot be watched: only local paths and globs"
            raise SourceError(msg)
        for name in sorted(glob.glob(pattern)):
            try:
                stat = os.stat(name)
            except FileNotFoundError:  # removed between the glob and the stat
                continue
            files.append([name, stat.st_size, stat.st_mtime_ns])
    detail = {"files": len(files), "bytes": sum(f[1] for f in files)}
    digest = _digest({"list": files})
    return Fingerprint(
        digest=digest,
        days=partition_days(f[0] for f in files),
        detail=detail,
        stamp=digest,
    )


def _quoted(table: str) -> str:
    if not _SQL_NAME.match(table):
        msg = f"table name {table!r} is not valid"
        raise SourceError(msg)
    return ".".join(f'"{part}"' for part in table.split("."))


def _column(source: AnySource, name: str) -> str:
    return '"' + source.columns.get(name, name).replace('"', '""') + '"'


def duckdb_fingerprint(source: DuckDBSource) -> Fingerprint:
    """Row counts and newest times of the two tables of a DuckDB file."""
    path = Path(source.path)
    if not path.exists():
        msg = f"DuckDB file {path} not found"
        raise SourceError(msg)
    queries = {
        "assignments": f"SELECT count(*), max({_column(source, 'assigned_at')}) "
        f"FROM {_quoted(source.assignments)}",
        "events": f"SELECT count(*), max({_column(source, 'ts')}) FROM {_quoted(source.events)}",
    }
    detail: dict[str, Any] = {}
    newest: dict[str, dt.datetime | None] = {}
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute("SET TimeZone='UTC'")
            for table, query in queries.items():
                row = con.execute(query).fetchone()
                count, latest = row if row is not None else (0, None)
                newest[table] = _utc(latest)
                detail[table] = {"rows": int(count), "max": str(newest[table])}
    except duckdb.Error as exc:
        msg = f"{type(exc).__name__}: {exc}"
        raise SourceError(msg) from None
    stamp = files_fingerprint([glob.escape(str(path)), glob.escape(f"{path}.wal")]).digest
    return Fingerprint(_digest(detail), newest["events"], detail=detail, stamp=stamp)


def sql_fingerprint(source: SqlSource) -> Fingerprint:
    """Newest times of the two tables of a SQL database (``max`` only, no ``count``)."""
    uri = settings.env(source.uri_env)
    if uri is None:
        msg = f"environment variable {source.uri_env} is not set (it must hold the database URI)"
        raise SourceError(msg)
    query = (
        f"SELECT (SELECT max({_column(source, 'assigned_at')}) FROM {_quoted(source.assignments)})"
        f" AS assignments, (SELECT max({_column(source, 'ts')}) FROM {_quoted(source.events)})"
        " AS events"
    )
    try:
        row = pl.read_database_uri(query, uri, engine="connectorx").row(0, named=True)
    except Exception as exc:  # the drivers raise many types; say which, never the URI
        msg = f"cannot read from the database ({type(exc).__name__})"
        raise SourceError(msg) from None
    detail = {table: str(_utc(row[table])) for table in ("assignments", "events")}
    return Fingerprint(digest=_digest(detail), max_ts=_utc(row["events"]), detail=detail)


def source_fingerprint(source: AnySource) -> Fingerprint:
    """The fingerprint of any kind of source."""
    if isinstance(source, DuckDBSource):
        return duckdb_fingerprint(source)
    if isinstance(source, FileSource):
        return files_fingerprint([source.assignments, source.events])
    if isinstance(source, SparkSource):
        tables = [v for v in (source.assignments, source.events) if not is_path(v)]
        if tables:
            msg = f"tables of Spark's catalog ({', '.join(tables)}) cannot be watched: only files"
            raise SourceError(msg)
        return files_fingerprint([source.assignments, source.events])
    return sql_fingerprint(source)


def data_version(
    experiment_id: str, source: AnySource, fingerprint: Fingerprint, files: Iterable[Path] = ()
) -> str | None:
    """A key that changes when the experiment's data, its source config or ``files`` change.

    ``files`` are inputs of the work being keyed, e.g. the expectation suites of
    a validation: their contents enter the key. None when the fingerprint has no
    ``stamp`` (a database without files may change without its newest time
    changing): such work must not be reused.
    """
    if fingerprint.stamp is None:
        return None
    parts = [experiment_id, source.model_dump_json(), fingerprint.digest, fingerprint.stamp]
    parts += [hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in sorted(files)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- detection


def landed_as_of(before: Seen | None, now: Fingerprint, today: dt.date) -> dt.date | None:
    """The day to analyse when ``now`` differs from ``before``; None means "yesterday".

    The day of the newest event when the source tells it, else the newest new
    day partition; never today or later (a day still arriving is not analysed).
    """
    day: dt.date | None = None
    if now.max_ts is not None:
        day = now.max_ts.astimezone(dt.UTC).date()
    else:
        new_days = set(now.days) - set(before.days if before else ())
        if new_days:
            day = max(new_days)
    if day is None:
        return None
    return min(day, today - dt.timedelta(days=1))


def detect(
    state: Mapping[str, Seen],
    current: Mapping[str, tuple[str, Fingerprint]],
    now: dt.datetime,
) -> tuple[list[Landed], dict[str, Seen]]:
    """Which experiments have new data, and the state to keep.

    ``current`` maps each watched experiment to its source's name and
    fingerprint. An experiment seen for the first time sets a baseline and is
    not reported. Experiments absent from ``current`` are not in the new state:
    a caller that could not fingerprint a source copies their old state over.
    """
    landed: list[Landed] = []
    new_state: dict[str, Seen] = {}
    today = now.astimezone(dt.UTC).date()
    for experiment_id, (source, fp) in sorted(current.items()):
        before = state.get(experiment_id)
        new_state[experiment_id] = Seen(source, fp.digest, fp.max_ts, fp.days, now)
        if before is None or (before.source == source and before.digest == fp.digest):
            continue
        landed.append(
            Landed(experiment_id, source, landed_as_of(before, fp, today), _reason(before, fp))
        )
    return landed, new_state


def _reason(before: Seen, now: Fingerprint) -> str:
    if now.max_ts is not None and now.max_ts != before.max_ts:
        return f"newest event {before.max_ts} -> {now.max_ts}"
    new_days = sorted(set(now.days) - set(before.days))
    if new_days:
        return "new day partitions: " + ", ".join(d.isoformat() for d in new_days)
    return "source changed"


# --------------------------------------------------------------------------- state file


def _seen_to_json(seen: Seen) -> dict[str, Any]:
    return {
        "source": seen.source,
        "digest": seen.digest,
        "max_ts": seen.max_ts.isoformat() if seen.max_ts else None,
        "days": [d.isoformat() for d in seen.days],
        "checked_at": seen.checked_at.isoformat(),
    }


def _seen_from_json(raw: Mapping[str, Any]) -> Seen:
    max_ts = raw.get("max_ts")
    return Seen(
        source=str(raw["source"]),
        digest=str(raw["digest"]),
        max_ts=dt.datetime.fromisoformat(max_ts) if max_ts else None,
        days=tuple(dt.date.fromisoformat(d) for d in raw.get("days") or ()),
        checked_at=dt.datetime.fromisoformat(raw["checked_at"]),
    )


def dump_state(state: Mapping[str, Seen]) -> str:
    body = {
        "version": STATE_VERSION,
        "experiments": {k: _seen_to_json(v) for k, v in sorted(state.items())},
    }
    return json.dumps(body, indent=2) + "\n"


def load_state(path: Path) -> dict[str, Seen]:
    """The state written by :func:`save_state`; empty when missing or unreadable.

    An unreadable state is logged and treated as a first look (a baseline), so
    a damaged file costs one missed landing, never a crash loop.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("version") != STATE_VERSION:
            msg = f"version {raw.get('version')!r}"
            raise ValueError(msg)
        return {k: _seen_from_json(v) for k, v in raw["experiments"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable watch state %s: %s", path, exc)
        return {}


def save_state(path: Path, state: Mapping[str, Seen]) -> None:
    """Write the state atomically: a temporary file, fsynced, then renamed over the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dump_state(state))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
