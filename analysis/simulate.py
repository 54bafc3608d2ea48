"""A seeded, vectorised generator of realistic experiment data, and its ground truth.

Why this exists: the pipeline's statistics can only be trusted if they recover
effects we planted ourselves.  This module simulates the two input tables of the
data contract (``assignments`` and ``events``) from a small, documented set of
generative parameters per arm (:class:`ArmBehaviour`), and derives *analytically*
the population value of every metric of the catalog (:func:`true_metric_values`),
so that tests and demos can compare what the pipeline estimates with what is true.

The generative model, per experiment:

* **Units.** Each unit gets a variant (config shares), a platform and a plan
  (fixed probabilities), an assignment time uniform over
  ``[start 00:00 UTC, min(end, as_of) + 1 day)``, a latent *activity* multiplier
  (plan factor times a Gamma(``ACTIVITY_SHAPE``) draw with mean 1, so that the
  pre-period predicts the in-experiment period, as CUPED expects of real users)
  and a latent *low-trust* flag (share :data:`LOW_TRUST_SHARE`).
* **Tasks.** A unit starts tasks as a Poisson process of rate
  ``tasks_per_day * activity`` between its assignment and the end of ``as_of``.
  Each task ends completed, abandoned or open (exclusive outcomes), has Poisson
  retries, Poisson AI outputs (each with an accept/edit/reject/ignore outcome, one
  latency and one cost event) and possibly one feedback vote.  All events of a
  task share its ``task_id`` and fall in the same analysis segment as its
  ``task_started`` (follow-ups are clipped to the segment end, see below).
* **Once per unit / per day.** A unit may answer the trust survey once, inside its
  analysis window; support tickets are a Poisson process like tasks.
* **Pre-period.** Every unit also has control-like task and ticket events (no AI
  events, no survey) in ``[assigned_at - pre_window_days, assigned_at)``.
* **Dirt.** A share of event rows is delivered twice (same ``event_id``, identical
  row) and a share of units is assigned a second time to another variant.

Segments (platform, plan) shift activity levels equally in every arm, so true
values and lifts do not depend on the segment mix.

Everything is drawn from one ``numpy.random.default_rng(seed)`` with no Python
loop over units, tasks or events: counts are drawn per unit and expanded with
``np.repeat``, and string columns are built by polars.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from statistics import NormalDist
from typing import Final, Literal

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from analysis.config import EventAggregate, Experiment, Metric

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

US_PER_SECOND: Final = 1_000_000
US_PER_DAY: Final = 86_400 * US_PER_SECOND

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
)
_CODE: Final[dict[str, int]] = {name: code for code, name in enumerate(EVENT_NAMES)}
#: Events that only an arm with AI outputs produces.
AI_EVENTS: Final[frozenset[str]] = frozenset(
    {"ai_shown", "ai_accepted", "ai_edited", "ai_rejected", "ai_latency", "ai_cost"}
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
    }
)

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(64)


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
)


def default_behaviours(experiment: Experiment, aa: bool = False) -> dict[str, ArmBehaviour]:
    """Plausible parameters for every arm of ``experiment``.

    Non-AI arms get :data:`CONTROL_BEHAVIOUR`; the first AI arm (config order) gets
    :data:`AI_BEHAVIOUR`, and any other AI arm, or one whose name contains
    ``v2``, gets :data:`AI_V2_BEHAVIOUR`.

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
        elif "v2" in name.lower() or name != ai_arms[0]:
            behaviours[name] = AI_V2_BEHAVIOUR
        else:
            behaviours[name] = AI_BEHAVIOUR
    return behaviours


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


@dataclass(frozen=True)
class _ArmTable:
    """ArmBehaviour fields as arrays indexed by *parameter set*.

    Sets ``0..k-1`` are the experiment's variants in config order; set ``k`` is
    the pre-period behaviour (the control's, without AI).  Indexing an array by a
    per-unit or per-task set code gathers every parameter without a Python loop.
    """

    values: dict[str, FloatArray]
    trust_cdf: FloatArray  # (sets, 7) cumulative trust_probs

    @classmethod
    def of(cls, sets: Sequence[ArmBehaviour]) -> _ArmTable:
        scalar = [f.name for f in fields(ArmBehaviour) if f.name != "trust_probs"]
        values = {
            name: np.array([float(getattr(b, name)) for b in sets], dtype=np.float64)
            for name in scalar
        }
        probs = np.array([b.trust_probs for b in sets], dtype=np.float64)
        return cls(values, np.cumsum(probs, axis=1))

    def __getitem__(self, name: str) -> FloatArray:
        return self.values[name]


