"""Validate one experiment's raw tables, events per cached day partition, and check a run.

:func:`validate_experiment` validates the assignments and the events per day
partition (:mod:`analysis.partitions`), reusing the results of unchanged
partitions cached under :func:`validation_cache_dir`.
:func:`check_experiment` is everything a run checks before statistics: the
quarantine split, then that validation with its counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from analysis import quarantine
from analysis.config.experiments import Experiment
from analysis.keys import maybe_repeated
from analysis.partitions.batches import MAX_BATCH_ROWS
from analysis.partitions.days import Window, exposure_days
from analysis.partitions.validate import validate_partitions
from analysis.sources.coverage import EventCoverage
from analysis.sources.read import Tables
from analysis.suites.load import DEFAULT_SUITE_DIR, load_suite
from analysis.suites.params import experiment_period, run_params
from analysis.validation.gx import GxBatchValidator
from analysis.validation.tables import (
    _UNASSIGNED_SHARE,
    _frames,
    _report,
    unassigned_share,
)
from analysis.validation_report import ValidationReport

__all__ = ["CheckedData", "check_experiment", "validate_experiment", "validation_cache_dir"]


def validation_cache_dir(out_dir: Path | str, experiment_id: str) -> Path:
    """Where an experiment's per-partition results are cached: ``<out>/.cache/validation/<id>``."""
    return Path(out_dir) / ".cache" / "validation" / experiment_id


def partition_window(experiment: Experiment, as_of: dt.date, now: dt.datetime) -> Window:
    """The days that are event partitions of their own: the experiment's period up to ``now``.

    From the first day of the pre-period to the later of ``as_of`` and the
    day of ``now`` (events of the morning of a run are in the source too).
    """
    since, _ = experiment_period(experiment, as_of)
    return since.date(), max(as_of, now.astimezone(dt.UTC).date())


def validate_experiment(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    quarantine: Mapping[str, Mapping[str, int]] | None = None,
    cache_dir: Path | None = None,
    revalidate: bool = False,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    max_batch_rows: int = MAX_BATCH_ROWS,
    workers: int = 1,
    event_id_repeats: pl.Series | None = None,
) -> ValidationReport:
    """Validate one experiment's raw ``assignments`` and ``events`` (before quarantine).

    Both tables are validated per day partition of the run's window (events
    also cut by their unit's exposure day, :mod:`analysis.partitions.days`).
    With ``cache_dir``, the result of every unchanged partition is reused
    (``revalidate=True`` ignores the cache). ``coverage`` (from
    :func:`analysis.sources.coverage.event_coverage`) feeds the unassigned-event share;
    without it the share is computed from ``tables``. ``quarantine``
    (``QuarantineResult.counts``) is carried into the summary. ``workers``:
    processes that validate event batches at once on large data.
    ``event_id_repeats``: :func:`analysis.keys.maybe_repeated` of the events'
    ``event_id``, when the caller has it.
    """
    now = now or dt.datetime.now(dt.UTC)
    frames = _frames(tables)
    params = run_params(experiment, as_of, now)
    assignments = load_suite("assignments", params, suite_dir)
    events = load_suite("events", params, suite_dir)
    window = partition_window(experiment, as_of, now)
    assigned = validate_partitions(
        frames["assignments"],
        assignments,
        GxBatchValidator("assignments", assignments.index_columns),
        cache_dir=None if cache_dir is None else cache_dir / "assignments",
        revalidate=revalidate,
        max_batch_rows=max_batch_rows,
        ts="assigned_at",
        window=window,
        workers=workers,
    )
    found = dict(assigned.outcomes)
    parted = validate_partitions(
        frames["events"],
        events,
        GxBatchValidator("events", events.index_columns),
        cache_dir=cache_dir,
        revalidate=revalidate,
        max_batch_rows=max_batch_rows,
        window=window,
        exposures=exposure_days(frames["assignments"]),
        workers=workers,
        repeats=None if event_id_repeats is None else {"event_id": event_id_repeats},
    )
    found |= parted.outcomes
    for e in events.proof():
        if e.type == _UNASSIGNED_SHARE and (share := unassigned_share(e, frames, coverage)):
            found[e.key] = share
    return _report(
        [assignments, events],
        found,
        {name: frame.height for name, frame in frames.items()},
        quarantine={t: dict(c) for t, c in (quarantine or {}).items()},
        partitions={
            "validated": parted.validated + assigned.validated,
            "reused": parted.reused + assigned.reused,
        },
    )


@dataclass(frozen=True)
class CheckedData:
    """What the checks of one run found: the quarantine split and the validation report."""

    quarantine: quarantine.QuarantineResult
    report: ValidationReport


def check_experiment(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    cache_dir: Path | None = None,
    revalidate: bool = False,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    workers: int = 1,
) -> CheckedData:
    """Everything a run checks before statistics, reading the tables once.

    :func:`analysis.quarantine.split`, then :func:`validate_experiment` with its
    counts. The caller decides what a failure does: ``report.success`` is
    False when a critical expectation failed (raise
    :class:`CriticalValidationError`); ``quarantine.tables()`` are the rows to
    measure.
    """
    now = now or dt.datetime.now(dt.UTC)
    raw = quarantine.collect_tables(tables)
    # Both steps look for repeated event ids among the same rows: hash them once.
    repeats = maybe_repeated(raw["events"].get_column("event_id"))
    split = quarantine.split(
        raw, experiment, as_of, now=now, suite_dir=suite_dir, event_id_repeats=repeats
    )
    report = validate_experiment(
        raw,
        experiment,
        as_of,
        now=now,
        coverage=coverage,
        quarantine=split.counts,
        cache_dir=cache_dir,
        revalidate=revalidate,
        suite_dir=suite_dir,
        workers=workers,
        event_id_repeats=repeats,
    )
    return CheckedData(split, report)
