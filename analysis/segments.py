"""The same comparisons within each value of each segment dimension.

For every configured dimension (platform, plan, …), every value, every
metric and every arm pair, the fixed-horizon comparison of the units in that
slice. Slices with fewer than ``statistics.min_segment_units`` units in an
arm are skipped, and say so. P-values are Benjamini–Hochberg adjusted across
all slices of the run (false discovery rate: many slices, few true
differences). Per dimension, Cochran's Q asks whether the lift differs
between the dimension's values at all (a heterogeneity test).

Quantile metrics are not sliced: their per-event samples are not kept per
segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from analysis.aggregates import Moments
from analysis.comparisons import arm_pairs, fixed_test, verdict_of
from analysis.config.experiments import Experiment, Metric
from analysis.measurement import ArmData
from analysis.stats.heterogeneity import HeterogeneityResult, cochran_q
from analysis.stats.inference import TwoArmResult, lift_variance
from analysis.stats.multiplicity import benjamini_hochberg

SegmentMoments = Mapping[str, Mapping[str, Mapping[str, Mapping[str, Moments]]]]
"""``{dimension: {metric: {segment value: {variant: Moments}}}}``."""


@dataclass(frozen=True, slots=True)
class SegmentSlice:
    dimension: str
    value: str
    metric: Metric
    control: str
    treatment: str
    result: TwoArmResult | None
    p_value_adjusted: float | None
    verdict: str
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Heterogeneity:
    dimension: str
    metric: Metric
    control: str
    treatment: str
    test: HeterogeneityResult


def segment_comparisons(
    experiment: Experiment,
    metrics: Sequence[Metric],
    segments: SegmentMoments,
) -> tuple[list[SegmentSlice], list[Heterogeneity]]:
    alpha = experiment.alpha
    minimum = experiment.statistics.min_segment_units
    raw: list[SegmentSlice] = []
    for dimension, by_metric in segments.items():
        for metric in metrics:
            if metric.kind == "quantile" or metric.name not in by_metric:
                continue
            for value, by_variant in by_metric[metric.name].items():
                data = ArmData(moments={metric.name: by_variant})
                for control, treatment in arm_pairs(experiment, metric):
                    sizes = [by_variant.get(a, Moments.empty()).n for a in (control, treatment)]
                    small = min(sizes) < minimum
                    raw.append(
                        SegmentSlice(
                            dimension=dimension,
                            value=value,
                            metric=metric,
                            control=control,
                            treatment=treatment,
                            result=None
                            if small
                            else fixed_test(metric, control, treatment, data, alpha),
                            p_value_adjusted=None,
                            verdict="inconclusive",
                            skipped=f"fewer than {minimum} units in an arm ({min(sizes)})"
                            if small
                            else None,
                        )
                    )
    tested = [i for i, s in enumerate(raw) if s.result is not None and s.result.p_value is not None]
    adjusted = benjamini_hochberg([p for i in tested if (p := _p(raw[i])) is not None])
    slices = list(raw)
    for i, p in zip(tested, adjusted, strict=True):
        s = raw[i]
        assert s.result is not None
        slices[i] = replace(s, p_value_adjusted=p, verdict=verdict_of(s.metric, s.result, p, alpha))
    return slices, _heterogeneity(slices)


def _p(s: SegmentSlice) -> float | None:
    return s.result.p_value if s.result is not None else None


def _heterogeneity(slices: Sequence[SegmentSlice]) -> list[Heterogeneity]:
    groups: dict[tuple[str, str, str, str], list[SegmentSlice]] = {}
    for s in slices:
        groups.setdefault((s.dimension, s.metric.name, s.control, s.treatment), []).append(s)
    tests = []
    for (dimension, _, control, treatment), members in groups.items():
        estimates: list[float | None] = []
        variances: list[float | None] = []
        for s in members:
            r = s.result
            if r is None or r.lift is None:
                estimates.append(None)
                variances.append(None)
            else:
                estimates.append(r.lift)
                variances.append(lift_variance(r.control, r.treatment))
        test = cochran_q(estimates, variances)
        tests.append(Heterogeneity(dimension, members[0].metric, control, treatment, test))
    return tests
