"""Validate events per day partition, and reuse the results of unchanged partitions.

Validating the whole history every night does not scale. The events are cut
into day partitions (the UTC date of ``ts``; rows without ``ts`` form their own
partition), each partition gets a *fingerprint* of its rows, and the results of
a partition's suite are cached as JSON under
``<cache_dir>/<day>-<key>.json``. The key hashes the fingerprint, the suite
file, the expectations as the partition sees them, and the GX and polars
versions: a partition whose rows, suite or parameters did not change is not
validated again. A cached file is trusted only if it names itself (so a copy
of another day's or another key's file is refused) and its content matches
the SHA-256 written into it; anything else is logged as a warning naming the
file, and the partition is validated again.

*As the partition sees them*: a datetime bound on ``ts`` that no row of the
day can reach is dropped from the partition's expectations (and from its key).
So "not in the future" (``ts <= now``) changes the key of today's partition
only, and yesterday's results stay valid tomorrow.

Results of the batches of a run (partitions, and hash chunks of a large
partition) are merged per expectation. ``event_id`` uniqueness is exact: rows
of one id always fall in the same chunk, and ids repeated across days are
counted here with polars, so the merged count equals GX's count on the whole
table.

This module runs no GX itself: it takes the batch validator as an argument
(:data:`BatchValidator`; ``analysis.validation`` provides the GX one).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analysis.keys import maybe_repeated
from analysis.suites import Expectation, Suite, day_start, jsonable, parse_condition

log = logging.getLogger(__name__)

#: Bump when the cached JSON or the meaning of its numbers changes (2: its name and sha256).
CACHE_FORMAT = 2
#: Largest batch handed to GX at once (pandas memory is about 1 GB per 10M cells).
MAX_BATCH_ROWS = 2_000_000
MAX_EXAMPLES = 5
NO_TS = "no-ts"
_UNIQUE = "expect_column_values_to_be_unique"
_SCHEMA_CHECKS = ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list")


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one expectation found in one batch; mergeable across batches."""

    key: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    examples: tuple[str, ...] = ()
    observed: Any = None
    error: str | None = None

    def merge(self, other: BatchOutcome) -> BatchOutcome:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        observed = self.observed if self.observed is not None else other.observed
        if isinstance(self.observed, int) and isinstance(other.observed, int):
            observed = self.observed + other.observed  # row counts add up
        return BatchOutcome(
            key=self.key,
            success=self.success and other.success,
            element_count=add(self.element_count, other.element_count),
            unexpected_count=add(self.unexpected_count, other.unexpected_count),
            examples=(self.examples + other.examples)[:MAX_EXAMPLES],
            observed=observed,
            error=self.error or other.error,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "success": self.success,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "examples": list(self.examples),
            "observed": jsonable(self.observed),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchOutcome:
        return cls(
            key=str(data["key"]),
            success=bool(data["success"]),
            element_count=data.get("element_count"),
            unexpected_count=data.get("unexpected_count"),
            examples=tuple(str(x) for x in data.get("examples") or ()),
            observed=data.get("observed"),
            error=data.get("error"),
        )


#: Validates one pandas-sized batch against expectations: GX in production.
BatchValidator = Callable[[pl.DataFrame, Sequence[Expectation]], list[BatchOutcome]]


def merge_outcomes(
    batches: Sequence[Sequence[BatchOutcome]], order: Sequence[str]
) -> dict[str, BatchOutcome]:
    """One outcome per expectation key, in ``order``, merged over batches."""
    merged: dict[str, BatchOutcome] = {}
    for batch in batches:
        for outcome in batch:
            before = merged.get(outcome.key)
            merged[outcome.key] = outcome if before is None else before.merge(outcome)
    return {key: merged[key] for key in order if key in merged}


# --------------------------------------------------------------------------- fingerprints


@dataclass(frozen=True, slots=True)
class Partition:
    """One day of events (``day`` None: the rows without ``ts``), or a ``name``d table."""

    day: dt.date | None
    rows: int
    fingerprint: str
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return NO_TS if self.day is None else self.day.isoformat()


def _day(column: str) -> pl.Expr:
    return pl.col(column).dt.date().alias("__day")


def _row_hashes() -> list[pl.Expr]:
    rows = pl.struct(pl.all().exclude("__day"))
    return [
        pl.len().alias("rows"),
        rows.hash(seed=0).sum().alias("h0"),
        rows.hash(seed=1).sum().alias("h1"),
    ]


def table_fingerprint(frame: pl.DataFrame, name: str) -> Partition:
    """A whole table as one partition (``name`` labels its cache file)."""
    n, h0, h1 = frame.select(_row_hashes()).row(0)
    return Partition(None, int(n), f"{n}-{int(h0 or 0):016x}{int(h1 or 0):016x}", name)


def partition_fingerprints(events: pl.DataFrame | pl.LazyFrame, ts: str = "ts") -> list[Partition]:
    """The day partitions of ``events`` and a fingerprint of each.

    The fingerprint is the row count and two wrapping sums of per-row hashes
    (polars, seeds 0 and 1) over every column: independent of row order,
    changed by any added, removed or edited row. Polars hashes are stable
    within a polars version, which is part of every cache key.
    """
    frame = (
        events.lazy()
        .with_columns(_day(ts))
        .group_by("__day")
        .agg(_row_hashes())
        .sort("__day", nulls_last=False)
        .collect()
    )
    return [
        Partition(day, int(n), f"{n}-{int(h0):016x}{int(h1):016x}")
        for day, n, h0, h1 in frame.iter_rows()
    ]


# --------------------------------------------------------------------------- clamping


def _as_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def clamp(expectation: Expectation, day: dt.date | None, ts: str = "ts") -> Expectation | None:
    """The expectation as the rows of ``day`` see it; None when it cannot fail there.

    Only ``expect_column_values_to_be_between`` on ``ts`` with datetime bounds
    changes: a bound every instant of the day satisfies is dropped.
    """
    if day is None:  # rows without ts: a between check ignores them
        return clamp_to_range(expectation, None, None, ts)
    after = day_start(day + dt.timedelta(days=1))
    return clamp_to_range(expectation, day_start(day), after - dt.timedelta(microseconds=1), ts)


def clamp_to_range(
    expectation: Expectation, first: dt.datetime | None, last: dt.datetime | None, column: str
) -> Expectation | None:
    """The expectation for rows whose ``column`` lies in ``[first, last]`` (None: all null).

    A bound no row can break is dropped; a bound every row breaks moves to
    just outside the range (the result is the same, and so is the cache key).
    """
    kwargs = dict(expectation.kwargs)
    if expectation.type != "expect_column_values_to_be_between" or kwargs.get("column") != column:
        return expectation
    if first is None or last is None:
        return None
    lo, hi = _as_datetime(kwargs.get("min_value")), _as_datetime(kwargs.get("max_value"))
    if lo is not None and (lo < first or (lo == first and not kwargs.get("strict_min"))):
        kwargs.pop("min_value", None)
        kwargs.pop("strict_min", None)
    if hi is not None and (hi > last or (hi == last and not kwargs.get("strict_max"))):
        kwargs.pop("max_value", None)
        kwargs.pop("strict_max", None)
    # A bound every row breaks gives the same result wherever it lies: one value for the key.
    tick = dt.timedelta(microseconds=1)
    if lo is not None and lo > last and "min_value" in kwargs:
        kwargs["min_value"], kwargs["strict_min"] = last + tick, False
    if hi is not None and hi < first and "max_value" in kwargs:
        kwargs["max_value"], kwargs["strict_max"] = first - tick, False
    if kwargs.get("min_value") is None and kwargs.get("max_value") is None:
        return None
    return expectation.with_kwargs(kwargs)


# --------------------------------------------------------------------------- cache


@functools.cache
def _versions() -> dict[str, str]:
    return {
        "cache_format": str(CACHE_FORMAT),
        "great_expectations": importlib.metadata.version("great-expectations"),
        "polars": pl.__version__,
    }


def cache_key(suite: Suite, partition: Partition, expectations: Sequence[Expectation]) -> str:
    material = {
        "versions": _versions(),
        "suite": suite.digest,
        "partition": partition.label,
        "fingerprint": partition.fingerprint,
        "expectations": [e.gx_config() for e in expectations],
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def cache_path(cache_dir: Path, partition: Partition, key: str) -> Path:
    return cache_dir / f"{partition.label}-{key}.json"


def _content_sha256(body: Mapping[str, Any]) -> str:
    """SHA-256 of ``body`` without its ``sha256``, in one canonical JSON form."""
    rest = json.loads(json.dumps({k: v for k, v in body.items() if k != "sha256"}))
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_cache(path: Path) -> list[BatchOutcome] | None:
    """The outcomes cached at ``path``; None if absent, or (with a warning) not to be trusted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object but {type(data).__name__}")
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"cache format {data.get('format')!r}, not {CACHE_FORMAT}")
        if data.get("file") != path.name:
            raise ValueError(f"it is a copy of {data.get('file')!r}")
        if data.get("sha256") != _content_sha256(data):
            raise ValueError("changed since it was written: its sha256 differs")
        return [BatchOutcome.from_json(o) for o in data["outcomes"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring validation cache file %s (%s): validating it again", path, exc)
        return None


def write_cache(path: Path, partition: Partition, outcomes: Sequence[BatchOutcome]) -> None:
    """``outcomes`` at ``path``, atomically: a synced temporary file, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "file": path.name,
        "partition": partition.label,
        "rows": partition.rows,
        "fingerprint": partition.fingerprint,
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "outcomes": [o.to_json() for o in outcomes],
    }
    body["sha256"] = _content_sha256(body)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f"{partition.label}-*.json"):
        if stale != path:  # an older version of this day: it will not be asked for again
            stale.unlink(missing_ok=True)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class PartitionedValidation:
    """Merged outcomes of every partition, and how many were validated or reused."""

    outcomes: Mapping[str, BatchOutcome]
    validated: int
    reused: int
    partitions: tuple[Partition, ...] = field(default=())
    gx_batches: int = 0


