"""Drop-off points: how tasks flow through each arm, and where AI and non-AI users part.

A task is the events that share a ``task_id``. Of the tasks a unit started in
its window, each step counts those that reached it: an AI output shown, one
accepted, edited or rejected (a task may do several), the task completed or
abandoned. Per arm, a step's share of started tasks is a ratio metric per unit
(tasks at the step / tasks started; delta method, clustered by unit), which
the engines measure as :class:`~analysis.measurement.FlowData`.

Between each treatment and the control, every step both arms can reach is
compared (the AI steps only when the control has AI too), the p-values
adjusted together (Benjamini-Hochberg), and the step with the largest
difference among those that differ beyond chance is where the arms diverge
most. The arms were randomised, so these are causal; the AI steps within an
arm describe, they do not compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analysis.aggregates import Moments
from analysis.config.experiments import Experiment
from analysis.measurement import FlowData
from analysis.stats.inference import (
    ArmEstimate,
    TwoArmResult,
    delta_ratio_test,
    normal_interval,
    ratio_estimate,
)
from analysis.stats.multiplicity import benjamini_hochberg_where_tested

#: ``(step, the event that marks it, words)``, in the order of the flow.
FLOW_STEPS: tuple[tuple[str, str, str], ...] = (
    ("ai_shown", "ai_shown", "saw an AI output"),
    ("ai_accepted", "ai_accepted", "accepted an AI output"),
    ("ai_edited", "ai_edited", "edited an AI output"),
    ("ai_rejected", "ai_rejected", "rejected an AI output"),
    ("completed", "task_completed", "completed the task"),
    ("abandoned", "task_abandoned", "abandoned the task"),
)
#: The event that starts a task: the denominator of every share.
STARTED = "task_started"
#: The events a task's flow reads.
FLOW_EVENTS: tuple[str, ...] = (STARTED, *(event for _, event, _ in FLOW_STEPS))
#: Steps only an arm with AI can reach.
AI_STEPS = frozenset({"ai_shown", "ai_accepted", "ai_edited", "ai_rejected"})
WORDS: Mapping[str, str] = {step: words for step, _, words in FLOW_STEPS}


@dataclass(frozen=True, slots=True)
class StepShare:
    step: str
    arm: str
    estimate: ArmEstimate
    ci: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class StepComparison:
    step: str
    control: str
    treatment: str
    result: TwoArmResult
    p_adjusted: float | None


@dataclass(frozen=True)
class TaskFlow:
    """Shares by step then arm; comparisons; per pair the step it diverges most at (or None)."""

    shares: tuple[StepShare, ...]
    comparisons: tuple[StepComparison, ...]
    diverges: Mapping[tuple[str, str], StepComparison | None]


def comparable(experiment: Experiment, step: str) -> bool:
    """Whether a treatment and the control can both reach the step."""
    return step not in AI_STEPS or experiment.variants[experiment.control].ai


def task_flow(experiment: Experiment, data: FlowData | None) -> TaskFlow | None:
    """The section; None when no task was started (or the engine did not measure it)."""
    if data is None or not any(
        m.n and m.mean_y for by in data.moments.values() for m in by.values()
    ):
        return None
    alpha = experiment.alpha
    shares = []
    for step, _, _ in FLOW_STEPS:
        by_arm = data.moments.get(step, {})
        for arm, variant in experiment.variants.items():
            if step in AI_STEPS and not variant.ai:
                continue
            estimate = ratio_estimate(by_arm.get(arm, Moments.empty()))
            shares.append(StepShare(step, arm, estimate, normal_interval(estimate, alpha)))
    drafts = []
    for step, _, _ in FLOW_STEPS:
        if not comparable(experiment, step):
            continue
        by_arm = data.moments.get(step, {})
        for treatment in experiment.treatments():
            c = by_arm.get(experiment.control, Moments.empty())
            t = by_arm.get(treatment, Moments.empty())
            drafts.append((step, experiment.control, treatment, delta_ratio_test(c, t, alpha)))
    adjusted = benjamini_hochberg_where_tested([d[3].p_value for d in drafts])
    compared = tuple(StepComparison(*d, p) for d, p in zip(drafts, adjusted, strict=True))
    diverges: dict[tuple[str, str], StepComparison | None] = {}
    for treatment in experiment.treatments():
        mine = [
            c
            for c in compared
            if c.treatment == treatment
            and c.p_adjusted is not None
            and c.p_adjusted < alpha
            and c.result.diff is not None
        ]
        diverges[experiment.control, treatment] = max(
            mine, key=lambda c: abs(c.result.diff or 0.0), default=None
        )
    return TaskFlow(tuple(shares), compared, diverges)
