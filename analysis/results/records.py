"""The records inside ``results.json``: comparisons, segments, timelines, AI use.

Fields are declared in the order the writer (:mod:`analysis.results.build`)
writes them. See :mod:`analysis.results.model` for presence (which fields
have a default, and when a field is written) and numbers (no NaN).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Pair = tuple[float, float]
"""An interval ``[low, high]`` (null as a whole when either end is undefined)."""


class Record(BaseModel):
    """A record of results.json: immutable, no NaN, unknown keys of newer files ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


# --------------------------------------------------------------------------- comparisons


class CupedRecord(Record):
    """CUPED: whether it applied; its estimates (``theta`` .. ``method``) only when it did."""

    applied: bool | None = None
    variance_reduction: float | None = None
    theta: float | None = None
    mean_control: float | None = None
    mean_treatment: float | None = None
    diff: float | None = None
    diff_ci: Pair | None = None
    lift: float | None = None
    lift_ci: Pair | None = None
    p_value: float | None = None
    method: str | None = None
    reason: str | None = None


class SequentialRecord(Record):
    """The always-valid confidence sequence at this sample size."""

    diff_ci: Pair | None = None
    lift_ci: Pair | None = None
    p_value: float | None = None
    reason: str | None = None


class BayesRecord(Record):
    prior: str | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    credible_interval: Pair | None = None
    reason: str | None = None


class PowerRecord(Record):
    mde_absolute: float | None = None
    mde_relative: float | None = None
    power: float | None = None
    planned_mde: float | None = None
    days_to_planned_mde: float | None = None
    reason: str | None = None


class NonInferiorityRecord(Record):
    """A guardrail's test against its margin; ``bound`` is the harmful end of ``basis``."""

    margin: float | None = None
    bound: float | None = None
    p_value: float | None = None
    passed: bool | None = None
    inferior: bool | None = None
    level: float | None = None
    basis: str | None = None
    reason: str | None = None


class ComparisonRecord(Record):
    """One metric, one treatment arm against its baseline arm (``comparisons[]``, ``pooled_ai[]``).

    ``verdict_basis`` names the result the verdict read (``fixed_horizon`` or
    ``sequential``, with ``_cuped`` when CUPED applied);
    ``verdict_p_value_adjusted`` and ``verdict_lift_ci`` are that result's.
    """

    metric: str
    label: str | None = None
    role: str | None = None
    category: str
    kind: str
    goal: str
    control: str
    treatment: str
    n_control: int
    n_treatment: int
    mean_control: float | None
    mean_treatment: float | None
    diff: float | None
    diff_ci: Pair | None
    lift: float | None
    lift_ci: Pair | None
    p_value: float | None
    p_value_adjusted: float | None
    df: float | None = None
    method: str
    note: str | None = None
    cuped: CupedRecord = Field(default_factory=CupedRecord)
    sequential: SequentialRecord = Field(default_factory=SequentialRecord)
    bayes: BayesRecord = Field(default_factory=BayesRecord)
    power: PowerRecord = Field(default_factory=PowerRecord)
    noninferiority: NonInferiorityRecord | None = None
    verdict: str
    verdict_basis: str | None = None
    verdict_p_value_adjusted: float | None = None
    verdict_lift_ci: Pair | None = None


class PreExposureRecord(Record):
    tested: int | None = None
    threshold: float | None = None
    flagged: tuple[str, ...] = ()
    p_values_adjusted: dict[str, float | None] = Field(default_factory=dict)
    reason: str | None = None


class DescriptiveRecord(Record):
    """An AI-only metric's value in the single AI arm (nothing to compare it with)."""

    metric: str | None = None
    label: str | None = None
    variant: str | None = None
    n: int | None = None
    value: float | None = None


class SegmentRecord(Record):
    """One segment value, metric and arm pair; ``p_value_adjusted`` is Benjamini–Hochberg."""

    dimension: str | None = None
    value: str | None = None
    metric: str | None = None
    label: str | None = None
    control: str | None = None
    treatment: str | None = None
    n_control: int | None = None
    n_treatment: int | None = None
    lift: float | None = None
    lift_ci: Pair | None = None
    diff: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    verdict: str | None = None
    reason: str | None = None


class HeterogeneityRecord(Record):
    """Cochran's Q across a dimension's segments."""

    dimension: str | None = None
    metric: str | None = None
    control: str | None = None
    treatment: str | None = None
    q: float | None = None
    df: int | None = None
    p_value: float | None = None
    i2: float | None = None
    segments_tested: int | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- over time


class DayComparisonRecord(Record):
    control: str | None = None
    treatment: str | None = None
    lift: float | None = None
    lift_ci: Pair | None = None
    sequential_lift_ci: Pair | None = None


class DayRecord(Record):
    """The primary metric as a run on ``date`` (ISO) would have read it."""

    date: str | None = None
    units: dict[str, int] = Field(default_factory=dict)
    comparisons: tuple[DayComparisonRecord, ...] = ()


class OverTimeRecord(Record):
    metric: str | None = None
    label: str | None = None
    days: tuple[DayRecord, ...] = ()