def chunks(frame: pl.DataFrame, column: str, max_rows: int) -> Iterator[pl.DataFrame]:
    """``frame`` in batches of about ``max_rows``, each value of ``column`` in one batch."""
    if frame.height <= max_rows:
        yield frame
        return
    n = -(-frame.height // max_rows)
    bucket = (pl.col(column).hash(seed=7) % n).alias("__chunk")
    for _, part in frame.with_columns(bucket).group_by("__chunk", maintain_order=True):
        yield part.drop("__chunk")


@dataclass
class _Pending:
    """An uncached partition: its rows, its expectations, where its result goes."""

    partition: Partition
    rows: pl.DataFrame
    clamped: dict[str, Expectation]  # key -> the expectation as this day sees it
    path: Path | None


def _groups(pending: Sequence[_Pending], max_rows: int) -> Iterator[list[_Pending]]:
    """Consecutive partitions in batches of at most ``max_rows`` rows."""
    group: list[_Pending] = []
    size = 0
    for p in pending:
        if group and size + p.partition.rows > max_rows:
            yield group
            group, size = [], 0
        group.append(p)
        size += p.partition.rows
    if group:
        yield group


def _element_counts(
    group: Sequence[_Pending], expectations: Sequence[Expectation]
) -> dict[tuple[str, int], int]:
    """Rows each column expectation looks at, per partition: (key, index in group) -> n."""
    counts: dict[tuple[str, int], int] = {}
    for i, p in enumerate(group):
        for e in expectations:
            if not is_row_check(e):
                continue
            if e.condition is None:
                counts[e.key, i] = p.partition.rows
            else:
                column, value = parse_condition(e.condition)
                counts[e.key, i] = int(p.rows.select((pl.col(column) == value).sum()).item())
    return counts


def is_row_check(e: Expectation) -> bool:
    """A check of each row's value (GX reports element and unexpected counts for it)."""
    return e.type.startswith(("expect_column_values_to_", "expect_compound_columns_to_")) and (
        e.type not in _SCHEMA_CHECKS
    )


def _passed(e: Expectation, group_result: BatchOutcome, rows: int, n: int | None) -> BatchOutcome:
    """A partition's share of an expectation that passed on its whole batch."""
    observed = rows if e.type.startswith("expect_table_row_count") else group_result.observed
    unexpected = 0 if n is not None else None
    return BatchOutcome(
        e.key, True, element_count=n, unexpected_count=unexpected, observed=observed
    )


def _validate_group(
    group: Sequence[_Pending],
    expectations: Sequence[Expectation],
    validate_batch: BatchValidator,
    chunk_column: str,
    max_batch_rows: int,
) -> list[list[BatchOutcome]]:
    """One GX run over a batch of partitions; failed expectations again per partition.

    An expectation that passes on the batch passes on each of its partitions.
    One that fails is run again on each partition alone (only the failed ones,
    so the repeat is cheap), which gives each partition its own count. An
    expectation clamped away for a partition passes there on every row.
    """
    active = [e for e in expectations if any(e.key in p.clamped for p in group)]
    frame = pl.concat([p.rows for p in group]) if len(group) > 1 else group[0].rows
    batch = merge_outcomes(
        [validate_batch(c, active) for c in chunks(frame, chunk_column, max_batch_rows)],
        [e.key for e in active],
    )
    failed = [k for k, o in batch.items() if not o.success]
    counts = _element_counts(group, expectations)
    results: list[list[BatchOutcome]] = []
    for i, p in enumerate(group):
        retry = [p.clamped[k] for k in failed if k in p.clamped]
        if len(group) == 1:
            again = {k: batch[k] for k in failed}
        elif retry:
            again = merge_outcomes([validate_batch(p.rows, retry)], [e.key for e in retry])
        else:
            again = {}
        outcomes = []
        for e in expectations:
            n = counts.get((e.key, i))
            if e.key in again:
                outcomes.append(again[e.key])
            elif e.key in p.clamped and e.key in batch:
                outcomes.append(_passed(e, batch[e.key], p.partition.rows, n))
            else:  # clamped away: no row of this day can break it
                outcomes.append(BatchOutcome(e.key, True, n, None if n is None else 0))
        results.append(outcomes)
    return results


def _rows_by_day(
    events: pl.DataFrame, days: Sequence[dt.date | None], ts: str
) -> dict[dt.date | None, pl.DataFrame]:
    """The rows of each of ``days`` (None: rows without ``ts``), in one pass over ``events``."""
    if not days:
        return {}
    day = pl.col(ts).dt.date()
    dated = [d for d in days if d is not None]
    wanted = day.is_in(dated) | (day.is_null() if None in days else pl.lit(False))
    parts = (
        events.filter(wanted)
        .with_columns(_day(ts))
        .partition_by("__day", as_dict=True, include_key=False, maintain_order=True)
    )
    return {d: parts.get((d,), events.clear()) for d in days}


def validate_partitions(
    events: pl.DataFrame,
    suite: Suite,
    validate_batch: BatchValidator,
    *,
    cache_dir: Path | None = None,
    revalidate: bool = False,
    max_batch_rows: int = MAX_BATCH_ROWS,
    ts: str = "ts",
) -> PartitionedValidation:
    """Run ``suite``'s GX expectations over each day partition of ``events``.

    With ``cache_dir``, a partition whose key is cached is not validated again
    (``revalidate=True`` validates every partition and refreshes the cache).
    Uncached partitions are validated together, in batches of at most
    ``max_batch_rows`` rows; a partition's result is still its own.
    """
    expectations = suite.gx()
    order = [e.key for e in expectations]
    chunk_column = suite.index_columns[0] if suite.index_columns else ts
    partitions = partition_fingerprints(events, ts)
    if not partitions:  # no rows: the table-level expectations still speak
        empty = validate_batch(events, expectations)
        return PartitionedValidation(merge_outcomes([empty], order), 0, 0, (), 1)
    results: list[Sequence[BatchOutcome]] = []
    todo: list[tuple[Partition, dict[str, Expectation], Path | None]] = []
    for partition in partitions:
        clamped = {e.key: e for e in (clamp(x, partition.day, ts) for x in expectations) if e}
        path = None
        if cache_dir is not None:
            key = cache_key(suite, partition, list(clamped.values()))
            path = cache_path(cache_dir, partition, key)
            cached = None if revalidate else read_cache(path)
            if cached is not None:
                results.append(cached)
                continue
        todo.append((partition, clamped, path))
    rows = _rows_by_day(events, [p.day for p, _, _ in todo], ts)
    pending = [_Pending(p, rows[p.day], clamped, path) for p, clamped, path in todo]
    runs = 0

    def counted(frame: pl.DataFrame, run: Sequence[Expectation]) -> list[BatchOutcome]:
        nonlocal runs
        runs += 1
        return validate_batch(frame, run)

    for group in _groups(pending, max_batch_rows):
        outcomes = _validate_group(group, expectations, counted, chunk_column, max_batch_rows)
        for p, found in zip(group, outcomes, strict=True):
            if p.path is not None:
                write_cache(p.path, p.partition, found)
            results.append(found)
    merged = merge_outcomes(results, order)
    for e in expectations:
        if e.type == _UNIQUE and e.key in merged:
            merged[e.key] = _add_cross_partition_duplicates(merged[e.key], events, e, ts)
    reused = len(partitions) - len(pending)
    return PartitionedValidation(merged, len(pending), reused, tuple(partitions), runs)


def cross_partition_duplicates(events: pl.DataFrame, column: str, ts: str = "ts") -> pl.DataFrame:
    """Rows whose ``column`` value repeats only in other day partitions.

    GX counts, in each partition, the rows whose value repeats *there*; these
    rows complete the count to what GX would find on the whole table.
    """
    key = pl.col(column)
    # Repeated hashes first (a sort of integers: fast), then the exact check on those few rows.
    maybe = events.filter(key.is_not_null() & maybe_repeated(events.get_column(column)))
    repeated = maybe.filter(key.is_duplicated())
    return repeated.filter(pl.len().over(column, _day(ts)) == 1)


def _add_cross_partition_duplicates(
    outcome: BatchOutcome, events: pl.DataFrame, expectation: Expectation, ts: str
) -> BatchOutcome:
    column = str(expectation.kwargs["column"])
    extra = cross_partition_duplicates(events, column, ts)
    if extra.is_empty():
        return outcome
    examples = tuple(f"{column}={v}" for v in extra.get_column(column).head(MAX_EXAMPLES))
    return outcome.merge(
        BatchOutcome(outcome.key, False, unexpected_count=extra.height, examples=examples)
    )
