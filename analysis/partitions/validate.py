"""Run a suite's GX expectations over each day partition of the events.

Uncached partitions are validated together, in batches of at most
``max_batch_rows`` rows, and a partition's result is still its own; cached
partitions are reused (:mod:`analysis.partitions.cache`). GX over pandas runs
on one core: with ``workers`` above 1 and enough rows to validate, the batches
are shared between the run's process and ``workers - 1`` spawned processes
(:func:`analysis.partitions.workers.in_workers`), each holding at most two
batches, and their results are merged in the serial order. Rows whose id
repeats only in other partitions are counted with polars
(:func:`cross_partition_duplicates`), so the merged uniqueness count equals
GX's count on the whole table.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analysis.keys import maybe_repeated
from analysis.partitions.batches import (
    MAX_BATCH_ROWS,
    MAX_EXAMPLES,
    BatchOutcome,
    BatchValidator,
    chunks,
    merge_outcomes,
)
from analysis.partitions.cache import (
    cache_key,
    cache_path,
    read_cache,
    remove_stale,
    write_cache,
)
from analysis.partitions.days import (
    KEYS,
    LATER,
    PART,
    Partition,
    Window,
    clamp_to,
    fingerprints_of,
    keyed,
)
from analysis.partitions.shares import COMPOUND_UNIQUE, UNIQUE, may_fail, split_repeats
from analysis.partitions.workers import in_workers
from analysis.suites.conditions import parse_condition
from analysis.suites.load import Expectation, Suite

_EPOCH = dt.date(1970, 1, 1)
_SCHEMA_CHECKS = ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list")


@dataclass(frozen=True)
class PartitionedValidation:
    """Merged outcomes of every partition, and how many were validated or reused."""

    outcomes: Mapping[str, BatchOutcome]
    validated: int
    reused: int
    partitions: tuple[Partition, ...] = field(default=())
    gx_batches: int = 0


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


#: Below this many rows to validate, worker processes cost more than they save: each
#: starts a Python and imports GX (about 4 s here) before its first batch.
PARALLEL_MIN_ROWS = 2 * MAX_BATCH_ROWS

Validated = tuple[list[list[BatchOutcome]], int]  # each partition's outcomes, GX runs


def _validate_counted(
    group: Sequence[_Pending],
    expectations: Sequence[Expectation],
    validate_batch: BatchValidator,
    chunk_column: str,
    max_batch_rows: int,
) -> Validated:
    """:func:`_validate_group`, and how many GX runs it took (in a worker as in the caller)."""
    runs = 0

    def counted(frame: pl.DataFrame, run: Sequence[Expectation]) -> list[BatchOutcome]:
        nonlocal runs
        runs += 1
        return validate_batch(frame, run)

    found = _validate_group(group, expectations, counted, chunk_column, max_batch_rows)
    return found, runs


def _validate_group(
    group: Sequence[_Pending],
    expectations: Sequence[Expectation],
    validate_batch: BatchValidator,
    chunk_column: str,
    max_batch_rows: int,
) -> list[list[BatchOutcome]]:
    """One GX run over a batch of partitions; failed expectations again per partition.

    An expectation that passes on the batch passes on each of its partitions.
    A failed uniqueness check is shared out among the partitions when GX's
    count for the batch confirms it (:mod:`analysis.partitions.shares`). Any
    other that fails is run again on each partition alone where it may fail
    (only the failed ones, so the repeat is cheap), which gives each
    partition GX's own count. An expectation clamped away for a
    partition passes there on every row.
    """
    active = [e for e in expectations if any(e.key in p.clamped for p in group)]
    frame = pl.concat([p.rows for p in group]) if len(group) > 1 else group[0].rows
    batch = merge_outcomes(
        [validate_batch(c, active) for c in chunks(frame, chunk_column, max_batch_rows)],
        [e.key for e in active],
    )
    failed = [k for k, o in batch.items() if not o.success]
    counts = _element_counts(group, expectations)
    split: dict[str, list[BatchOutcome]] = {}
    if len(group) > 1:
        by_key = {e.key: e for e in active}
        for k in failed:
            shares = split_repeats(by_key[k], [p.rows for p in group], frame, batch[k])
            if shares is not None:
                split[k] = shares
    results: list[list[BatchOutcome]] = []
    for i, p in enumerate(group):
        retry = [
            p.clamped[k]
            for k in failed
            if k in p.clamped and k not in split and may_fail(p.clamped[k], p.rows)
        ]
        if len(group) == 1:
            again = {k: batch[k] for k in failed}
        elif retry:
            again = merge_outcomes([validate_batch(p.rows, retry)], [e.key for e in retry])
        else:
            again = {}
        outcomes = []
        for e in expectations:
            n = counts.get((e.key, i))
            if e.key in split and e.key in p.clamped:
                outcomes.append(split[e.key][i])
            elif e.key in again:
                outcomes.append(again[e.key])
            elif e.key in p.clamped and e.key in batch:
                outcomes.append(_passed(e, batch[e.key], p.partition.rows, n))
            else:  # clamped away: no row of this day can break it
                outcomes.append(BatchOutcome(e.key, True, n, None if n is None else 0))
        results.append(outcomes)
    return results


def _rows_of(
    frame: pl.DataFrame, partitions: Sequence[Partition], every: bool = False
) -> dict[tuple[dt.date | None, bool], pl.DataFrame]:
    """The rows of each of ``partitions`` (by their ``KEYS``), without those columns.

    ``every``: ``partitions`` are all the frame's, so none is filtered out (a
    cold run: the filter would copy every row once more).
    """
    if not partitions:
        return {}
    parts = frame
    if not every:
        # One integer per (day, later) and a set lookup: a semi join on the two key
        # columns took 0.33 s over 10.7M events to pick out one night's partitions, this 0.1 s.
        code = pl.col(PART).cast(pl.Int64) * 2 + pl.col(LATER).cast(pl.Int64)
        days = [_code(p) for p in partitions if p.day is not None]
        undated = {p.later for p in partitions if p.day is None}
        wanted = code.is_in(pl.Series(days, dtype=pl.Int64).implode())
        if undated:
            no_day = pl.col(PART).is_null() & pl.col(LATER).is_in(list(undated))
            wanted = wanted.fill_null(False) | no_day
        parts = frame.filter(wanted)
    by_key = parts.partition_by(*KEYS, as_dict=True, include_key=False, maintain_order=True)
    empty = frame.drop(*KEYS).clear()
    return {(p.day, p.later): by_key.get((p.day, p.later), empty) for p in partitions}


def _code(p: Partition) -> int:
    """:func:`_rows_of`'s integer for a dated partition: days since 1970, twice, plus later."""
    assert p.day is not None
    return (p.day - _EPOCH).days * 2 + int(p.later)


