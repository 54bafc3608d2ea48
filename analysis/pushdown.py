"""A whole run inside the database, for ``sql`` and ``duckdb`` sources with ``pushdown: true``.

The polars path reads every row of the experiment, splits off the quarantine,
validates with GX over pandas copies and aggregates in memory. Here each step
runs where the data lives and only small results come back:

1. :func:`probe` connects and describes both tables (the flow's ``load``;
   no row is read);
2. :func:`check` runs the quarantine and the GX suites as SQL
   (:func:`analysis.validation_sql.check_experiment_sql`): the quarantined
   rows, the counts per reason and the :class:`ValidationReport` come back;
3. :func:`measure` aggregates the rows the quarantine keeps
   (:func:`analysis.validation_sql.used_rows`, with the same ``now``) with
   :func:`analysis.warehouse.measure_in_database`: cleaning counts, moments,
   CUPED joint moments, segments and quantile samples — the inputs of
   :func:`analysis.pipeline.summarise`, equal to the polars path's.

Not pushed down (yet): the day-by-day and by-week timelines, the AI funnel,
the time-on-task and trust histograms, the per-unit metric checks
(``expectations/unit_metrics.json``) and winsorisation; :data:`NOT_AVAILABLE`
lists the results sections a push-down run leaves empty, and
:func:`annotate` records them in ``results.json`` so that the report says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.config import DuckDBSource, Experiment, Metric, Source, SqlSource
from analysis.pipeline import Measurement
from analysis.quarantine import raw_cleaning
from analysis.sources import EventCoverage, SourceError
from analysis.suites import DEFAULT_SUITE_DIR
from analysis.validation import ValidationReport
from analysis.validation_sql import SqlQuarantine, check_experiment_sql, check_source, used_rows
from analysis.warehouse import WarehouseMeasurement, measure_in_database

__all__ = [
    "NOT_AVAILABLE",
    "DatabaseCheck",
    "annotate",
    "check",
    "enabled",
    "measure",
    "probe",
]

#: results.json sections (and checks) a push-down run does not compute.
NOT_AVAILABLE: Mapping[str, str] = {
    "over_time": "the lift over time",
    "exposure_trend": "the lift by week since exposure",
    "funnel": "the AI funnel",
    "distributions": "the time-on-task and trust histograms",
    "unit_metrics": "the checks of the per-unit metric table",
}


@dataclass(frozen=True)
class DatabaseCheck:
    """What the checks found inside the database.

    ``quarantine`` holds only the quarantined rows and the counts; ``now`` is
    the time the quarantine ran with (``ts_in_future``), which the aggregation
    over the kept rows must use too.
    """

    quarantine: SqlQuarantine
    report: ValidationReport
    now: dt.datetime


def enabled(source: Source) -> bool:
    """Whether a run over ``source`` is pushed down into the database."""
    return isinstance(source, SqlSource | DuckDBSource) and source.pushdown


def probe(source_name: str, source: SqlSource | DuckDBSource) -> None:
    """Connect and check both tables and their columns; reads no row.

    Raises :class:`SourceError` (unset variable, unreachable database, missing
    table or column), naming the source and never the URI.
    """
    check_source(source_name, source)


def check(
    source_name: str,
    source: SqlSource | DuckDBSource,
    experiment: Experiment,
    as_of: dt.date,
    *,
    coverage: EventCoverage | None = None,
    now: dt.datetime | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> DatabaseCheck:
    """Quarantine and validation inside the database (the SQL twin of ``check_experiment``).

    The caller decides what a failure does: ``report.success`` is False when a
    critical expectation failed.
    """
    now = now or dt.datetime.now(dt.UTC)
    held, report = check_experiment_sql(
        source_name, source, experiment, as_of, now=now, coverage=coverage, suite_dir=suite_dir
    )
    return DatabaseCheck(held, report, now)


def measure(
    source_name: str,
    source: SqlSource | DuckDBSource,
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
    checked: DatabaseCheck,
    *,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> tuple[Measurement, WarehouseMeasurement]:
    """Per-arm statistics of the rows the quarantine keeps, aggregated inside the database.

    The cleaning counts are those of the polars path (``QuarantineResult.cleaning``):
    units per arm of the kept rows, and events read, duplicates and crossovers
    from the quarantine. The timelines, the funnel and the histograms are left
    empty (:data:`NOT_AVAILABLE`). Returns the measurement and what ran in the
    database (queries, rows returned).

    Raises:
        SourceError: the experiment winsorises (``statistics.winsorize_percentile``),
            which is not pushed down.
    """
    if experiment.statistics.winsorize_percentile is not None:
        raise SourceError(
            f"source {source_name!r}: experiment {experiment.id!r} winsorises "
            "(statistics.winsorize_percentile), which is not pushed down into the "
            "database; set pushdown: false for this source or remove the option"
        )
    bases = used_rows(source_name, source, experiment, as_of, now=checked.now, suite_dir=suite_dir)
    dialect = source.dialect if isinstance(source, SqlSource) else None
    found = measure_in_database(
        source_name, source, experiment, metrics, as_of,
        dialect=dialect, bases=bases, unique_events=True,
    )  # fmt: skip
    held = checked.quarantine
    cleaning = raw_cleaning(found.cleaning, held.counts, held.rows_in, held.crossover_units)
    return Measurement(cleaning=cleaning, data=found.data, segments=found.segments), found


def annotate(results: Mapping[str, Any], found: WarehouseMeasurement) -> dict[str, Any]:
    """``results`` with a ``pushdown`` record: where it ran and what it did not compute."""
    return {
        **results,
        "pushdown": {
            "computed_in": "database",
            "dialect": found.dialect,
            "rows_returned": dict(found.rows),
            "not_available": list(NOT_AVAILABLE),
        },
    }
