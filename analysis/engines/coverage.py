"""The events of the experiment's period whose unit has no assignment, counted at the source."""

from __future__ import annotations

import datetime as dt

from analysis.config.experiments import Experiment
from analysis.config.sources import DuckDBSource, FileSource, SqlSource
from analysis.engines.base import RunOptions
from analysis.sources.coverage import EventCoverage, event_coverage
from analysis.sources.errors import SourceError


def coverage_window(experiment: Experiment, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """From the start of the pre-period to the end of ``as_of``, UTC."""
    start = dt.datetime.combine(experiment.start, dt.time(), dt.UTC)
    since = start - dt.timedelta(days=experiment.pre_window_days)
    until = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    return since, until


def coverage_of(
    source_name: str,
    source: DuckDBSource | FileSource | SqlSource,
    experiment: Experiment,
    as_of: dt.date,
    options: RunOptions,
) -> EventCoverage | None:
    """The count, or None with a warning in the log when the source cannot count them."""
    since, until = coverage_window(experiment, as_of)
    try:
        return event_coverage(source_name, source, since, until)
    except SourceError as exc:
        options.log(f"cannot count unassigned events: {exc}")
        return None