class _EventSink:
    """Collects event columns as numpy pieces and concatenates them once."""

    def __init__(self) -> None:
        self.unit: list[IntArray] = []
        self.ts: list[IntArray] = []
        self.code: list[npt.NDArray[np.uint8]] = []
        self.value: list[FloatArray] = []
        self.task: list[IntArray] = []

    def add(
        self,
        event: str,
        unit: IntArray,
        ts: IntArray,
        value: FloatArray | None = None,
        task: IntArray | None = None,
    ) -> None:
        n = len(unit)
        self.unit.append(unit)
        self.ts.append(ts)
        self.code.append(np.full(n, _CODE[event], dtype=np.uint8))
        self.value.append(np.full(n, np.nan) if value is None else value)
        self.task.append(np.full(n, -1, dtype=np.int64) if task is None else task)

    def frame(self, rng: np.random.Generator, duplicate_rate: float) -> pl.DataFrame:
        """All events as numeric columns in time order, ``n`` the event number (its id).

        Rows are sorted by time, like an event log, so that event numbers grow
        with time and any slice of the table (a parquet part) looks like real
        data.  A share ``duplicate_rate`` of the rows is then appended once more,
        number included: delivery retries of the same event.  The pieces are
        released as they are concatenated, to keep the peak memory low.
        """
        columns: dict[str, npt.NDArray[np.generic]] = {}
        for name in ("unit", "ts", "code", "value", "task"):
            pieces: list[npt.NDArray[np.generic]] = getattr(self, name)
            columns[name] = np.concatenate(pieces)
            pieces.clear()
        log = pl.DataFrame(columns).sort("ts", maintain_order=True).with_row_index("n")
        del columns
        again = np.flatnonzero(rng.random(log.height) < duplicate_rate)
        return pl.concat([log, log[again]]).with_columns(pl.col("n").cast(pl.Int64))


def _uniform_us(rng: np.random.Generator, lo: IntArray, hi: IntArray) -> IntArray:
    """Uniform integer microseconds in ``[lo, hi)`` (``lo`` where the span is 0)."""
    return lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)


def _lognormal(
    rng: np.random.Generator, median: FloatArray | float, sigma: float, n: int
) -> FloatArray:
    return np.asarray(median * np.exp(sigma * rng.standard_normal(n)), dtype=np.float64)


def _seconds_us(seconds: FloatArray) -> IntArray:
    return np.rint(seconds * US_PER_SECOND).astype(np.int64)


def _decode(names: Sequence[str], codes: npt.NDArray[np.integer]) -> pl.Series:
    """Map integer codes to their names via an Enum gather and a String cast."""
    return pl.Series(values=list(names), dtype=pl.Enum(list(names))).gather(codes).cast(pl.String)


