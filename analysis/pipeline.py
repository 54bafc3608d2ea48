"""The two analysis steps a run is made of, for the flows to call.

``measure`` turns an experiment's tables into per-arm sufficient statistics
(and the few per-unit columns quantiles need); ``summarise`` turns those into
``results.json``. Both are pure functions of their inputs and run without
Prefect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from analysis import timeline
from analysis.aggregates import Moments
from analysis.balance_check import balance_check
from analysis.comparisons import Comparison, Description, compare_all
from analysis.config.experiments import POOLED, Experiment, Metric, Variant
from analysis.decay import effect_decay
from analysis.decision import decide
from analysis.failure_patterns import failure_patterns
from analysis.joint import JointMoments
from analysis.measurement import ArmData, Measurement
from analysis.results import Results, build_results
from analysis.segments import segment_comparisons
from analysis.stats.quantile import QuantileSummary
from analysis.stats.srm import srm_test
from analysis.task_flow import task_flow
from analysis.unsure import unsure


def summarise(
    experiment: Experiment,
    metrics: Sequence[Metric],
    measurement: Measurement,
    validation: Mapping[str, Any],
    run_id: str,
    as_of: dt.date,
    generated_at: dt.datetime,
    quarantined_rows: int = 0,
) -> Results:
    shares = {name: v.share for name, v in experiment.variants.items()}
    by_name = {m.name: m for m in metrics}
    primary = by_name[experiment.metrics.primary]
    srm = srm_test(measurement.cleaning.units, shares)
    comparisons, descriptions = compare_all(experiment, metrics, measurement.data, as_of)
    balance = balance_check(experiment, metrics, measurement.data)
    slices, heterogeneity = segment_comparisons(experiment, metrics, measurement.segments)
    pooled = pooled_ai_comparisons(experiment, metrics, measurement.data, as_of)
    decision = decide(
        experiment,
        comparisons,
        srm,
        bool(validation["success"]),
        as_of,
        balance,
        measurement.cleaning,
        described_guardrails(experiment, descriptions),
    )
    return build_results(
        experiment=experiment,
        run_id=run_id,
        as_of=as_of,
        generated_at=generated_at,
        cleaning=measurement.cleaning,
        quarantined_rows=quarantined_rows,
        validation=dict(validation),
        srm=srm,
        comparisons=comparisons,
        descriptions=descriptions,
        decision=decision,
        balance=balance,
        segments=slices,
        heterogeneity=heterogeneity,
        pooled_ai=pooled,
        over_time=timeline.over_time(experiment, primary, measurement.daily),
        exposure_trends=[
            t
            for name, weekly in measurement.weekly.items()
            for t in timeline.exposure_trends(experiment, by_name[name], weekly)
        ],
        descriptives=measurement,
        computed_in=measurement.computed_in,
        failure_patterns=failure_patterns(experiment, measurement.failures),
        decay=effect_decay(experiment, metrics, measurement.decay),
        task_flow=task_flow(experiment, measurement.flow),
        unsure=unsure(experiment, measurement.unsure),
    )


def described_guardrails(experiment: Experiment, descriptions: Sequence[Description]) -> list[str]:
    """The labels of the guardrails that were only described (not compared), in config order.

    Labels, as the report names metrics: the decision's reasons read them.
    """
    described = {d.metric.name: d.metric.label for d in descriptions}
    return [described[g] for g in experiment.metrics.guardrails if g in described]


def pooled_ai_comparisons(
    experiment: Experiment, metrics: Sequence[Metric], data: ArmData, as_of: dt.date
) -> list[Comparison]:
    """With several AI arms: all AI arms pooled against the non-AI control.

    Answers "does AI help at all?" beside each arm's own comparison. Units of
    the AI arms are merged (moments merge exactly); a quantile of the merged arms
    comes from the engine, which computes it over their events (``ArmData.quantiles``).
    """
    ai = experiment.pooled_ai_variants()
    control = experiment.control
    if not ai:
        return []
    shared = [m for m in metrics if not m.ai_only]
    share = sum(experiment.variants[a].share for a in ai)
    pooled_experiment = experiment.model_copy(
        update={
            "variants": {
                control: experiment.variants[control],
                POOLED: Variant(share=share, ai=True),
            }
        }
    )

    def merge_moments(by_arm: Mapping[str, Moments]) -> dict[str, Moments]:
        merged = Moments.empty()
        for arm in ai:
            merged = merged.merge(by_arm.get(arm, Moments.empty()))
        return {control: by_arm.get(control, Moments.empty()), POOLED: merged}

    def merge_joint(by_arm: Mapping[str, JointMoments]) -> dict[str, JointMoments]:
        k = next(iter(by_arm.values())).k
        merged = JointMoments.empty(k)
        for arm in ai:
            merged = merged.merge(by_arm.get(arm, JointMoments.empty(k)))
        return {control: by_arm.get(control, JointMoments.empty(k)), POOLED: merged}

    def pooled_only(by_arm: Mapping[str, QuantileSummary]) -> dict[str, QuantileSummary]:
        return {arm: by_arm[arm] for arm in (control, POOLED) if arm in by_arm}

    pooled = ArmData(
        moments={k: merge_moments(v) for k, v in data.moments.items()},
        quantiles={k: pooled_only(v) for k, v in data.quantiles.items()},
        joint={k: merge_joint(v) for k, v in data.joint.items() if v},
    )
    comparisons, _ = compare_all(pooled_experiment, shared, pooled, as_of)
    return comparisons