def validate_partitions(
    events: pl.DataFrame,
    suite: Suite,
    validate_batch: BatchValidator,
    *,
    cache_dir: Path | None = None,
    revalidate: bool = False,
    max_batch_rows: int = MAX_BATCH_ROWS,
    ts: str = "ts",
    window: Window | None = None,
    exposures: pl.LazyFrame | None = None,
    workers: int = 1,
    parallel_min_rows: int = PARALLEL_MIN_ROWS,
    repeats: Mapping[str, pl.Series] | None = None,
) -> PartitionedValidation:
    """Run ``suite``'s GX expectations over each day partition of ``events``.

    ``window`` (first and last day) bounds the day partitions: rows before it
    and after it form one partition each (:func:`~analysis.partitions.days.part_of`).
    ``exposures`` (:func:`~analysis.partitions.days.exposure_days`) cuts each
    day's rows of units exposed later into a partition of their own.
    ``workers``: processes that validate batches at once, the run's own
    included, when at least ``parallel_min_rows`` rows are to be validated;
    the results are the same.
    ``repeats``: per column, :func:`analysis.keys.maybe_repeated` of its values in
    the rows' order, where the caller has it (else it is computed here).

    With ``cache_dir``, a partition whose key is cached is not validated again
    (``revalidate=True`` validates every partition and refreshes the cache).
    Uncached partitions are validated together, in batches of at most
    ``max_batch_rows`` rows; a partition's result is still its own.
    """
    expectations = suite.gx()
    order = [e.key for e in expectations]
    chunk_column = suite.index_columns[0] if suite.index_columns else ts
    frame = keyed(events, ts, window, exposures)
    partitions = fingerprints_of(frame, window, ts)
    if not partitions:  # no rows: the table-level expectations still speak
        empty = validate_batch(events, expectations)
        return PartitionedValidation(merge_outcomes([empty], order), 0, 0, (), 1)
    results: list[Sequence[BatchOutcome]] = []
    todo: list[tuple[Partition, dict[str, Expectation], Path | None]] = []
    for partition in partitions:
        clamped = {e.key: e for e in (clamp_to(x, partition, ts) for x in expectations) if e}
        path = None
        if cache_dir is not None:
            key = cache_key(suite, partition, list(clamped.values()))
            path = cache_path(cache_dir, partition, key)
            cached = None if revalidate else read_cache(path)
            if cached is not None:
                results.append(cached)
                continue
        todo.append((partition, clamped, path))
    rows = _rows_of(frame, [p for p, _, _ in todo], every=len(todo) == len(partitions))
    pending = [_Pending(p, rows[p.day, p.later], clamped, path) for p, clamped, path in todo]
    runs = 0
    work = functools.partial(
        _validate_counted,
        expectations=expectations,
        validate_batch=validate_batch,
        chunk_column=chunk_column,
        max_batch_rows=max_batch_rows,
    )
    groups = _groups(pending, max_batch_rows)
    parallel = workers > 1 and sum(p.partition.rows for p in pending) >= parallel_min_rows
    done = in_workers(groups, work, workers) if parallel else ((g, work(g)) for g in groups)
    written: list[Path] = []
    for group, (outcomes, group_runs) in done:
        runs += group_runs
        for p, found in zip(group, outcomes, strict=True):
            if p.path is not None:
                write_cache(p.path, p.partition, found)
                written.append(p.path)
            results.append(found)
    remove_stale(written)
    merged = merge_outcomes(results, order)
    for e in expectations:
        if e.type in (UNIQUE, COMPOUND_UNIQUE) and e.key in merged and e.condition is None:
            merged[e.key] = _add_cross_partition_duplicates(merged[e.key], frame, e, repeats)
    reused = len(partitions) - len(pending)
    return PartitionedValidation(merged, len(pending), reused, tuple(partitions), runs)


