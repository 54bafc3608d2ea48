"""What an engine hands to the statistics: the measurement contract.

Every engine (:mod:`analysis.engines`) turns an experiment's checked rows into
one :class:`Measurement`: the cleaning counts, per-arm sufficient statistics
(:class:`ArmData`), segments, timelines, the funnel and the histograms. The
statistics (:func:`analysis.pipeline.summarise`) read nothing else, so they
cannot tell which engine ran. The rules every engine applies, named alike in
each: the first assignment of a unit counts, units seen in two arms
(crossovers) are set aside, duplicate event ids count once, and events count
inside the unit's :class:`Window`.

No dataframe or GX import here: only counts and moments cross this line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from analysis.aggregates import Moments
from analysis.joint import JointMoments
from analysis.stats.quantile import QuantileSummary
from analysis.validation_report import ValidationReport


@dataclass(frozen=True, slots=True)
class Window:
    """The analysis window of one run."""

    as_of: dt.date
    window_days: int | None = None
    pre_days: int = 0

    @property
    def end(self) -> dt.datetime:
        """The end of the analysis date, UTC (exclusive)."""
        return dt.datetime.combine(self.as_of + dt.timedelta(days=1), dt.time(), dt.UTC)


@dataclass(frozen=True, slots=True)
class Cleaning:
    """Counts of what the cleaning step set aside (reported in results.json)."""

    events: int
    duplicates_dropped: int
    crossovers_excluded: int
    units: Mapping[str, int]


@dataclass(frozen=True)
class ArmData:
    """Per-arm inputs of the statistics, keyed ``{metric: {variant: ...}}``.

    ``quantiles`` also holds the pooled AI arms (:data:`~analysis.config.experiments.POOLED`)
    when the experiment pools them: a quantile of merged arms is not a merge of theirs.
    """

    moments: Mapping[str, Mapping[str, Moments]]
    quantiles: Mapping[str, Mapping[str, QuantileSummary]] = field(default_factory=dict)
    joint: Mapping[str, Mapping[str, JointMoments]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Histogram:
    edges: tuple[float, ...]
    counts: dict[str, list[int]]


@dataclass(frozen=True)
class ComputedIn:
    """Where an engine ran, for the ``pushdown`` record of results.json.

    ``not_available``: results sections the engine did not compute (the
    report says which and why); empty when it computed all of them.
    """

    dialect: str
    rows_returned: Mapping[str, int]
    not_available: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailureData:
    """What an engine measured of the failure labels.

    Attributes:
        labels: ``(event, label)`` broken down, in order
            (:func:`analysis.failures.top_labels`).
        moments: ``{metric: {variant: Moments}}`` of their share metrics
            (:func:`analysis.failures.failure_metrics` names them).
        distinct: distinct (event, label) pairs found, counted up to
            ``MAX_DISTINCT + 1``; above ``MAX_DISTINCT`` none is broken down
            (:mod:`analysis.failures`).
    """

    labels: tuple[tuple[str, str], ...] = ()
    moments: Mapping[str, Mapping[str, Moments]] = field(default_factory=dict)
    distinct: int = 0


@dataclass(frozen=True)
class FlowData:
    """What an engine measured of the tasks' flow (:mod:`analysis.task_flow`).

    ``moments``: ``{step: {variant: Moments}}``, per unit ``x`` the tasks started
    in its window that reached the step, ``y`` the tasks it started; every kept
    unit enters (0 and 0 without tasks).
    """

    moments: Mapping[str, Mapping[str, Moments]] = field(default_factory=dict)


@dataclass(frozen=True)
class UnsureData:
    """What an engine measured of single-output tasks by bucket (:mod:`analysis.unsure`).

    ``moments``: ``{dimension: {variant: {bucket: {what: Moments}}}}``; ``what`` is an
    outcome (``x`` its tasks), ``confidence`` (``x`` the sum of confidences) or ``gap``
    (``x`` accepted tasks minus that sum); ``y`` the unit's tasks in the bucket, over
    the units with one there.
    """

    moments: Mapping[str, Mapping[str, Mapping[int, Mapping[str, Moments]]]] = field(
        default_factory=dict
    )


@dataclass(frozen=True)
class Measurement:
    """What the statistics need from one experiment's data."""

    cleaning: Cleaning
    data: ArmData
    segments: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Moments]]]]
    daily: Mapping[str, Mapping[dt.date, Moments]] = field(default_factory=dict)
    weekly: Mapping[str, Mapping[str, Mapping[int, Moments]]] = field(default_factory=dict)
    funnel: Mapping[str, list[tuple[str, int]]] = field(default_factory=dict)
    time_on_task: Histogram | None = None
    trust: Mapping[str, list[int]] = field(default_factory=dict)
    unit_validation: ValidationReport | None = None
    computed_in: ComputedIn | None = None
    failures: FailureData | None = None
    flow: FlowData | None = None
    unsure: UnsureData | None = None
    #: ``{metric: {variant: JointMoments}}`` of each unit's decay sums
    #: (:mod:`analysis.stats.decay`), for the trending metrics of a holdout; empty otherwise.
    decay: Mapping[str, Mapping[str, JointMoments]] = field(default_factory=dict)
