"""Where it fails: each failure label's share per AI arm, and how it moves between AI arms.

From the engines' :class:`~analysis.failures.FailureData`: per AI arm, the
share of its failure events (rejections, errors) that carry each label, with a
``1 - alpha`` interval (delta method, clustered by unit, as every ratio
metric); between AI arms (each against the first, as AI-only metrics are
compared), the difference in share with its interval and p-value, the
p-values adjusted together (Benjamini-Hochberg: many labels are tested, the
false discovery rate is controlled), the largest movers first.

Between AI arms the comparison is randomised (units were assigned to the
arms); a share is one of the arm's failures, so a label's share can rise
because the others fell: read the movers together.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.aggregates import Moments
from analysis.comparisons import arm_pairs
from analysis.config.experiments import Experiment
from analysis.failures import FailureData, FailureLabel, labels_of
from analysis.stats.inference import (
    ArmEstimate,
    TwoArmResult,
    delta_ratio_test,
    normal_interval,
    ratio_estimate,
)
from analysis.stats.multiplicity import benjamini_hochberg_where_tested


@dataclass(frozen=True, slots=True)
class LabelShare:
    """One label's share of one AI arm's failure events."""

    failure: FailureLabel
    arm: str
    estimate: ArmEstimate
    ci: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One label's share in one AI arm against another's."""

    failure: FailureLabel
    control: str
    treatment: str
    result: TwoArmResult
    p_adjusted: float | None


@dataclass(frozen=True)
class FailurePatterns:
    """The shares (by label, then arm) and the moves (the largest first)."""

    shares: tuple[LabelShare, ...]
    moves: tuple[LabelMove, ...]
    distinct: int


def failure_patterns(experiment: Experiment, data: FailureData | None) -> FailurePatterns | None:
    """The section, or None when the failure events carry no label at all (with labels
    but none broken down, too many to be categories, the section says so)."""
    if data is None or data.distinct == 0:
        return None
    alpha = experiment.alpha
    labels = labels_of(data)
    shares = []
    for failure in labels:
        by_arm = data.moments.get(failure.metric.name, {})
        for arm in experiment.ai_variants():
            estimate = ratio_estimate(by_arm.get(arm, Moments.empty()))
            shares.append(LabelShare(failure, arm, estimate, normal_interval(estimate, alpha)))
    drafts = []
    for failure in labels:
        by_arm = data.moments.get(failure.metric.name, {})
        for control, treatment in arm_pairs(experiment, failure.metric):
            result = delta_ratio_test(
                by_arm.get(control, Moments.empty()), by_arm.get(treatment, Moments.empty()), alpha
            )
            drafts.append((failure, control, treatment, result))
    adjusted = benjamini_hochberg_where_tested([d[3].p_value for d in drafts])
    moves = [LabelMove(*d, p) for d, p in zip(drafts, adjusted, strict=True)]
    moves.sort(key=lambda m: (m.result.diff is None, -abs(m.result.diff or 0.0)))
    return FailurePatterns(tuple(shares), tuple(moves), data.distinct)