def simulate_experiment(
    experiment: Experiment,
    units: int,
    as_of: dt.date,
    seed: int,
    behaviours: Mapping[str, ArmBehaviour] | None = None,
    aa: bool = False,
    duplicate_rate: float = 0.002,
    crossover_rate: float = 0.0005,
) -> SimulatedData:
    """Simulate ``units`` units of one experiment observed up to the end of ``as_of``.

    ``behaviours`` defaults to :func:`default_behaviours` (``aa`` is passed on;
    it is ignored when ``behaviours`` is given).  A share ``duplicate_rate`` of
    event rows is appended a second time (identical rows, same ``event_id``), and
    a share ``crossover_rate`` of units gets a second assignment row in another
    variant, so that the pipeline's de-duplication and crossover handling are
    exercised.  The result depends only on the arguments.
    """
    if units < 1:
        raise ValueError(f"units must be >= 1, got {units}")
    if not (0 <= duplicate_rate <= 1 and 0 <= crossover_rate <= 1):
        raise ValueError("duplicate_rate and crossover_rate must be in [0, 1]")
    arms = default_behaviours(experiment, aa) if behaviours is None else behaviours
    names = list(experiment.variants)
    missing = [name for name in names if name not in arms]
    if missing:
        raise ValueError(f"no behaviour for variant(s) {missing} of {experiment.id!r}")
    timeline = _Timeline.of(experiment, as_of)
    pre_set = len(names)
    table = _ArmTable.of(
        [arms[name] for name in names] + [_with_ai_of(arms[experiment.control], CONTROL_BEHAVIOUR)]
    )
    rng = np.random.default_rng(seed)

    # Units and their latents.
    shares = np.array([experiment.variants[n].share for n in names], dtype=np.float64)
    variant = rng.choice(len(names), size=units, p=shares / shares.sum()).astype(np.int64)
    platform = rng.choice(len(PLATFORMS), size=units, p=PLATFORM_PROBS)
    plan = rng.choice(len(PLANS), size=units, p=PLAN_PROBS)
    idx = np.arange(units, dtype=np.int64)
    start = np.full(units, timeline.start_us, dtype=np.int64)
    assigned = _uniform_us(rng, start, np.full(units, timeline.assign_end_us, dtype=np.int64))
    low_trust = rng.random(units) < LOW_TRUST_SHARE
    activity = np.asarray(PLAN_ACTIVITY)[plan] * rng.gamma(
        ACTIVITY_SHAPE, 1 / ACTIVITY_SHAPE, units
    )
    end = np.full(units, timeline.end_us, dtype=np.int64)
    window_end = (
        end if timeline.window_us is None else np.minimum(assigned + timeline.window_us, end)
    )
    exposed_days = (end - assigned) / US_PER_DAY
    pre_days = timeline.pre_us / US_PER_DAY
    sink = _EventSink()

    tasks = _simulate_tasks(
        rng, sink, table, variant, pre_set, assigned, window_end, end, timeline.pre_us,
        low_trust, activity * exposed_days, activity * pre_days,
    )  # fmt: skip

    # Trust survey: at most once per unit, inside its analysis window.
    answers = rng.random(units) < table["survey_prob"][variant]
    who = idx[answers]
    cdf = table.trust_cdf[variant[answers]]
    likert = np.minimum((rng.random(len(who))[:, None] >= cdf).sum(axis=1), 6) + 1
    sink.add(
        "trust_survey",
        who,
        _uniform_us(rng, assigned[answers], window_end[answers]),
        likert.astype(np.float64),
    )

    # Support tickets: a Poisson process in the experiment and in the pre-period.
    n_in = rng.poisson(table["tickets_per_day"][variant] * activity * exposed_days)
    n_pre = rng.poisson(table["tickets_per_day"][pre_set] * activity * pre_days)
    unit_in, unit_pre = np.repeat(idx, n_in), np.repeat(idx, n_pre)
    sink.add("support_ticket", unit_in, _uniform_us(rng, assigned[unit_in], end[unit_in]))
    sink.add(
        "support_ticket",
        unit_pre,
        _uniform_us(rng, assigned[unit_pre] - timeline.pre_us, assigned[unit_pre]),
    )

    # Crossovers: a second assignment row in another variant, at a later time.
    crossed = idx[rng.random(units) < crossover_rate]
    other = (variant[crossed] + rng.integers(1, len(names), len(crossed))) % len(names)
    again = _uniform_us(
        rng, assigned[crossed], np.full(len(crossed), timeline.assign_end_us, dtype=np.int64)
    )

    raw = sink.frame(rng, duplicate_rate)

    assignments = _assignments_frame(
        experiment.id,
        names,
        np.concatenate([idx, crossed]),
        np.concatenate([variant, other]),
        np.concatenate([assigned, again]),
        np.concatenate([platform, platform[crossed]]),
        np.concatenate([plan, plan[crossed]]),
    )
    return SimulatedData(assignments, _events_frame(experiment.id, raw, units, tasks))


