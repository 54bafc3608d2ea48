"""The generative parameters of an arm (:class:`ArmBehaviour`) and the defaults per arm."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from analysis.config.experiments import Experiment

#: The labels of simulated ``ai_rejected`` events, in the order of
#: :attr:`ArmBehaviour.reject_reasons`.
REJECT_REASONS: Final = ("wrong_answer", "hallucination", "too_slow", "off_topic")
#: The labels of simulated ``ai_error`` events, in the order of :attr:`ArmBehaviour.error_types`.
ERROR_TYPES: Final = ("timeout", "content_filter", "rate_limited")


@dataclass(frozen=True)
class ArmBehaviour:
    """The generative parameters of one arm.

    Rates are per *exposed day* (a day between assignment and the end of the
    analysis date) and are multiplied by the unit's activity latent, whose mean
    is 1.  All probabilities are validated on construction so that a typo cannot
    silently produce impossible data.

    Attributes:
        tasks_per_day: Poisson rate of ``task_started`` per exposed day.
        completion_prob: P(a task is completed); ``task_completed`` then carries
            the time on task in seconds.
        abandon_prob: P(a task is abandoned) for normal-trust users.  Completion
            and abandonment are exclusive; the remaining tasks stay open.
        low_trust_abandon_multiplier: factor on ``abandon_prob`` for low-trust
            users (unit-level latent with share :data:`LOW_TRUST_SHARE`).
        time_on_task_median_s: median of the lognormal ``task_completed.value``
            (seconds); the log-sd is :data:`TIME_ON_TASK_SIGMA`.
        retries_per_task: Poisson mean of ``retry`` events per task.
        ai_shown_per_task: Poisson mean of ``ai_shown`` events per task (0 for an
            arm without AI, which then has no AI events at all).
        accept_prob: P(an AI output is accepted as is: ``ai_accepted``).
        edit_prob: P(an AI output is accepted after editing: ``ai_edited``, whose
            value, the edited fraction, is Beta(:data:`EDIT_FRACTION_BETA`)).
        reject_prob: P(an AI output is dismissed: ``ai_rejected``); the rest of
            the outputs are ignored (no outcome event).
        ai_latency_median_ms: median of the lognormal ``ai_latency.value``, one
            per ``ai_shown``; the log-sd is :data:`AI_LATENCY_SIGMA`.
        ai_cost_usd: mean of the Gamma ``ai_cost.value`` (USD), one per ``ai_shown``.
        feedback_prob: P(a task gets one ``feedback`` vote).
        thumbs_down_prob: P(a feedback vote is -1); otherwise it is +1.
        survey_prob: P(a unit answers the trust survey, once, in its window).
        trust_probs: probabilities of the Likert answers 1..7 of the survey.
        tickets_per_day: Poisson rate of ``support_ticket`` per exposed day.
        reject_reasons: the ``label`` of an ``ai_rejected`` event: each reason
            (:data:`REJECT_REASONS`) with its probability, adding up to 1. Drawn
            from a random stream of their own, so the other columns do not move.
        error_prob: P(an AI output is followed by an ``ai_error``: a failed call,
            at the output's time, outside any task), from a stream of its own too.
        error_types: the ``label`` of an ``ai_error`` (:data:`ERROR_TYPES`), with
            its probability.
        completion_change_per_week: added to ``completion_prob`` per whole week
            since the unit's exposure (a task started in its week w: ``w`` times),
            clipped to [0, 1]: an effect that fades (or grows) with exposure.
        accept_change_per_week: the same for ``accept_prob`` (an output shown in
            week w), clipped so that accept + edit + reject stays <= 1.
        confidence_a, confidence_b: with ``confidence_a > 0``, each AI output's
            model confidence c ~ Beta(a, b) is logged as an ``ai_confidence`` event
            (value c, the output's task and time), and the output is accepted with
            probability ``accept_prob * c / E[c]`` (edits and rejections unchanged):
            the same acceptance on average, more where the model is surer. Drawn
            from a stream of their own; 0 (the default): no confidence at all.
    """

    tasks_per_day: float
    completion_prob: float
    abandon_prob: float
    low_trust_abandon_multiplier: float
    time_on_task_median_s: float
    retries_per_task: float
    ai_shown_per_task: float
    accept_prob: float
    edit_prob: float
    reject_prob: float
    ai_latency_median_ms: float
    ai_cost_usd: float
    feedback_prob: float
    thumbs_down_prob: float
    survey_prob: float
    trust_probs: tuple[float, ...]
    tickets_per_day: float
    reject_reasons: tuple[float, ...] = (0.40, 0.30, 0.20, 0.10)
    error_prob: float = 0.0
    error_types: tuple[float, ...] = (0.5, 0.3, 0.2)
    completion_change_per_week: float = 0.0
    accept_change_per_week: float = 0.0
    confidence_a: float = 0.0
    confidence_b: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tasks_per_day", "retries_per_task", "ai_shown_per_task", "tickets_per_day"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in (
            "completion_prob",
            "abandon_prob",
            "accept_prob",
            "edit_prob",
            "reject_prob",
            "feedback_prob",
            "thumbs_down_prob",
            "survey_prob",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not self.low_trust_abandon_multiplier >= 0:
            raise ValueError("low_trust_abandon_multiplier must be >= 0")
        worst = self.abandon_prob * max(1.0, self.low_trust_abandon_multiplier)
        if self.completion_prob + worst > 1 + 1e-12:
            raise ValueError(
                "completion_prob + abandon_prob * max(1, low_trust_abandon_multiplier) "
                f"must be <= 1 (got {self.completion_prob + worst:g})"
            )
        if self.accept_prob + self.edit_prob + self.reject_prob > 1 + 1e-12:
            raise ValueError("accept_prob + edit_prob + reject_prob must be <= 1")
        if not self.time_on_task_median_s > 0:
            raise ValueError("time_on_task_median_s must be > 0")
        if self.ai_shown_per_task > 0 and not (
            self.ai_latency_median_ms > 0 and self.ai_cost_usd > 0
        ):
            raise ValueError(
                "an arm with AI outputs needs ai_latency_median_ms and ai_cost_usd > 0"
            )
        if len(self.trust_probs) != 7 or min(self.trust_probs) < 0:
            raise ValueError("trust_probs must be 7 non-negative probabilities (answers 1..7)")
        if abs(sum(self.trust_probs) - 1) > 1e-9:
            raise ValueError(f"trust_probs must add up to 1, not {sum(self.trust_probs):g}")
        for name, names in (("reject_reasons", REJECT_REASONS), ("error_types", ERROR_TYPES)):
            shares = getattr(self, name)
            if len(shares) != len(names) or min(shares) < 0 or abs(sum(shares) - 1) > 1e-9:
                raise ValueError(
                    f"{name} must be {len(names)} probabilities adding up to 1 ({', '.join(names)})"
                )
        for name in ("completion_change_per_week", "accept_change_per_week"):
            if not -1 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (-1, 1), got {getattr(self, name)!r}")
        if self.confidence_a > 0:
            mean = self.confidence_a / (self.confidence_a + self.confidence_b)
            if not self.confidence_b > 0:
                raise ValueError("confidence_b must be > 0 with confidence_a")
            if self.accept_prob / mean > 1 - self.edit_prob - self.reject_prob + 1e-12:
                raise ValueError(
                    "accept_prob / E[confidence] must stay <= 1 - edit_prob - reject_prob "
                    "(a sure output's accept probability)"
                )
        if not 0 <= self.error_prob <= 1:
            raise ValueError(f"error_prob must be in [0, 1], got {self.error_prob!r}")

    @property
    def has_ai(self) -> bool:
        """Whether the arm produces AI events."""
        return self.ai_shown_per_task > 0


def _with_ai_of(base: ArmBehaviour, source: ArmBehaviour) -> ArmBehaviour:
    """``base`` with the AI-output parameters of ``source`` (no AI if it has none)."""
    return replace(
        base,
        ai_shown_per_task=source.ai_shown_per_task,
        accept_prob=source.accept_prob,
        edit_prob=source.edit_prob,
        reject_prob=source.reject_prob,
        ai_latency_median_ms=source.ai_latency_median_ms,
        ai_cost_usd=source.ai_cost_usd,
        reject_reasons=source.reject_reasons,
        error_prob=source.error_prob,
        error_types=source.error_types,
    )


#: Baseline users without AI.
CONTROL_BEHAVIOUR: Final = ArmBehaviour(
    tasks_per_day=0.2,
    completion_prob=0.70,
    abandon_prob=0.15,
    low_trust_abandon_multiplier=1.0,
    time_on_task_median_s=420.0,
    retries_per_task=0.30,
    feedback_prob=0.10,
    thumbs_down_prob=0.30,
    survey_prob=0.25,
    trust_probs=(0.03, 0.05, 0.10, 0.20, 0.30, 0.22, 0.10),
    tickets_per_day=0.010,
    ai_shown_per_task=0.0,
    accept_prob=0.0,
    edit_prob=0.0,
    reject_prob=0.0,
    ai_latency_median_ms=0.0,
    ai_cost_usd=0.0,
)
#: The first AI arm: more and faster completions, fewer tickets, but low-trust
#: users abandon more and the trust survey dips slightly.
AI_BEHAVIOUR: Final = ArmBehaviour(
    tasks_per_day=0.2,
    completion_prob=0.75,
    abandon_prob=0.13,
    low_trust_abandon_multiplier=1.6,
    time_on_task_median_s=420.0 * 0.85,
    retries_per_task=0.33,
    ai_shown_per_task=1.0,
    accept_prob=0.45,
    edit_prob=0.25,
    reject_prob=0.20,
    ai_latency_median_ms=800.0,
    ai_cost_usd=0.004,
    error_prob=0.03,
    feedback_prob=0.15,
    thumbs_down_prob=0.25,
    survey_prob=0.25,
    trust_probs=(0.04, 0.06, 0.11, 0.20, 0.28, 0.21, 0.10),
    tickets_per_day=0.0085,
)
#: A second, better AI arm (e.g. ``ai_v2``): completes a bit more, is trusted
#: more, but is slower and costlier per call.
AI_V2_BEHAVIOUR: Final = ArmBehaviour(
    tasks_per_day=0.2,
    completion_prob=0.77,
    abandon_prob=0.12,
    low_trust_abandon_multiplier=1.4,
    time_on_task_median_s=420.0 * 0.82,
    retries_per_task=0.31,
    ai_shown_per_task=1.0,
    accept_prob=0.52,
    edit_prob=0.24,
    reject_prob=0.15,
    ai_latency_median_ms=900.0,
    ai_cost_usd=0.006,
    feedback_prob=0.15,
    thumbs_down_prob=0.20,
    survey_prob=0.25,
    trust_probs=(0.02, 0.04, 0.09, 0.18, 0.30, 0.24, 0.13),
    tickets_per_day=0.0080,
    reject_reasons=(0.45, 0.15, 0.25, 0.15),  # half the hallucinations of the first
    error_prob=0.03,
    error_types=(0.7, 0.2, 0.1),  # slower: more of its errors are timeouts
)


#: After launch (a holdout's AI arm): the first AI arm's behaviour, whose help fades with
#: exposure: the completion lift (+5 points) loses half a point a week, and acceptance a
#: point a week (novelty wearing off). It logs its confidence (``ai_confidence``).
AI_FADING_BEHAVIOUR: Final = replace(
    AI_BEHAVIOUR,
    completion_change_per_week=-0.005,
    accept_change_per_week=-0.01,
    # and it logs its confidence, overconfidently: Beta(8.5, 1.5) has mean 0.85, while
    # its outputs are accepted 45 % of the time (a "90 % sure" output: 48 %)
    confidence_a=8.5,
    confidence_b=1.5,
)


def default_behaviours(experiment: Experiment, aa: bool = False) -> dict[str, ArmBehaviour]:
    """Plausible parameters for every arm of ``experiment``.

    Non-AI arms get :data:`CONTROL_BEHAVIOUR`; the first AI arm (config order) gets
    :data:`AI_BEHAVIOUR`, and any other AI arm, or one whose name contains
    ``v2``, gets :data:`AI_V2_BEHAVIOUR`. In a holdout (after launch) the AI arms get
    :data:`AI_FADING_BEHAVIOUR`: an effect that fades week after week.

    With ``aa=True`` (an A/A test, where every true lift is 0) all arms get one
    identical behaviour: the control's, plus the first AI arm's AI parameters
    when the experiment has an AI arm, so that AI-only metrics exist and are
    comparable in every arm.
    """
    ai_arms = experiment.ai_variants()
    if aa:
        same = _with_ai_of(CONTROL_BEHAVIOUR, AI_BEHAVIOUR) if ai_arms else CONTROL_BEHAVIOUR
        return dict.fromkeys(experiment.variants, same)
    behaviours: dict[str, ArmBehaviour] = {}
    for name, variant in experiment.variants.items():
        if not variant.ai:
            behaviours[name] = CONTROL_BEHAVIOUR
        elif experiment.kind == "holdout":
            behaviours[name] = AI_FADING_BEHAVIOUR
        elif "v2" in name.lower() or name != ai_arms[0]:
            behaviours[name] = AI_V2_BEHAVIOUR
        else:
            behaviours[name] = AI_BEHAVIOUR
    return behaviours
