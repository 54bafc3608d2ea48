"""The database engine: the run computes where the data lives (DuckDB files, PostgreSQL).

For ``sql`` and ``duckdb`` sources with ``pushdown: true``, and ``spark`` sources
(:mod:`analysis.sql.spark`: the same SQL in Spark's dialect). Rows are never
read into Proof; only the quarantined rows and sufficient statistics come back:

1. :meth:`DatabaseEngine.check` opens the database once and describes both
   tables (:meth:`analysis.sql.database.Database.open`; no row is read), then
   runs the quarantine and the GX suites as SQL on that handle
   (:func:`analysis.sql.gx.check_experiment_sql`): the quarantined rows, the
   counts per reason and the report come back;
2. :meth:`DatabaseEngine.measure` aggregates the rows the quarantine keeps
   (:meth:`analysis.sql.quarantine.SqlQuarantine.used`, on the quarantine's handle and
   with the same ``now``) with :func:`analysis.sql.aggregate.measure_in_database`:
   the moments (winsorised when the experiment asks), segments, quantile
   samples, both timelines, the AI funnel and the two histograms; then GX
   checks the per-unit metric table where it is computed
   (:func:`analysis.sql.gx.validate_unit_metrics_sql`).

On DuckDB and Spark one connection (on Spark, a session) serves the run from
:meth:`DatabaseEngine.check` to the end of :meth:`DatabaseEngine.measure`
(which closes it): the labelled rows, the in-window events and the per-unit
table are each kept once on it (temporary or cached tables), and GX borrows
it to read them. A run that stops between
the two leaves it to be closed when the ``Checked`` is collected.

What it does not compute would be listed in :data:`NOT_AVAILABLE` and recorded
in the measurement (``computed_in``), so that the report says so: today, nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

from analysis.config.experiments import Experiment, Metric
from analysis.config.sources import DatabaseSource, SqlSource
from analysis.engines.base import GX_LOCK, Checked, RunOptions
from analysis.engines.coverage import coverage_of
from analysis.measurement import ComputedIn, Measurement
from analysis.quarantine import raw_cleaning
from analysis.sql.aggregate import measure_in_database
from analysis.sql.aggregate_connect import connection, open_connection
from analysis.sql.database import Database
from analysis.sql.gx import check_experiment_sql, validate_unit_metrics_sql
from analysis.sql.quarantine import SqlQuarantine
from analysis.suites.load import DEFAULT_SUITE_DIR
from analysis.validation_report import CriticalValidationError

#: results.json sections (and checks) the database engine does not compute, and why.
NOT_AVAILABLE: Mapping[str, str] = {}


@dataclass(frozen=True)
class DatabaseEngine:
    """Checks and measures inside the database; ``suite_dir`` holds the GX suites."""

    source_name: str
    source: DatabaseSource
    options: RunOptions
    suite_dir: Path = DEFAULT_SUITE_DIR

    @property
    def name(self) -> str:
        return f"database ({self.source.kind})"

    @property
    def _dialect(self) -> str | None:
        return self.source.dialect if isinstance(self.source, SqlSource) else None

    def check(self, experiment: Experiment, as_of: dt.date) -> Checked[SqlQuarantine]:
        """The quarantine and the GX suites, inside the database.

        Where the connection keeps rows (DuckDB), it stays open for
        :meth:`measure`, which closes it: the quarantine's labelled rows are
        kept once on it for the whole run.
        """
        con = open_connection(self.source_name, self.source, self._dialect)
        if con.keep is None:
            con.close()
        try:
            # tables and columns; no row is read
            db = Database.open(self.source_name, self.source, con if con.keep else None)
            coverage = coverage_of(
                self.source_name, self.source, experiment, as_of, self.options, db.connection
            )
            now = self.options.clock()
            with GX_LOCK:
                held, report = check_experiment_sql(
                    db, experiment, as_of, now=now, coverage=coverage, suite_dir=self.suite_dir
                )
            if not report.success:
                raise CriticalValidationError(report.summary())
        except BaseException:
            con.close()
            raise
        return Checked(report, held.quarantined, held, now)

    def measure(
        self,
        checked: Checked[SqlQuarantine],
        experiment: Experiment,
        metrics: Sequence[Metric],
        as_of: dt.date,
    ) -> Measurement:
        """Per-arm statistics of the rows the quarantine keeps, aggregated inside the database.

        The cleaning counts are those of the polars engine: units per arm of
        the kept rows, and events read, duplicates and crossovers from the
        quarantine. Everything else is the polars engine's too, including the
        GX checks of the per-unit metric table, which run inside the database.
        """
        held = checked.kept
        bases = held.used()
        kept_on = held.database.connection
        with (
            connection(self.source_name, self.source, self._dialect)
            if kept_on is None
            else closing(kept_on)
        ) as con:
            found = measure_in_database(
                self.source_name, self.source, experiment, metrics, as_of,
                connection=con, bases=bases, unique_events=True,
            )  # fmt: skip
            self.options.log(
                f"{experiment.id}: aggregated inside the database ({found.dialect}); "
                f"rows returned: {dict(found.rows)}"
            )
            # On DuckDB, on the connection that keeps the per-unit table: the checks then
            # read it, rather than compute it again.
            on_run = replace(held.database, connection=con) if con.share else held.database
            with GX_LOCK:
                unit_validation = validate_unit_metrics_sql(
                    on_run, found.unit_metrics_sql, experiment, metrics,
                    found.analysed_units, as_of=as_of, now=checked.now, suite_dir=self.suite_dir,
                )  # fmt: skip
        cleaning = raw_cleaning(found.cleaning, held.counts, held.rows_in, held.crossover_units)
        where = ComputedIn(found.dialect, dict(found.rows), tuple(NOT_AVAILABLE))
        return Measurement(
            cleaning=cleaning,
            data=found.data,
            segments=found.segments,
            daily=found.daily,
            weekly=found.weekly,
            funnel=found.funnel,
            time_on_task=found.time_on_task,
            trust=found.trust,
            unit_validation=unit_validation,
            computed_in=where,
            failures=found.failures,
            decay=found.decay,
            flow=found.flow,
            unsure=found.unsure,
        )
