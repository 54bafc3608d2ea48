"""The vocabulary and fixed constants of the simulated data, and the experiment's clock.

The event names, the segment mix, the distribution shapes, the contract's column
types (:data:`ASSIGNMENTS_SCHEMA`, :data:`EVENTS_SCHEMA`), the container of the
generated tables (:class:`SimulatedData`) and :class:`_Timeline`, which turns an
experiment and an ``as_of`` date into microsecond bounds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from analysis.config.experiments import Experiment

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

US_PER_SECOND: Final = 1_000_000
US_PER_DAY: Final = 86_400 * US_PER_SECOND
US_PER_WEEK: Final = 7 * US_PER_DAY

#: The event vocabulary of the contract; an event's code is its index here.
EVENT_NAMES: Final[tuple[str, ...]] = (
    "task_started",
    "task_completed",
    "task_abandoned",
    "retry",
    "ai_shown",
    "ai_accepted",
    "ai_edited",
    "ai_rejected",
    "feedback",
    "trust_survey",
    "support_ticket",
    "ai_latency",
    "ai_cost",
    "ai_error",
    "ai_confidence",  # last: the codes of the others do not move
)
_CODE: Final[dict[str, int]] = {name: code for code, name in enumerate(EVENT_NAMES)}
#: Events that only an arm with AI outputs produces.
AI_EVENTS: Final[frozenset[str]] = frozenset(
    {
        "ai_shown",
        "ai_accepted",
        "ai_edited",
        "ai_rejected",
        "ai_latency",
        "ai_cost",
        "ai_confidence",
    }
)

PLATFORMS: Final[tuple[str, ...]] = ("web", "ios", "android")
PLATFORM_PROBS: Final[tuple[float, ...]] = (0.55, 0.25, 0.20)
PLANS: Final[tuple[str, ...]] = ("free", "pro", "enterprise")
PLAN_PROBS: Final[tuple[float, ...]] = (0.60, 0.30, 0.10)
#: Activity factor of each plan; its mean under PLAN_PROBS is exactly 1, so the
#: segment mix changes levels per segment but not the population expectation.
PLAN_ACTIVITY: Final[tuple[float, ...]] = (0.8, 1.2, 1.6)
#: Gamma shape of the unit-level activity multiplier (mean 1, variance 1/shape).
ACTIVITY_SHAPE: Final = 2.0
#: Share of units with the latent low-trust trait (more abandonment in AI arms).
LOW_TRUST_SHARE: Final = 0.2

#: Log-scale standard deviation of task_completed.value (seconds).
TIME_ON_TASK_SIGMA: Final = 0.6
#: Log-scale standard deviation of ai_latency.value (milliseconds).
AI_LATENCY_SIGMA: Final = 0.5
#: Gamma shape of ai_cost.value (coefficient of variation 1/sqrt(shape)).
AI_COST_SHAPE: Final = 4.0
#: Beta parameters of ai_edited.value, the fraction of the AI output edited.
EDIT_FRACTION_BETA: Final[tuple[float, float]] = (2.0, 3.0)
#: Lognormal (median seconds, sigma) of the time until a task is abandoned, or
#: until an open task's last event; they only place timestamps.
ABANDON_SPAN: Final[tuple[float, float]] = (150.0, 0.8)
OPEN_SPAN: Final[tuple[float, float]] = (600.0, 0.8)
#: Lognormal (median seconds, sigma) of the delay from ai_shown to its outcome.
AI_REACTION: Final[tuple[float, float]] = (15.0, 0.7)
#: Feedback is given up to this many seconds after the task's last event.
FEEDBACK_DELAY_S: Final = 120.0

ASSIGNMENTS_SCHEMA: Final = pl.Schema(
    {
        "experiment_id": pl.String(),
        "unit_id": pl.String(),
        "variant": pl.String(),
        "assigned_at": pl.Datetime("us", "UTC"),
        "platform": pl.String(),
        "plan": pl.String(),
    }
)
EVENTS_SCHEMA: Final = pl.Schema(
    {
        "event_id": pl.String(),
        "unit_id": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
        "event": pl.String(),
        "value": pl.Float64(),
        "task_id": pl.String(),
        "label": pl.String(),
    }
)


@dataclass(frozen=True)
class SimulatedData:
    """The two input tables of the contract, with exactly its column types.

    Attributes:
        assignments: one row per (experiment, unit), plus the crossover rows.
        events: one row per event, plus the duplicated delivery retries.
    """

    assignments: pl.DataFrame
    events: pl.DataFrame


@dataclass(frozen=True)
class _Timeline:
    """The experiment's clock in microseconds since the epoch (UTC).

    Attributes:
        start_us: experiment start, 00:00 UTC: the first possible assignment.
        assign_end_us: assignments happen before this: the end of
            ``min(end, as_of)``.
        end_us: the end of ``as_of`` (exclusive): no event happens at or after it.
        window_us: the analysis window after assignment, or None (until end_us).
        pre_us: the length of the pre-period before assignment.
    """

    start_us: int
    assign_end_us: int
    end_us: int
    window_us: int | None
    pre_us: int

    @classmethod
    def of(cls, experiment: Experiment, as_of: dt.date) -> _Timeline:
        if as_of < experiment.start:
            raise ValueError(
                f"as_of {as_of} is before the start {experiment.start} of {experiment.id!r}: "
                "no unit can have been assigned"
            )
        last_day = as_of if experiment.end is None else min(experiment.end, as_of)
        window = experiment.window_days
        return cls(
            start_us=_day_start_us(experiment.start),
            assign_end_us=_day_start_us(last_day) + US_PER_DAY,
            end_us=_day_start_us(as_of) + US_PER_DAY,
            window_us=None if window is None else window * US_PER_DAY,
            pre_us=experiment.pre_window_days * US_PER_DAY,
        )


def _day_start_us(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY
