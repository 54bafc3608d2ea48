"""A config checked against the data it names, before a run: ``proof check``.

A run trusts the config where a wrong value would only thin the report
silently: a segment column that is not in the assignments table gets no
breakdown, a metric whose events never occur is empty. :func:`check_against_data`
reads one experiment's tables (their columns, the arms and the event names of
its rows; never whole rows into memory at once; on Spark, three queries inside
Spark) and says, in words, what will not work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from analysis.config.experiments import Experiment, Metric
from analysis.config.sources import AnySource, DuckDBSource, FileSource, SparkSource, SqlSource
from analysis.sources.read import read_experiment

__all__ = ["Finding", "check_against_data"]


@dataclass(frozen=True)
class Finding:
    """One line of ``proof check``: ``error`` stops a run, ``warning`` thins its report."""

    level: Literal["ok", "warning", "error"]
    text: str


def _events_of(metrics: Sequence[Metric]) -> dict[str, list[str]]:
    """Event name -> the metrics that read it."""
    found: dict[str, list[str]] = {}
    for m in metrics:
        for agg in (m.value, m.numerator, m.denominator):
            if agg is not None and m.name not in found.setdefault(agg.event, []):
                found[agg.event].append(m.name)
    return found


Held = tuple[list[str], dict[str, int], set[str]]
"""The assignments' columns, units per arm assigned before the end, the event names seen."""


def _held_in_memory(
    source_name: str,
    source: DuckDBSource | FileSource | SqlSource,
    experiment: Experiment,
    end: dt.datetime,
) -> Held:
    tables = read_experiment(source_name, source, experiment.id)
    columns = tables.assignments.collect_schema().names()
    arms = (
        tables.assignments.filter(pl.col("assigned_at") < end)
        .group_by("variant")
        .agg(pl.col("unit_id").drop_nulls().n_unique().alias("units"))  # a null is no unit
        .collect()
    )
    units = dict(zip(arms.get_column("variant").to_list(), arms.get_column("units"), strict=True))
    seen = set(
        tables.events.select(pl.col("event").unique()).collect().get_column("event").to_list()
    )
    return columns, units, seen


def _held_in_spark(
    source_name: str, source: SparkSource, experiment: Experiment, end: dt.datetime
) -> Held:
    """:func:`_held_in_memory`'s answers as three Spark SQL queries (no row comes back)."""
    from sqlglot import exp

    from analysis.sql.database import Database
    from analysis.sql.expressions import column, literal
    from analysis.sql.rows import experiment_queries
    from analysis.sql.spark import spark_connection

    with spark_connection(source_name, source) as con:
        db = Database.open(source_name, source, con)
        queries = experiment_queries(db.tables, experiment.id)
        per_arm = (
            exp.select(
                column("variant"), exp.Count(this=exp.Distinct(expressions=[column("unit_id")]))
            )
            .from_(queries["assignments"].subquery("a"))
            .where(column("assigned_at") < literal(end))
            .group_by(column("variant"))
        )
        events = exp.select(column("event")).distinct().from_(queries["events"].subquery("e"))
        arms = db.fetch(per_arm.sql(dialect="spark"))
        seen = db.fetch(events.sql(dialect="spark")).to_series().to_list()
    units = {str(arm): int(n) for arm, n in arms.iter_rows()}
    return list(db.tables["assignments"].columns), units, set(seen)


def check_against_data(
    source_name: str,
    source: AnySource,
    experiment: Experiment,
    metrics: Sequence[Metric],
    as_of: dt.date,
) -> list[Finding]:
    """What a run of ``experiment`` as of ``as_of`` would miss in its data.

    Raises what reading the source raises (:class:`~analysis.sources.errors.SourceError`:
    a missing table or column, an unreachable database). A Spark source is
    asked inside Spark (:func:`_held_in_spark`): only the counts come back.
    """
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    if isinstance(source, SparkSource):
        columns, units, seen = _held_in_spark(source_name, source, experiment, end)
    else:
        columns, units, seen = _held_in_memory(source_name, source, experiment, end)
    findings: list[Finding] = []
    if not units:
        return [
            Finding(
                "error",
                f"no assignment of experiment {experiment.id!r} by the end of {as_of} in "
                f"source {source_name!r}: check the experiment id and the start date",
            )
        ]
    shown = ", ".join(f"{arm} {n:,}" for arm, n in sorted(units.items(), key=lambda x: str(x[0])))
    findings.append(Finding("ok", f"units assigned by {as_of}: {shown}"))
    findings += [
        Finding("warning", f"arm {arm!r} has no assigned unit in the data")
        for arm in experiment.variants
        if arm not in units
    ]
    unknown = sorted(str(a) for a in units if a not in experiment.variants)
    if unknown:
        text = f"the data assigns units to arms the config does not name: {unknown}"
        findings.append(Finding("warning", text))
    findings += [
        Finding(
            "warning",
            f"segment {segment!r} is not a column of the assignments table "
            f"(it has: {', '.join(columns)}): the report will have no breakdown by it",
        )
        for segment in experiment.segments
        if segment not in columns
    ]
    for event, readers in sorted(_events_of(metrics).items()):
        if event not in seen:
            findings.append(
                Finding(
                    "warning",
                    f"no event {event!r} among the experiment's events: "
                    f"{', '.join(readers)} will have no data",
                )
            )
    findings.append(Finding("ok", f"event names seen: {len(seen)}"))
    return findings