def _simulate_tasks(
    rng: np.random.Generator,
    sink: _EventSink,
    table: _ArmTable,
    variant: IntArray,
    pre_set: int,
    assigned: IntArray,
    window_end: IntArray,
    end: IntArray,
    pre_us: int,
    low_trust: BoolArray,
    in_mass: FloatArray,
    pre_mass: FloatArray,
) -> int:
    """All task events: in the experiment (arm behaviour) and in the pre-period.

    Returns the number of tasks; task ``i`` has the id ``{experiment}-t{i}``.

    ``in_mass`` / ``pre_mass`` are each unit's activity times exposed days.  A
    task's follow-up events are clipped to the end of its *segment* (its analysis
    window, the post-window period, or the pre-period) so that every event of a
    task counts in the same window as its ``task_started``: this keeps ratio
    metrics exactly equal to their per-task expectations.
    """
    idx = np.arange(len(variant), dtype=np.int64)
    n_in = rng.poisson(table["tasks_per_day"][variant] * in_mass)
    n_pre = rng.poisson(table["tasks_per_day"][pre_set] * pre_mass)
    unit = np.concatenate([np.repeat(idx, n_in), np.repeat(idx, n_pre)])
    tasks = len(unit)
    in_exp = np.arange(tasks) < n_in.sum()
    arm = np.where(in_exp, variant[unit], pre_set)
    lo = np.where(in_exp, assigned[unit], assigned[unit] - pre_us)
    hi = np.where(in_exp, end[unit], assigned[unit])
    started = _uniform_us(rng, lo, hi)
    segment_end = np.where(
        in_exp, np.where(started < window_end[unit], window_end[unit], end[unit]), hi
    )
    last = segment_end - 1
    task = np.arange(tasks, dtype=np.int64)
    sink.add("task_started", unit, started, task=task)

    # Exclusive outcomes: completed, abandoned (more often for low-trust users), open.
    completion = table["completion_prob"][arm]
    abandon = table["abandon_prob"][arm] * np.where(
        low_trust[unit], table["low_trust_abandon_multiplier"][arm], 1.0
    )
    draw = rng.random(tasks)
    completed = draw < completion
    abandoned = ~completed & (draw < completion + abandon)
    median = np.where(
        completed,
        table["time_on_task_median_s"][arm],
        np.where(abandoned, ABANDON_SPAN[0], OPEN_SPAN[0]),
    )
    sigma = np.where(
        completed, TIME_ON_TASK_SIGMA, np.where(abandoned, ABANDON_SPAN[1], OPEN_SPAN[1])
    )
    span_s = median * np.exp(sigma * rng.standard_normal(tasks))
    span = _seconds_us(span_s)
    finished = np.minimum(started + span, last)
    sink.add(
        "task_completed", unit[completed], finished[completed], span_s[completed], task[completed]
    )
    sink.add("task_abandoned", unit[abandoned], finished[abandoned], task=task[abandoned])

    # Retries and AI outputs happen while the task is in progress.
    def during(counts: IntArray) -> tuple[IntArray, IntArray]:
        of = np.repeat(task, counts)
        return of, np.minimum(started[of] + _uniform_us(rng, np.zeros_like(of), span[of]), last[of])

    retry_of, retry_ts = during(rng.poisson(table["retries_per_task"][arm]))
    sink.add("retry", unit[retry_of], retry_ts, task=retry_of)

    shown_of, shown_ts = during(rng.poisson(table["ai_shown_per_task"][arm]))
    shown_unit, shown_arm, n_shown = unit[shown_of], arm[shown_of], len(shown_of)
    sink.add("ai_shown", shown_unit, shown_ts, task=shown_of)
    sink.add(
        "ai_latency",
        shown_unit,
        shown_ts,
        _lognormal(rng, table["ai_latency_median_ms"][shown_arm], AI_LATENCY_SIGMA, n_shown),
        shown_of,
    )
    sink.add(
        "ai_cost",
        shown_unit,
        shown_ts,
        rng.gamma(AI_COST_SHAPE, table["ai_cost_usd"][shown_arm] / AI_COST_SHAPE),
        shown_of,
    )
    accept = table["accept_prob"][shown_arm]
    edit = accept + table["edit_prob"][shown_arm]
    reject = edit + table["reject_prob"][shown_arm]
    draw = rng.random(n_shown)
    reacted = np.minimum(
        shown_ts + _seconds_us(_lognormal(rng, AI_REACTION[0], AI_REACTION[1], n_shown)),
        last[shown_of],
    )
    fraction = rng.beta(*EDIT_FRACTION_BETA, size=n_shown)
    for event, chosen, value in (
        ("ai_accepted", draw < accept, None),
        ("ai_edited", (draw >= accept) & (draw < edit), fraction),
        ("ai_rejected", (draw >= edit) & (draw < reject), None),
    ):
        sink.add(
            event,
            shown_unit[chosen],
            reacted[chosen],
            None if value is None else value[chosen],
            shown_of[chosen],
        )

    # One feedback vote for some tasks, after the task's last event.
    voted = rng.random(tasks) < table["feedback_prob"][arm]
    vote = np.where(rng.random(tasks) < table["thumbs_down_prob"][arm], -1.0, 1.0)
    delay = _seconds_us(rng.random(tasks) * FEEDBACK_DELAY_S)
    sink.add(
        "feedback",
        unit[voted],
        np.minimum(started + span + delay, last)[voted],
        vote[voted],
        task[voted],
    )
    return tasks


