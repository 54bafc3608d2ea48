"""Run a table's suite over the whole table, and report what it found.

:func:`validate_frame` runs the GX expectations in hash chunks of the suite's
index column (the experiment's tables are cached per partition:
:mod:`analysis.partitions`). The cross-table checks Proof evaluates itself
(:func:`unassigned_share`) join them, and :func:`expectation_outcome` makes
each result an outcome of the report. Entry points:
:func:`validate_unit_metrics` (the per-unit metric table) and
:func:`validate_tables` (the tables as given, without partitions or cache).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from analysis.config.experiments import Experiment, Metric
from analysis.partitions.batches import (
    MAX_BATCH_ROWS,
    MAX_EXAMPLES,
    BatchOutcome,
    chunks,
    merge_outcomes,
)
from analysis.sources.coverage import EventCoverage
from analysis.sources.read import Tables
from analysis.suites.load import DEFAULT_SUITE_DIR, Expectation, Suite, load_suite
from analysis.suites.params import run_params, share_params
from analysis.validation.gx import GxBatchValidator
from analysis.validation_report import ExpectationOutcome, ValidationReport

__all__ = [
    "expectation_outcome",
    "unassigned_share",
    "validate_frame",
    "validate_tables",
    "validate_unit_metrics",
]

_ROW_COUNT = "expect_table_row_count_"
_UNASSIGNED_SHARE = "expect_unassigned_event_share_to_be_at_most"


def expectation_outcome(e: Expectation, b: BatchOutcome) -> ExpectationOutcome:
    severity: str = e.severity
    share = e.critical_share
    if (
        share is not None
        and not b.success
        and b.unexpected_count
        and b.element_count
        and b.unexpected_count / b.element_count > share
    ):
        severity = "critical"
    return ExpectationOutcome(
        table=e.table,
        expectation=e.type,
        column=e.column,
        severity=severity,
        success=b.success,
        unexpected_count=b.unexpected_count,
        examples=b.examples,
        element_count=b.element_count,
        condition=e.condition,
        reason=e.reason if e.row_level else None,
        explain=e.explain,
        observed=b.observed,
        error=b.error,
        key=e.key,
    )


def validate_frame(
    suite: Suite, frame: pl.DataFrame, max_batch_rows: int = MAX_BATCH_ROWS
) -> dict[str, BatchOutcome]:
    """GX over a whole table, in hash chunks of the suite's index column.

    Rows sharing an index value fall in one chunk, so uniqueness counts are
    exact; row-count expectations see the whole table's height.
    """
    validator = GxBatchValidator(suite.table, suite.index_columns)
    expectations = suite.gx()
    order = [e.key for e in expectations]
    if frame.height <= max_batch_rows or not suite.index_columns:
        return merge_outcomes([validator(frame, expectations)], order)
    counts = [e for e in expectations if e.type.startswith(_ROW_COUNT)]
    rest = [e for e in expectations if not e.type.startswith(_ROW_COUNT)]
    # One byte per row: GX sees the table's height without its columns.
    height = pl.select(pl.repeat(0, frame.height, dtype=pl.Int8).alias("__rows"))
    batches = [validator(height, counts)] if counts else []
    batches += [
        validator(chunk, rest) for chunk in chunks(frame, suite.index_columns[0], max_batch_rows)
    ]
    return merge_outcomes(batches, order)


def _collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame if isinstance(frame, pl.DataFrame) else frame.collect(engine="streaming")


def _frames(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
) -> dict[str, pl.DataFrame]:
    if isinstance(tables, Tables):
        tables = {"assignments": tables.assignments, "events": tables.events}
    return {name: _collect(frame) for name, frame in tables.items()}


def unassigned_share(
    e: Expectation, frames: Mapping[str, pl.DataFrame], coverage: EventCoverage | None
) -> BatchOutcome | None:
    """Share of events whose unit no assignment names: from the source, else from the tables."""
    if coverage is None:
        if "assignments" not in frames or "events" not in frames:
            return None
        events = frames["events"].filter(pl.col("unit_id").is_not_null())
        orphans = events.join(
            frames["assignments"].select("unit_id").unique(), on="unit_id", how="anti"
        )
        examples = orphans.get_column("unit_id").unique().sort().head(MAX_EXAMPLES)
        coverage = EventCoverage(events.height, orphans.height, tuple(examples))
    limit = float(e.kwargs["max_value"])
    return BatchOutcome(
        key=e.key,
        success=coverage.share <= limit,
        element_count=coverage.events,
        unexpected_count=coverage.unassigned,
        examples=tuple(f"unit_id={u}" for u in coverage.examples),
        observed=round(coverage.share, 6),
    )


def _report(
    suites: Sequence[Suite],
    found: Mapping[str, BatchOutcome],
    rows: Mapping[str, int],
    **counts: Any,
) -> ValidationReport:
    outcomes = tuple(
        expectation_outcome(e, found[e.key])
        for s in suites
        for e in s.expectations
        if e.key in found
    )
    return ValidationReport(outcomes, dict(rows), **counts)


def validate_tables(
    tables: Mapping[str, pl.DataFrame | pl.LazyFrame],
    suite_dir: Path = DEFAULT_SUITE_DIR,
    *,
    experiment: Experiment | None = None,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
    metrics: Sequence[Metric] = (),
    assigned_units: int | None = None,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> ValidationReport:
    """Run each table's suite over the whole table, without partitions or cache.

    Without ``experiment``, expectations that need its parameters (variants,
    dates, value ranges) are left out: only the experiment-free checks run,
    with the default shares of ``validation:`` (``max_null_key_share`` ...).
    """
    now = now or dt.datetime.now(dt.UTC)
    params: dict[str, Any] = dict(share_params())
    if experiment is not None:
        day = as_of or now.date()
        params = run_params(experiment, day, now, metrics=metrics, assigned_units=assigned_units)
    frames = _frames(tables)
    suites = [load_suite(t, params, suite_dir, strict=False) for t in frames]
    found: dict[str, BatchOutcome] = {}
    for suite in suites:
        found |= validate_frame(suite, frames[suite.table], max_batch_rows)
        for e in suite.proof():
            if e.type == _UNASSIGNED_SHARE and (share := unassigned_share(e, frames, None)):
                found[e.key] = share
    return _report(suites, found, {name: frame.height for name, frame in frames.items()})


def validate_unit_metrics(
    table: pl.DataFrame | pl.LazyFrame,
    experiment: Experiment,
    metrics: Sequence[Metric],
    assigned_units: int,
    *,
    as_of: dt.date,
    now: dt.datetime | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> ValidationReport:
    """The per-unit metric table (``metrics.unit_table``) against ``unit_metrics.json``.

    ``assigned_units`` is how many units the table must hold: the clean,
    non-crossed-over units assigned by the end of ``as_of``
    (``QuarantineResult.analysed_units(as_of)``).
    """
    now = now or dt.datetime.now(dt.UTC)
    params = run_params(experiment, as_of, now, metrics=metrics, assigned_units=assigned_units)
    suite = load_suite("unit_metrics", params, suite_dir)
    frame = _collect(table)
    found = validate_frame(suite, frame, max_batch_rows)
    return _report([suite], found, {"unit_metrics": frame.height})