class BucketRecord(Record):
    """The lift in one week since exposure (week 0: a unit's first 7 days)."""

    week: int | None = None
    lift: float | None = None
    lift_ci: Pair | None = None
    n_control: int | None = None
    n_treatment: int | None = None


class TrendRecord(Record):
    metric: str | None = None
    label: str | None = None
    control: str | None = None
    treatment: str | None = None
    buckets: tuple[BucketRecord, ...] = ()
    slope: float | None = None
    slope_ci: Pair | None = None
    p_value: float | None = None
    reason: str | None = None


# --------------------------------------------------------------------------- AI use


class FunnelStep(Record):
    step: str | None = None
    count: int | None = None


class FunnelRecord(Record):
    variant: str | None = None
    steps: tuple[FunnelStep, ...] = ()


class TrustHistogram(Record):
    """Trust survey answers: ``counts[arm][i]`` answers of ``values[i]``."""

    values: tuple[int, ...] = ()
    counts: dict[str, tuple[int, ...]] = Field(default_factory=dict)


class TimeOnTaskHistogram(Record):
    """Time on task: ``counts[arm][i]`` tasks between ``10**log10_edges[i]`` and the next."""

    unit: str | None = None
    log10_edges: tuple[float, ...] = ()
    counts: dict[str, tuple[int, ...]] = Field(default_factory=dict)


class Distributions(Record):
    """Histograms per arm; each is left out when the run had no data for it."""

    trust_score: TrustHistogram | None = None
    time_on_task: TimeOnTaskHistogram | None = None


# --------------------------------------------------------------------------- where it fails


class LabelShareRecord(Record):
    """One failure label's share of one AI arm's failure events, with its interval."""

    event: str
    label: str
    arm: str
    units: int = 0
    share: float | None = None
    ci: Pair | None = None


class LabelMoveRecord(Record):
    """One label's share in ``treatment`` against ``control`` (both AI arms)."""

    event: str
    label: str
    control: str
    treatment: str
    control_share: float | None = None
    treatment_share: float | None = None
    diff: float | None = None
    diff_ci: Pair | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    note: str | None = None


class FailurePatternsRecord(Record):
    """``failure_patterns``: shares by label and arm, then the moves, the largest first.

    ``labels_found``: the distinct labels of the failure events, counted up to 201;
    above 200 none is broken down (the label is then no category). ``reason``: why no
    label is broken down, when none is.
    """

    shares: tuple[LabelShareRecord, ...] = ()
    moves: tuple[LabelMoveRecord, ...] = ()
    labels_found: int = 0
    reason: str | None = None


# --------------------------------------------------------------------------- still helping?


class DecayTrendRecord(Record):
    """One trend of a holdout: how the effect (``treatment`` - ``control``) moves per week
    of exposure, or, with ``control`` None, how one arm's own metric moves (observational).

    ``baseline``: the control's (or the arm's) fitted level at week 0; ``slope``: the
    change per week, in the metric's units. ``slope_ci`` is the fixed-horizon
    ``1 - alpha`` interval; ``slope_sequential_ci`` and
    ``p_value`` are always-valid, at the decay record's ``level``; ``decaying``: that
    interval lies wholly on the worse side of 0 for the metric's goal.
    """

    metric: str
    label: str | None = None
    goal: str | None = None
    control: str | None = None
    treatment: str
    units: int = 0
    baseline: float | None = None
    slope: float | None = None
    slope_ci: Pair | None = None
    slope_sequential_ci: Pair | None = None
    p_value: float | None = None
    decaying: bool = False
    note: str | None = None


class DecayRecord(Record):
    """``decay``: a holdout's trends by week since exposure, each judged at ``level``
    (``alpha`` / the number of trends); ``decaying`` when any trend is."""

    decaying: bool
    alpha: float
    level: float
    trends: tuple[DecayTrendRecord, ...] = ()


# --------------------------------------------------------------------------- drop-off points


class FlowShareRecord(Record):
    """One step's share of one arm's started tasks, with its interval."""

    step: str
    label: str
    arm: str
    units: int = 0
    share: float | None = None
    ci: Pair | None = None


class FlowComparisonRecord(Record):
    """One step's share in ``treatment`` against the control (BH across all steps and arms)."""

    step: str
    label: str
    control: str
    treatment: str
    control_share: float | None = None
    treatment_share: float | None = None
    diff: float | None = None
    diff_ci: Pair | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    note: str | None = None


class FlowDivergenceRecord(Record):
    """Where ``treatment`` and the control diverge most: the step with the largest
    difference among those below alpha after adjustment; ``step`` None: none is."""

    control: str
    treatment: str
    step: str | None = None
    label: str | None = None
    diff: float | None = None
    diff_ci: Pair | None = None


class TaskFlowRecord(Record):
    """``task_flow``: the shares by step and arm, the comparisons, the divergences."""

    shares: tuple[FlowShareRecord, ...] = ()
    comparisons: tuple[FlowComparisonRecord, ...] = ()
    diverges: tuple[FlowDivergenceRecord, ...] = ()