def _assignments_frame(
    experiment_id: str,
    variants: Sequence[str],
    unit: IntArray,
    variant: IntArray,
    assigned: IntArray,
    platform: IntArray,
    plan: IntArray,
) -> pl.DataFrame:
    frame = pl.DataFrame({"u": unit, "assigned_at": assigned}).select(
        pl.lit(experiment_id, dtype=pl.String).alias("experiment_id"),
        pl.concat_str(pl.lit(f"{experiment_id}-u"), pl.col("u").cast(pl.String)).alias("unit_id"),
        _decode(variants, variant).alias("variant"),
        pl.col("assigned_at").cast(pl.Datetime("us", "UTC")),
        _decode(PLATFORMS, platform).alias("platform"),
        _decode(PLANS, plan).alias("plan"),
    )
    return frame.match_to_schema(ASSIGNMENTS_SCHEMA)


def _ids(prefix: str, count: int) -> pl.Series:
    """The strings ``{prefix}0 .. {prefix}{count-1}``, built by polars."""
    return pl.select(
        pl.concat_str(pl.lit(prefix), pl.int_range(count, dtype=pl.Int64).cast(pl.String))
    ).to_series()


def _events_frame(experiment_id: str, raw: pl.DataFrame, units: int, tasks: int) -> pl.DataFrame:
    """The contract's events table from the numeric columns of :meth:`_EventSink.frame`.

    Unit and task ids are gathered from the (fewer) per-unit and per-task strings
    instead of being formatted once per event, which halves the string work.
    """
    frame = raw.select(
        pl.concat_str(pl.lit(f"{experiment_id}-e"), pl.col("n").cast(pl.String)).alias("event_id"),
        pl.lit(_ids(f"{experiment_id}-u", units)).gather(pl.col("unit")).alias("unit_id"),
        pl.col("ts").cast(pl.Datetime("us", "UTC")),
        _decode(EVENT_NAMES, raw["code"].to_numpy()).alias("event"),
        pl.col("value").fill_nan(None),
        pl.lit(_ids(f"{experiment_id}-t", tasks))
        .gather(pl.when(pl.col("task") >= 0).then(pl.col("task")))
        .alias("task_id"),
    )
    return frame.match_to_schema(EVENTS_SCHEMA)


def derived_seed(seed: int, experiment_id: str) -> int:
    """A seed for one experiment, stable under reordering of the experiments."""
    sequence = np.random.SeedSequence([seed, zlib.crc32(experiment_id.encode())])
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def simulate(
    experiments: Sequence[Experiment],
    units: int,
    as_of: dt.date,
    seed: int,
    aa: bool = False,
    duplicate_rate: float = 0.002,
    crossover_rate: float = 0.0005,
) -> SimulatedData:
    """Simulate ``units`` units in each experiment and concatenate the tables.

    Each experiment gets its own seed from :func:`derived_seed`, so adding an
    experiment does not change the data of the others.  Experiments that have
    not started by ``as_of`` are skipped.
    """
    parts = [
        simulate_experiment(
            experiment,
            units,
            as_of,
            derived_seed(seed, experiment.id),
            aa=aa,
            duplicate_rate=duplicate_rate,
            crossover_rate=crossover_rate,
        )
        for experiment in experiments
        if experiment.start <= as_of
    ]
    if not parts:
        return SimulatedData(
            pl.DataFrame(schema=ASSIGNMENTS_SCHEMA), pl.DataFrame(schema=EVENTS_SCHEMA)
        )
    return SimulatedData(
        pl.concat([p.assignments for p in parts]), pl.concat([p.events for p in parts])
    )


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class _Exposure:
    """The distribution of a unit's exposed days inside its analysis window.

    With ``a`` uniform over the assignment period, ``Y = end_of(as_of) - a`` is
    uniform on ``[low, high]`` days, and the exposure that counts is
    ``X = min(Y, window)``: a uniform part plus, when the window is shorter than
    ``high``, a point mass at ``window``.
    """

    low: float
    high: float
    window: float | None

    @classmethod
    def of(cls, timeline: _Timeline) -> _Exposure:
        return cls(
            low=(timeline.end_us - timeline.assign_end_us) / US_PER_DAY,
            high=(timeline.end_us - timeline.start_us) / US_PER_DAY,
            window=None if timeline.window_us is None else timeline.window_us / US_PER_DAY,
        )

    def expect(self, g: Callable[[FloatArray], FloatArray]) -> float:
        """E[g(X)], by 64-point Gauss-Legendre on the uniform part (exact for the
        smooth integrands used here to machine precision) plus the point mass."""
        top = self.high if self.window is None else min(self.high, self.window)
        if top <= self.low:  # the window is shorter than every exposure
            return float(g(np.array([top]))[0])
        half = (top - self.low) / 2
        x = self.low + half * (_GAUSS_NODES + 1)
        continuous = float(np.sum(_GAUSS_WEIGHTS * g(x))) / 2  # mean of g on [low, top]
        p_uniform = (top - self.low) / (self.high - self.low)
        return p_uniform * continuous + (1 - p_uniform) * float(g(np.array([top]))[0])

    def mean(self) -> float:
        return self.expect(lambda x: x)


