"""Build a run's :class:`~analysis.results.model.Results` from what the statistics computed.

Only records are built here: every number was computed by the statistics
(:mod:`analysis.comparisons`, :mod:`analysis.segments`, :mod:`analysis.timeline`,
:mod:`analysis.stats`), every reason written is theirs (or, for the trend
caveat, :data:`TREND_CAVEAT`), and
a non-finite number becomes null. The comparison records are built by
:mod:`analysis.results.comparison`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from analysis.comparisons import Comparison, Description
from analysis.config.experiments import Experiment
from analysis.decay import Decay
from analysis.decision import Decision
from analysis.descriptives import TRUST_VALUES
from analysis.failure_patterns import FailurePatterns
from analysis.measurement import Cleaning, ComputedIn, Histogram
from analysis.results.comparison import comparison_record, num, pair
from analysis.results.decay import decay_record
from analysis.results.failures import failure_patterns_record
from analysis.results.model import (
    SCHEMA_VERSION,
    DataRecord,
    DecisionRecord,
    ExperimentRecord,
    MetricsRecord,
    PushdownRecord,
    Results,
    SrmRecord,
    ValidationRecord,
    VariantRecord,
)
from analysis.results.records import (
    BucketRecord,
    DayComparisonRecord,
    DayRecord,
    DescriptiveRecord,
    Distributions,
    FunnelRecord,
    FunnelStep,
    HeterogeneityRecord,
    OverTimeRecord,
    PreExposureRecord,
    SegmentRecord,
    TimeOnTaskHistogram,
    TrendRecord,
    TrustHistogram,
)
from analysis.results.task_flow import task_flow_record
from analysis.results.unsure import unsure_record
from analysis.segments import Heterogeneity, SegmentSlice
from analysis.stats.balance import BalanceResult
from analysis.stats.srm import SrmResult
from analysis.task_flow import TaskFlow
from analysis.timeline import DayPoint, ExposureTrend
from analysis.unsure import ArmCalibration

#: How to read the trend of the weekly lifts (``exposure_trend[].reason`` when the test gave none).
TREND_CAVEAT = (
    "weekly lifts share units, so this trend test treats correlated weeks as "
    "independent and is optimistic; read it as a description"
)


def _slice_record(s: SegmentSlice) -> SegmentRecord:
    r = s.result
    return SegmentRecord(
        dimension=s.dimension,
        value=s.value,
        metric=s.metric.name,
        label=s.metric.label,
        control=s.control,
        treatment=s.treatment,
        n_control=r.control.n if r else None,
        n_treatment=r.treatment.n if r else None,
        lift=num(r.lift) if r else None,
        lift_ci=pair(r.lift_ci) if r else None,
        diff=num(r.diff) if r else None,
        p_value=num(r.p_value) if r else None,
        p_value_adjusted=num(s.p_value_adjusted),
        verdict=s.verdict,
        reason=s.skipped or (r.note if r else None),
    )


class DescriptiveCounts(Protocol):
    """The counts the report draws (funnel and histograms)."""

    @property
    def funnel(self) -> Mapping[str, list[tuple[str, int]]]: ...
    @property
    def time_on_task(self) -> Histogram | None: ...
    @property
    def trust(self) -> Mapping[str, list[int]]: ...


def _distributions(d: DescriptiveCounts | None) -> Distributions:
    if d is None:
        return Distributions()
    trust = TrustHistogram(values=TRUST_VALUES, counts=d.trust)
    if d.time_on_task is None:
        return Distributions(trust_score=trust)
    time = TimeOnTaskHistogram(
        unit="seconds", log10_edges=d.time_on_task.edges, counts=d.time_on_task.counts
    )
    return Distributions(trust_score=trust, time_on_task=time)


def _over_time_record(
    primary: str, points: Sequence[DayPoint], comparisons: Sequence[Comparison]
) -> OverTimeRecord | None:
    if not points:
        return None
    label = next((c.metric.label for c in comparisons if c.metric.name == primary), primary)
    days = [
        DayRecord(
            date=p.day.isoformat(),
            units=p.units,
            comparisons=[
                DayComparisonRecord(
                    control=control,
                    treatment=treatment,
                    lift=num(r.lift),
                    lift_ci=pair(r.lift_ci),
                    sequential_lift_ci=pair(seq.lift_ci),
                )
                for control, treatment, r, seq in p.comparisons
            ],
        )
        for p in points
    ]
    return OverTimeRecord(metric=primary, label=label, days=days)


def _trend_record(t: ExposureTrend) -> TrendRecord:
    buckets = [
        BucketRecord(
            week=w,
            lift=num(r.lift),
            lift_ci=pair(r.lift_ci),
            n_control=r.control.n,
            n_treatment=r.treatment.n,
        )
        for w, r in t.weeks
    ]
    return TrendRecord(
        metric=t.metric.name,
        label=t.metric.label,
        control=t.control,
        treatment=t.treatment,
        buckets=buckets,
        slope=num(t.trend.slope),
        slope_ci=pair(t.trend.slope_ci),
        p_value=num(t.trend.p_value),
        reason=t.trend.note or TREND_CAVEAT,
    )


def _heterogeneity_record(h: Heterogeneity) -> HeterogeneityRecord:
    t = h.test
    return HeterogeneityRecord(
        dimension=h.dimension,
        metric=h.metric.name,
        control=h.control,
        treatment=h.treatment,
        q=num(t.q),
        df=t.df,
        p_value=num(t.p_value),
        i2=num(t.i2),
        segments_tested=t.k,
        reason=t.note,
    )


def _experiment_record(experiment: Experiment) -> ExperimentRecord:
    return ExperimentRecord(
        name=experiment.name,
        hypothesis=experiment.hypothesis,
        owner=experiment.owner,
        status=experiment.status,
        kind=experiment.kind,
        start=experiment.start.isoformat(),
        end=experiment.end.isoformat() if experiment.end else None,
        control=experiment.control,
        variants={k: VariantRecord(share=v.share, ai=v.ai) for k, v in experiment.variants.items()},
        alpha=experiment.alpha,
        source=experiment.source,
        window_days=experiment.window_days,
        metrics=MetricsRecord(
            primary=experiment.metrics.primary,
            secondary=experiment.metrics.secondary,
            guardrails=experiment.metrics.guardrails,
        ),
        segments=experiment.segments,
    )


def _pre_exposure_record(balance: BalanceResult | None) -> PreExposureRecord | None:
    if balance is None:
        return None
    return PreExposureRecord(
        tested=balance.tested,
        threshold=balance.threshold,
        flagged=balance.flagged,
        p_values_adjusted={k: num(v) for k, v in balance.adjusted.items()},
        reason=balance.note,
    )


def _pushdown_record(computed_in: ComputedIn) -> PushdownRecord:
    return PushdownRecord(
        computed_in="database",
        dialect=computed_in.dialect,
        rows_returned=computed_in.rows_returned,
        not_available=computed_in.not_available,
    )


def build_results(
    *,
    experiment: Experiment,
    run_id: str,
    as_of: dt.date,
    generated_at: dt.datetime,
    cleaning: Cleaning,
    quarantined_rows: int,
    validation: Mapping[str, Any],
    srm: SrmResult,
    comparisons: Sequence[Comparison],
    descriptions: Sequence[Description],
    decision: Decision,
    balance: BalanceResult | None = None,
    segments: Sequence[SegmentSlice] = (),
    heterogeneity: Sequence[Heterogeneity] = (),
    pooled_ai: Sequence[Comparison] = (),
    days_elapsed: int = 1,
    over_time: Sequence[DayPoint] = (),
    exposure_trends: Sequence[ExposureTrend] = (),
    descriptives: DescriptiveCounts | None = None,
    computed_in: ComputedIn | None = None,
    failure_patterns: FailurePatterns | None = None,
    decay: Decay | None = None,
    task_flow: TaskFlow | None = None,
    unsure: Sequence[ArmCalibration] = (),
) -> Results:
    """The run's results; every field of results.json is given, ``pushdown`` only with
    ``computed_in``.

    ``validation`` is the validation summary
    (:meth:`analysis.validation_report.ValidationReport.summary`).
    ``days_elapsed`` is not read: each comparison carries its days to the
    planned MDE (:func:`analysis.comparisons.compare_all`).
    """
    planned = experiment.statistics.planned_mde
    optional: dict[str, Any] = {}
    if computed_in is not None:
        optional["pushdown"] = _pushdown_record(computed_in)
    if failure_patterns is not None:  # written only where the events carry failure labels
        optional["failure_patterns"] = failure_patterns_record(failure_patterns)
    if decay is not None:  # written for a holdout only
        optional["decay"] = decay_record(decay)
    if task_flow is not None:  # written where tasks were started
        optional["task_flow"] = task_flow_record(task_flow)
    if unsure:  # written where AI arms have single-output tasks with a confidence or latency
        optional["unsure"] = unsure_record(unsure)
    return Results(
        schema_version=SCHEMA_VERSION,
        experiment_id=experiment.id,
        run_id=run_id,
        analysis_date=as_of.isoformat(),
        generated_at=generated_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        experiment=_experiment_record(experiment),
        data=DataRecord(
            units=cleaning.units,
            events=cleaning.events,
            duplicates_dropped=cleaning.duplicates_dropped,
            crossovers_excluded=cleaning.crossovers_excluded,
            quarantined_rows=quarantined_rows,
        ),
        validation=ValidationRecord.model_validate(validation),
        srm=SrmRecord(
            p_value=num(srm.p_value),
            flagged=srm.flagged,
            chi2=num(srm.chi2),
            expected=srm.expected,
            observed=srm.observed,
            note=srm.note,
        ),
        comparisons=[comparison_record(c, planned) for c in comparisons],
        pooled_ai=[comparison_record(c, planned) for c in pooled_ai],
        pre_exposure=_pre_exposure_record(balance),
        descriptive=[
            DescriptiveRecord(
                metric=d.metric.name,
                label=d.metric.label,
                variant=d.variant,
                n=d.n,
                value=num(d.value),
            )
            for d in descriptions
        ],
        segments=[_slice_record(s) for s in segments],
        heterogeneity=[_heterogeneity_record(h) for h in heterogeneity],
        over_time=_over_time_record(experiment.metrics.primary, over_time, comparisons),
        exposure_trend=[_trend_record(t) for t in exposure_trends],
        funnel=[
            FunnelRecord(variant=v, steps=[FunnelStep(step=s, count=n) for s, n in steps])
            for v, steps in (descriptives.funnel.items() if descriptives else [])
        ],
        distributions=_distributions(descriptives),
        decision=DecisionRecord(recommendation=decision.recommendation, reasons=decision.reasons),
        **optional,
    )
