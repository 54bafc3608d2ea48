"""The events of the experiment's period whose unit has no assignment, counted at the source."""

from __future__ import annotations

import datetime as dt

from analysis.config.experiments import Experiment
from analysis.config.sources import AnySource, FileSource, SparkSource
from analysis.engines.base import RunOptions
from analysis.sources.coverage import EventCoverage, coverage_on, event_coverage
from analysis.sources.errors import SourceError
from analysis.sql.aggregate_connect import Connection


def coverage_window(experiment: Experiment, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """From the start of the pre-period to the end of ``as_of``, UTC."""
    start = dt.datetime.combine(experiment.start, dt.time(), dt.UTC)
    since = start - dt.timedelta(days=experiment.pre_window_days)
    until = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    return since, until


def coverage_of(
    source_name: str,
    source: AnySource,
    experiment: Experiment,
    as_of: dt.date,
    options: RunOptions,
    connection: Connection | None = None,
) -> EventCoverage | None:
    """The count, or None with a warning in the log when the source cannot count them.

    On the run's ``connection`` where it has one (DuckDB, Spark): the files of
    a Spark source are views of its session only.
    """
    since, until = coverage_window(experiment, as_of)
    try:
        if connection is not None and not isinstance(source, FileSource):
            return coverage_on(connection, source_name, source, since, until)
        if isinstance(source, SparkSource):
            raise SourceError(f"source {source_name!r}: Spark counts on the run's session")
        return event_coverage(source_name, source, since, until)
    except SourceError as exc:
        options.log(f"cannot count unassigned events: {exc}")
        return None