@dataclass(frozen=True)
class _Values:
    """The distribution of one event's value: null, continuous, or discrete."""

    mean: float | None = None
    pmf: Mapping[float, float] | None = None
    lognormal: tuple[float, float] | None = None  # (median, sigma)


@dataclass(frozen=True)
class _EventLaw:
    """How many events of one name (after a ``value_equals`` filter) a unit has.

    Attributes:
        per_day: rate per exposed day (times the activity latent) of the
            *occurrences* that carry these events: tasks or support tickets.
        classes: for each latent class (weight, mean number of events per
            occurrence, P(an occurrence has at least one such event)).
        once: P(a unit has the event once in its window), for the trust survey.
        values: the distribution of the kept events' values.
    """

    per_day: float = 0.0
    classes: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0),)
    once: float = 0.0
    values: _Values = _Values()

    def count(self, exposure: _Exposure) -> float:
        """E[number of events per unit in the window] = rate * E[X] * E[m] * mean
        per occurrence (+ the once-per-unit probability), with E[m] = 1."""
        per_occurrence = sum(w * mean for w, mean, _ in self.classes)
        return self.per_day * exposure.mean() * per_occurrence + self.once

    def p_any(self, exposure: _Exposure) -> float:
        """P(a unit has at least one event in the window).

        Occurrences with at least one event form a thinned Poisson process, so
        P(none | m, X, class) = exp(-rate * m * X * p); averaging over the
        activity ``m = f_plan * Gamma(k, 1/k)`` uses the Gamma Laplace transform
        (1 + t f / k)^-k, and the exposure X is integrated numerically.
        """
        f = np.asarray(PLAN_ACTIVITY)
        pi = np.asarray(PLAN_PROBS)
        k = ACTIVITY_SHAPE
        p_none = 0.0
        for weight, _, p in self.classes:
            t = self.per_day * p

            def laplace(x: FloatArray, t: float = t) -> FloatArray:
                inner = (1 + t * np.outer(x, f) / k) ** -k
                return np.asarray(inner @ pi, dtype=np.float64)

            p_none += weight * exposure.expect(laplace)
        return 1 - (1 - self.once) * p_none


