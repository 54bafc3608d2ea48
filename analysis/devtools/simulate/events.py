"""Vectorised event generation: per-set parameter arrays, the event sink, and tasks.

Every draw comes from the generator passed in, in a fixed order: the data for
a seed depends on that order, so calls must not be reordered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt
import polars as pl

from analysis.devtools.simulate.behaviours import ArmBehaviour
from analysis.devtools.simulate.model import (
    _CODE,
    ABANDON_SPAN,
    AI_COST_SHAPE,
    AI_LATENCY_SIGMA,
    AI_REACTION,
    EDIT_FRACTION_BETA,
    FEEDBACK_DELAY_S,
    OPEN_SPAN,
    TIME_ON_TASK_SIGMA,
    US_PER_SECOND,
    US_PER_WEEK,
    BoolArray,
    FloatArray,
    IntArray,
)


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
        vectors = ("trust_probs", "reject_reasons", "error_types")
        scalar = [f.name for f in fields(ArmBehaviour) if f.name not in vectors]
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


def _confidences(
    rng: np.random.Generator, table: _ArmTable, arm: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Each AI output's confidence (NaN in an arm without one) and the factor on its
    accept probability, ``c / mean``: the more confident, the more often accepted
    (1 where there is no confidence). Drawn from ``rng``, a stream of their own."""
    a, b = table["confidence_a"][arm], table["confidence_b"][arm]
    has = a > 0
    confidence = np.full(len(arm), np.nan)
    if has.any():
        confidence[has] = rng.beta(a[has], b[has])
    mean = np.where(has, a / np.where(has, a + b, 1.0), 1.0)
    return confidence, np.where(has, confidence / mean, 1.0)


def _moved(prob: FloatArray, change: FloatArray, week: IntArray) -> FloatArray:
    """``prob + change * week``, clipped to [0, 1] (``prob`` itself where nothing changes)."""
    return np.clip(prob + change * week, 0.0, 1.0)


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
    confident: np.random.Generator,
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
    # Whole weeks since exposure (0 in the pre-period): where an arm's effect fades.
    week = np.where(in_exp, (started - assigned[unit]) // US_PER_WEEK, 0)
    completion = _moved(
        table["completion_prob"][arm], table["completion_change_per_week"][arm], week
    )
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
    confidence, scale = _confidences(confident, table, shown_arm)
    sure = ~np.isnan(confidence)
    if sure.any():  # only arms with a confidence: the others' rows do not move
        sink.add(
            "ai_confidence", shown_unit[sure], shown_ts[sure], confidence[sure], shown_of[sure]
        )
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
    shown_week = week[shown_of]
    room = 1.0 - table["edit_prob"][shown_arm] - table["reject_prob"][shown_arm]
    accept = np.minimum(
        scale
        * _moved(
            table["accept_prob"][shown_arm], table["accept_change_per_week"][shown_arm], shown_week
        ),
        room,
    )
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
