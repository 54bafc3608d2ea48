"""The polars engine: rows are read into memory, checked and measured with polars.

Two ways of checking, one way of measuring:

- rows read from any source (files, DuckDB, SQL), split by the quarantine and
  validated by GX over bounded pandas batches
  (:func:`analysis.validation.experiment.check_experiment`);
- a DuckDB source with ``validate_in_database: true``: the quarantine and GX
  run as SQL inside the file, on one database handle, and only the kept rows are read
  (:meth:`analysis.sql.database.Database.open`, :func:`analysis.sql.gx.check_experiment_sql`,
  :func:`analysis.sql.quarantine.kept_rows`).

Both hand a :class:`~analysis.quarantine.QuarantineResult` to :meth:`PolarsEngine.measure`,
which reuses the cached per-day partials of unchanged (day, cohort)s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

import polars as pl

from analysis.config.experiments import Experiment, Metric
from analysis.config.sources import DuckDBSource, FileSource, SqlSource
from analysis.engines.base import GX_LOCK, Checked, RunOptions
from analysis.engines.coverage import coverage_of
from analysis.engines.polars_measure import measure
from analysis.measurement import Measurement
from analysis.partials import PartialSpec
from analysis.partials_cache import CacheUse, cached_partials_of, partials_cache_dir
from analysis.quarantine import QuarantineResult, collect_tables
from analysis.sources.read import read_experiment
from analysis.sql.database import Database
from analysis.sql.gx import check_experiment_sql
from analysis.sql.quarantine import kept_rows
from analysis.suites.params import experiment_period
from analysis.validation.experiment import check_experiment, validation_cache_dir
from analysis.validation.tables import validate_unit_metrics
from analysis.validation_report import CriticalValidationError, ValidationReport


@dataclass(frozen=True)
class PolarsEngine:
    """Reads the experiment's rows and computes in memory.

    ``checks_in_database``: the quarantine and GX run inside the DuckDB file and
    only the kept rows are read (a ``duckdb`` source with ``validate_in_database``).
    """

    source_name: str
    source: DuckDBSource | FileSource | SqlSource
    options: RunOptions
    checks_in_database: bool = False

    @property
    def name(self) -> str:
        return "polars, checked in DuckDB" if self.checks_in_database else "polars"

    def check(self, experiment: Experiment, as_of: dt.date) -> Checked[QuarantineResult]:
        now = self.options.clock()
        if self.checks_in_database:
            assert isinstance(self.source, DuckDBSource)
            db = Database.open(self.source_name, self.source)  # tables and columns; no row read
            coverage = coverage_of(self.source_name, self.source, experiment, as_of, self.options)
            with GX_LOCK:
                held, report = check_experiment_sql(
                    db, experiment, as_of, now=now, coverage=coverage
                )
            _raise_if_failed(report)
            split = kept_rows(db, experiment, as_of, held, now=now)
            return Checked(report, split.quarantined, split, now)
        period = experiment_period(experiment, as_of)  # its events without a unit too
        tables = read_experiment(
            self.source_name, self.source, experiment.id, null_units=period, whole=True
        )
        raw = collect_tables(tables)
        coverage = coverage_of(self.source_name, self.source, experiment, as_of, self.options)
        out = self.options.out_dir
        with GX_LOCK:
            checked = check_experiment(
                raw, experiment, as_of, now=now, coverage=coverage,
                cache_dir=validation_cache_dir(out, experiment.id) if out is not None else None,
                revalidate=self.options.revalidate or self.options.no_cache,
                workers=self.options.validation_workers,
            )  # fmt: skip
        _raise_if_failed(checked.report)
        split = checked.quarantine
        return Checked(checked.report, split.quarantined, split, now)

    def measure(
        self,
        checked: Checked[QuarantineResult],
        experiment: Experiment,
        metrics: Sequence[Metric],
        as_of: dt.date,
    ) -> Measurement:
        """Per-arm statistics; per-day partials of unchanged (day, cohort)s come from the cache."""
        clean = checked.kept
        out = self.options.out_dir
        inputs = clean.partial_inputs()
        uses: list[CacheUse] = []

        def partial_rows(spec: PartialSpec) -> pl.LazyFrame:
            assert out is not None
            cache_dir = partials_cache_dir(out, experiment.id)
            rows, use = cached_partials_of(
                inputs, spec, cache_dir, as_of, refresh=self.options.no_cache
            )
            uses.append(use)
            return rows

        def unit_check(table: pl.LazyFrame) -> ValidationReport:
            with GX_LOCK:
                return validate_unit_metrics(
                    table, experiment, metrics, clean.analysed_units(as_of), as_of=as_of,
                    now=checked.now,
                )  # fmt: skip

        measurement = measure(
            clean.tables(), experiment, metrics, as_of, unit_check,
            partial_rows=partial_rows if out is not None else None, unique_events=True,
        )  # fmt: skip
        for use in uses:
            self.options.log(f"{experiment.id}: {use.summary}")
        return replace(measurement, cleaning=clean.cleaning(measurement.cleaning))


def _raise_if_failed(report: ValidationReport) -> None:
    if not report.success:
        raise CriticalValidationError(report.summary())
