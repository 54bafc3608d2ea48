"""True values of what Proof reads after launch: decay trends, task flow, calibration.

Derived from the generative parameters (:class:`ArmBehaviour`), as
:mod:`analysis.devtools.simulate.truth` derives the metrics'.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping

from scipy import stats

from analysis.devtools.simulate.behaviours import ArmBehaviour
from analysis.devtools.simulate.model import LOW_TRUST_SHARE

__all__ = ["true_task_flow", "true_unsure", "true_weekly_change"]


#: How each metric the decay rule reads moves per week of exposure, per arm: only
#: completion and acceptance move; a shifted acceptance takes its share from the
#: ignored outputs, so edits, rejections and votes per output stay where they were.
_WEEKLY_CHANGE: Mapping[str, Callable[[ArmBehaviour], float]] = {
    "task_completion_rate": lambda b: b.completion_change_per_week,
    "acceptance_rate": lambda b: b.accept_change_per_week,
    "edit_rate": lambda b: 0.0,
    "rejection_rate": lambda b: 0.0,
    "thumbs_down_rate": lambda b: 0.0,
}


def true_weekly_change(
    metric: str, behaviours: Mapping[str, ArmBehaviour], control: str | None, treatment: str
) -> float | None:
    """The true change per week of exposure of a decay trend (:mod:`analysis.decay`): the
    treatment's minus the control's, or with ``control`` None the arm's own; None for a
    metric whose weekly change is not derived here. Exact while no probability is clipped."""
    change = _WEEKLY_CHANGE.get(metric)
    if change is None:
        return None
    own = change(behaviours[treatment])
    return own if control is None else own - change(behaviours[control])


def true_task_flow(b: ArmBehaviour) -> dict[str, float]:
    """The true share of an arm's started tasks at each step of :mod:`analysis.task_flow`.

    A task's AI outputs are Poisson(``ai_shown_per_task``), each accepted, edited or
    rejected independently, so the outputs of each kind are Poisson too (thinning):
    ``P(at least one) = 1 - exp(-mean)``. Outcomes are exclusive and independent of
    the outputs; abandonment is higher for low-trust users (share ``LOW_TRUST_SHARE``).
    Exact while no probability changes with exposure (not a holdout's fading arm).
    """
    shown = b.ai_shown_per_task
    s = LOW_TRUST_SHARE
    return {
        "ai_shown": -math.expm1(-shown),
        "ai_accepted": -math.expm1(-shown * b.accept_prob),
        "ai_edited": -math.expm1(-shown * b.edit_prob),
        "ai_rejected": -math.expm1(-shown * b.reject_prob),
        "completed": b.completion_prob,
        "abandoned": b.abandon_prob * (1 - s + s * b.low_trust_abandon_multiplier),
    }


def true_unsure(b: ArmBehaviour, edges: tuple[float, ...]) -> list[dict[str, float]]:
    """The true rates of each confidence bucket of an arm with a confidence (``confidence_a``
    > 0): c ~ Beta(a, b) with mean m, an output accepted with probability ``accept_prob c / m``,
    so in a bucket B ``accepted = accept_prob E[c | B] / m``, ``confidence = E[c | B]``,
    ``gap`` their difference, edits and rejections unchanged; ``share`` is P(c in B).
    ``E[c | B] = m (I_hi(a+1, b) - I_lo(a+1, b)) / (I_hi(a, b) - I_lo(a, b))`` (I the
    regularised incomplete beta). Exact while acceptance does not change with exposure."""

    a, beta_b = b.confidence_a, b.confidence_b
    mean = a / (a + beta_b)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        share = float(stats.beta.cdf(hi, a, beta_b) - stats.beta.cdf(lo, a, beta_b))
        partial = float(stats.beta.cdf(hi, a + 1, beta_b) - stats.beta.cdf(lo, a + 1, beta_b))
        conditional = mean * partial / share if share > 0 else math.nan
        accepted = b.accept_prob * conditional / mean
        rows.append(
            {
                "share": share,
                "confidence": conditional,
                "accepted": accepted,
                "edited": b.edit_prob,
                "rejected": b.reject_prob,
                "gap": accepted - conditional,
            }
        )
    return rows