def cross_partition_duplicates(
    frame: pl.DataFrame, columns: Sequence[str], repeats: pl.Series | None = None
) -> pl.DataFrame:
    """Rows whose value of ``columns`` repeats only in other partitions.

    ``frame`` carries its partition columns (:func:`~analysis.partitions.days.keyed`).
    GX counts, in each partition, the rows whose value repeats *there*; these
    rows complete the count to what GX would find on the whole table. A row
    with a null in ``columns`` is never a repeat (GX's semantics).
    """
    present = pl.all_horizontal(pl.col(c).is_not_null() for c in columns)
    key = pl.struct(*columns) if len(columns) > 1 else pl.col(columns[0])
    if repeats is None:
        repeats = maybe_repeated(frame.select(key.alias("__key")).to_series())
    # Repeated hashes first (a sort of integers: fast), then the exact check on those few rows.
    maybe = frame.filter(present & repeats)
    repeated = maybe.filter(key.is_duplicated())
    return repeated.filter(pl.len().over(*columns, *KEYS) == 1)


def _add_cross_partition_duplicates(
    outcome: BatchOutcome,
    frame: pl.DataFrame,
    expectation: Expectation,
    repeats: Mapping[str, pl.Series] | None = None,
) -> BatchOutcome:
    kwargs = expectation.kwargs
    columns = [str(c) for c in kwargs.get("column_list") or [kwargs["column"]]]
    known = (repeats or {}).get(columns[0]) if len(columns) == 1 else None
    extra = cross_partition_duplicates(frame, columns, known)
    if extra.is_empty():
        return outcome
    examples = tuple(
        ", ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True))
        for row in extra.select(columns).head(MAX_EXAMPLES).iter_rows()
    )
    return outcome.merge(
        BatchOutcome(outcome.key, False, unexpected_count=extra.height, examples=examples)
    )