def _law(event: str, b: ArmBehaviour, value_equals: float | None) -> _EventLaw:
    """The law of ``event`` in an arm with behaviour ``b`` (see :class:`_EventLaw`).

    Per task: ``task_completed`` / ``task_abandoned`` / ``feedback`` are Bernoulli;
    ``retry`` and the AI events are Poisson (an outcome of an AI output is a
    thinned Poisson: mean ``ai_shown_per_task * prob``).  Abandonment is a
    mixture over the low-trust latent.  A ``value_equals`` filter thins the
    events by P(value == v), which is 0 for null or continuous values.
    """
    lt = LOW_TRUST_SHARE
    shown = b.ai_shown_per_task

    def bernoulli(p: float) -> tuple[float, float, float]:
        return (1.0, p, p)

    def poisson(mean: float) -> tuple[float, float, float]:
        return (1.0, mean, -math.expm1(-mean))

    kind: Literal["bernoulli", "poisson"] = "bernoulli"
    per_day, once = b.tasks_per_day, 0.0
    values = _Values()
    match event:
        case "task_started":
            classes = [bernoulli(1.0)]
        case "task_completed":
            classes = [bernoulli(b.completion_prob)]
            sigma = TIME_ON_TASK_SIGMA
            values = _Values(
                mean=b.time_on_task_median_s * math.exp(sigma**2 / 2),
                lognormal=(b.time_on_task_median_s, sigma),
            )
        case "task_abandoned":
            a = b.abandon_prob
            m = b.low_trust_abandon_multiplier
            classes = [(1 - lt, a, a), (lt, a * m, a * m)]
        case "retry":
            kind, classes = "poisson", [poisson(b.retries_per_task)]
        case "ai_shown":
            kind, classes = "poisson", [poisson(shown)]
        case "ai_accepted":
            kind, classes = "poisson", [poisson(shown * b.accept_prob)]
        case "ai_edited":
            kind, classes = "poisson", [poisson(shown * b.edit_prob)]
            alpha, beta = EDIT_FRACTION_BETA
            values = _Values(mean=alpha / (alpha + beta))
        case "ai_rejected":
            kind, classes = "poisson", [poisson(shown * b.reject_prob)]
        case "ai_latency":
            kind, classes = "poisson", [poisson(shown)]
            sigma = AI_LATENCY_SIGMA
            values = _Values(
                mean=b.ai_latency_median_ms * math.exp(sigma**2 / 2),
                lognormal=(b.ai_latency_median_ms, sigma),
            )
        case "ai_cost":
            kind, classes = "poisson", [poisson(shown)]
            values = _Values(mean=b.ai_cost_usd)
        case "feedback":
            classes = [bernoulli(b.feedback_prob)]
            td = b.thumbs_down_prob
            values = _Values(mean=1 - 2 * td, pmf={-1.0: td, 1.0: 1 - td})
        case "support_ticket":
            per_day, classes = b.tickets_per_day, [bernoulli(1.0)]
        case "trust_survey":
            per_day, once, classes = 0.0, b.survey_prob, [bernoulli(0.0)]
            pmf = {float(k): p for k, p in enumerate(b.trust_probs, start=1)}
            values = _Values(mean=sum(k * p for k, p in pmf.items()), pmf=pmf)
        case _:  # not generated by the simulator: it never happens
            return _EventLaw()
    if value_equals is not None:
        keep = 0.0 if values.pmf is None else values.pmf.get(float(value_equals), 0.0)
        once *= keep
        if kind == "poisson":
            classes = [(w, mean * keep, -math.expm1(-mean * keep)) for w, mean, _ in classes]
        else:
            classes = [(w, mean * keep, p * keep) for w, mean, p in classes]
        values = _Values(mean=float(value_equals), pmf={float(value_equals): 1.0})
    return _EventLaw(per_day, tuple(classes), once, values)


def _aggregate(agg: EventAggregate, b: ArmBehaviour, exposure: _Exposure) -> float | None:
    """E[the per-unit aggregate] over all assigned units (count or sum), or, for
    ``mean``, E[value of one event] — the mean of per-unit means over the units
    that have events, since values are i.i.d. and independent of the counts."""
    law = _law(agg.event, b, agg.value_equals)
    count = law.count(exposure)
    if agg.agg == "count":
        return count
    if agg.agg == "sum":
        return count * (law.values.mean or 0.0)  # null values add up to 0
    return law.values.mean if count > 0 else None


def _true_value(metric: Metric, b: ArmBehaviour, exposure: _Exposure) -> float | None:
    """The population value of one metric in one arm (None where undefined)."""
    if metric.kind == "ratio":
        assert metric.numerator is not None
        assert metric.denominator is not None
        if "mean" in (metric.numerator.agg, metric.denominator.agg):
            return None  # a ratio of per-unit means is not a catalog shape
        numerator = _aggregate(metric.numerator, b, exposure)
        denominator = _aggregate(metric.denominator, b, exposure)
        if numerator is None or not denominator:
            return None
        return numerator / denominator
    assert metric.value is not None
    if metric.kind == "mean":
        return _aggregate(metric.value, b, exposure)
    law = _law(metric.value.event, b, metric.value.value_equals)
    if metric.kind == "proportion":
        return law.p_any(exposure) if metric.value.agg == "count" else None
    # quantile: of the pooled event values of the arm
    assert metric.quantile is not None
    if law.count(exposure) <= 0 or law.values.lognormal is None:
        return None
    median, sigma = law.values.lognormal
    return median * math.exp(sigma * NormalDist().inv_cdf(metric.quantile))


