"""Every comparison an experiment asks for: each metric, each treatment arm.

Which arms are compared:
* a metric defined for every arm: each treatment arm against the control;
* an AI-only metric (``ai_only: true``): each further AI arm against the first
  AI arm; with a single AI arm it is only described, never compared to a
  control that cannot have it.

Multiple comparisons: the primary metric of a two-arm test is not corrected;
with several treatment arms it is Holm-corrected across those arms; the
secondary and guardrail metrics × arms are Holm-corrected together
(Holm 1979, "A simple sequentially rejective multiple test procedure").
The verdict reads the adjusted p-value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analysis.aggregates import Moments
from analysis.config import Experiment, Metric
from analysis.stats.inference import TwoArmResult, delta_ratio_test, welch_test
from analysis.stats.multiplicity import holm
from analysis.stats.quantile import QuantileSample, quantile_estimate, quantile_test

EMPTY_SAMPLE = QuantileSample(np.empty(0), np.empty(0, dtype=np.int64))

Verdict = str  # "better" | "worse" | "inconclusive"


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: Metric
    role: str  # primary | secondary | guardrail
    control: str
    treatment: str
    result: TwoArmResult
    p_value_adjusted: float | None
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Description:
    """An arm's value of a metric that has nothing to be compared with."""

    metric: Metric
    variant: str
    n: int
    value: float | None


def arm_pairs(experiment: Experiment, metric: Metric) -> list[tuple[str, str]]:
    if metric.ai_only:
        ai = experiment.ai_variants()
        return [(ai[0], t) for t in ai[1:]]
    return [(experiment.control, t) for t in experiment.treatments()]


def _test(
    metric: Metric,
    control: str,
    treatment: str,
    moments: Mapping[str, Moments],
    samples: Mapping[str, QuantileSample],
    alpha: float,
) -> TwoArmResult:
    if metric.kind == "quantile":
        assert metric.quantile is not None
        return quantile_test(
            samples.get(control, EMPTY_SAMPLE),
            samples.get(treatment, EMPTY_SAMPLE),
            metric.quantile,
            alpha,
        )
    c, t = moments.get(control, Moments.empty()), moments.get(treatment, Moments.empty())
    if metric.kind == "ratio":
        return delta_ratio_test(c, t, alpha)
    return welch_test(c, t, alpha)


def verdict_of(metric: Metric, result: TwoArmResult, p_adjusted: float | None, alpha: float) -> str:
    if result.diff is None or p_adjusted is None or p_adjusted >= alpha:
        return "inconclusive"
    improved = (result.diff > 0) == (metric.goal == "increase")
    return "better" if improved else "worse"


def compare_all(
    experiment: Experiment,
    metrics: Sequence[Metric],
    moments: Mapping[str, Mapping[str, Moments]],
    samples: Mapping[str, Mapping[str, QuantileSample]] | None = None,
) -> tuple[list[Comparison], list[Description]]:
    """All comparisons (with adjusted p-values and verdicts) and descriptions."""
    alpha = experiment.alpha
    roles = {experiment.metrics.primary: "primary"}
    roles |= {m: "secondary" for m in experiment.metrics.secondary if m not in roles}
    roles |= {m: "guardrail" for m in experiment.metrics.guardrails if m not in roles}

    raw: list[tuple[Metric, str, str, str, TwoArmResult]] = []
    descriptions: list[Description] = []
    samples = samples or {}
    for metric in metrics:
        if metric.name not in moments and metric.name not in samples:
            continue
        by_arm = moments.get(metric.name, {})
        samples_by_arm = samples.get(metric.name, {})
        pairs = arm_pairs(experiment, metric)
        if metric.ai_only and not pairs:
            descriptions += [
                _describe(metric, arm, by_arm, samples_by_arm, alpha)
                for arm in experiment.ai_variants()
            ]
            continue
        for control, treatment in pairs:
            result = _test(metric, control, treatment, by_arm, samples_by_arm, alpha)
            raw.append((metric, roles[metric.name], control, treatment, result))

    adjusted = _adjust(raw)
    comparisons = [
        Comparison(m, role, c, t, r, p_adj, verdict_of(m, r, p_adj, alpha))
        for (m, role, c, t, r), p_adj in zip(raw, adjusted, strict=True)
    ]
    return comparisons, descriptions


def _describe(
    metric: Metric,
    arm: str,
    by_arm: Mapping[str, Moments],
    samples: Mapping[str, QuantileSample],
    alpha: float,
) -> Description:
    if metric.kind == "quantile":
        assert metric.quantile is not None
        est = quantile_estimate(samples.get(arm, EMPTY_SAMPLE), metric.quantile, alpha)
        value = est.value if math.isfinite(est.value) else None
        return Description(metric, arm, est.n, value)
    m = by_arm.get(arm, Moments.empty())
    if m.n == 0:
        return Description(metric, arm, 0, None)
    value = m.mean_x / m.mean_y if m.mean_y else None
    return Description(metric, arm, m.n, value if value is None or math.isfinite(value) else None)


def _adjust(raw: Sequence[tuple[Metric, str, str, str, TwoArmResult]]) -> list[float | None]:
    """Holm within the primary family and within the secondary+guardrail family."""
    adjusted: list[float | None] = [None] * len(raw)
    for family in (("primary",), ("secondary", "guardrail")):
        idx = [i for i, r in enumerate(raw) if r[1] in family and r[4].p_value is not None]
        ps = [raw[i][4].p_value for i in idx]
        for i, p in zip(idx, holm([p for p in ps if p is not None]), strict=True):
            adjusted[i] = p
    return adjusted