def true_metric_values(
    experiment: Experiment,
    behaviours: Mapping[str, ArmBehaviour],
    metrics: Mapping[str, Metric],
    as_of: dt.date,
) -> dict[str, dict[str, float | None]]:
    """The value each metric's estimator converges to, per arm: ``{metric: {variant: value}}``.

    Derived analytically from the parameters, for data observed up to the end of
    ``as_of`` (the exposure distribution depends on it), with ``X`` the exposed
    days in the window (see :class:`_Exposure`) and ``m`` the activity (mean 1):

    * ratio: E[numerator per unit] / E[denominator per unit]; for task events the
      exposure cancels, e.g. ``task_completion_rate = completion_prob``,
      ``abandonment_rate = abandon_prob * (1 - s + s * multiplier)`` with
      ``s = LOW_TRUST_SHARE``, ``retries_per_task = retries_per_task``,
      ``acceptance_rate = accept_prob``, ``thumbs_down_rate = thumbs_down_prob``,
      ``time_on_task = median * exp(sigma^2 / 2)`` (lognormal mean) and
      ``cost_per_completed_task = ai_shown_per_task * ai_cost_usd / completion_prob``
      (0.0 in an arm without AI).  Undefined (None) when the denominator is 0,
      e.g. acceptance in an arm without AI outputs.
    * mean of a count: ``rate * E[X]`` (e.g. ``tasks_per_day * completion_prob *
      E[X]``; ``tickets_per_day * E[X]``); mean of per-unit means (trust_score):
      E[value] = ``sum k * p_k``.
    * proportion (at least one event): ``1 - E[exp(-rate * p * m * X)]``, with the
      Gamma Laplace transform over ``m`` and the integral over ``X``.
    * quantile of a lognormal value: ``median * exp(sigma * z_q)``.

    Events the simulator never produces have count 0.
    """
    exposure = _Exposure.of(_Timeline.of(experiment, as_of))
    return {
        name: {
            variant: _true_value(metric, behaviours[variant], exposure)
            for variant in experiment.variants
        }
        for name, metric in metrics.items()
    }


def true_lifts(
    experiment: Experiment,
    behaviours: Mapping[str, ArmBehaviour],
    metrics: Mapping[str, Metric],
    as_of: dt.date,
) -> dict[tuple[str, str], float | None]:
    """True relative lifts ``treatment / baseline - 1`` keyed by (metric, treatment).

    The baseline is the control; for an ``ai_only`` metric it is the first AI arm,
    and the metric has lifts only when the experiment has at least two AI arms
    (the other AI arms are the treatments).  None where either value is undefined
    or the baseline is 0.
    """
    values = true_metric_values(experiment, behaviours, metrics, as_of)
    ai_arms = experiment.ai_variants()
    lifts: dict[tuple[str, str], float | None] = {}
    for name, metric in metrics.items():
        if metric.ai_only:
            if len(ai_arms) < 2:
                continue
            baseline, treatments = ai_arms[0], ai_arms[1:]
        else:
            baseline, treatments = experiment.control, experiment.treatments()
        base = values[name][baseline]
        for treatment in treatments:
            value = values[name][treatment]
            ok = base is not None and value is not None and base != 0
            lifts[name, treatment] = value / base - 1 if ok else None  # type: ignore[operator]
    return lifts


# --------------------------------------------------------------------------- writers


def write_duckdb(path: Path, data: SimulatedData) -> None:
    """Create or replace the tables ``assignments`` and ``events`` in a DuckDB file.

    The file is written next to its destination and moved into place with
    :func:`os.replace`, so a reader never sees a half-written database; other
    tables of an existing database are kept (the file is copied first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if path.exists():  # keep the other tables, including changes still in the WAL
            shutil.copyfile(path, tmp)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, tmp.with_name(tmp.name + ".wal"))
        with duckdb.connect(str(tmp)) as con:
            con.execute("SET TimeZone = 'UTC'")
            for table, frame in (("assignments", data.assignments), ("events", data.events)):
                con.register("_incoming", frame.to_arrow())
                con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM _incoming')
                con.unregister("_incoming")
            con.execute("CHECKPOINT")
        os.replace(tmp, path)
        # its contents are in the new file: replaying it on the new file would corrupt it
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def write_parquet(directory: Path, data: SimulatedData, files: int = 4) -> None:
    """Write ``assignments.parquet`` and ``events/part-0000.parquet`` … into ``directory``.

    Events are split into ``files`` parts of about equal size.  Each file is
    written under a temporary name and renamed, and stale parts from an earlier,
    larger write are removed so that a glob over ``events/`` reads exactly this
    data.
    """
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    directory = Path(directory)
    events_dir = directory / "events"
    events_dir.mkdir(parents=True, exist_ok=True)

    def put(frame: pl.DataFrame, target: Path) -> None:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    put(data.assignments, directory / "assignments.parquet")
    size = -(-data.events.height // files)  # ceil
    wanted = {f"part-{i:04d}.parquet" for i in range(files)}
    for i in range(files):
        put(data.events.slice(i * size, size), events_dir / f"part-{i:04d}.parquet")
    for stale in events_dir.glob("part-*.parquet"):
        if stale.name not in wanted:
            stale.unlink()
