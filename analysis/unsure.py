"""When it is unsure: what people do with AI outputs by the model's confidence and by latency.

Calibration needs each outcome tied to the output it answers. The contract
links events only by ``task_id``, so the unit here is a task with exactly
one AI output (one ``ai_shown``): its confidence is the value of its
``ai_confidence`` event, its latency the value of its ``ai_latency``, its
outcomes whether it was accepted, edited or rejected. Tasks with several
outputs are left out (a product that logs one task per output keeps them all).

Per AI arm and bucket (:data:`CONFIDENCE_EDGES`, :data:`LATENCY_EDGES_MS`),
each outcome's rate is a ratio metric per unit (tasks with the outcome /
tasks in the bucket; delta method, clustered by unit), as is the bucket's
mean confidence and the *gap* between acceptance and confidence. The
calibration error is the expected calibration error (Naeini et al. 2015):
``ECE = sum_b (tasks_b / tasks) |acceptance_b - confidence_b|`` — does
"90 % sure" get accepted 90 % of the time?

These describe one arm: the buckets are not randomised (a hard question may
make the model unsure *and* the user reject it), so nothing here is causal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from analysis.aggregates import Moments
from analysis.config.experiments import Experiment
from analysis.measurement import UnsureData
from analysis.stats.inference import ArmEstimate, normal_interval, ratio_estimate

#: Bucket edges of the model's confidence (0..1); the last bucket holds 1.
CONFIDENCE_EDGES: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Bucket edges of the AI's latency in milliseconds; the last bucket is open.
LATENCY_EDGES_MS: tuple[float, ...] = (0.0, 500.0, 1000.0, 2000.0, 5000.0, math.inf)
#: ``(dimension, the event whose value it is, its edges)``.
DIMENSIONS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("confidence", "ai_confidence", CONFIDENCE_EDGES),
    ("latency", "ai_latency", LATENCY_EDGES_MS),
)
#: ``(outcome, its event)``.
OUTCOMES: tuple[tuple[str, str], ...] = (
    ("accepted", "ai_accepted"),
    ("edited", "ai_edited"),
    ("rejected", "ai_rejected"),
)
#: The events a task's calibration reads.
UNSURE_EVENTS: tuple[str, ...] = (
    "ai_shown",
    *(event for _, event, _ in DIMENSIONS),
    *(event for _, event in OUTCOMES),
)
#: Per bucket, besides the outcomes: the mean confidence and acceptance - confidence.
CONFIDENCE, GAP = "confidence", "gap"
#: Buckets with fewer units are left out (their delta-method intervals would mislead);
#: the calibration error weighs the buckets kept.
MIN_BUCKET_UNITS = 30


def bucket_label(edges: tuple[float, ...], i: int, unit: str = "") -> str:
    lo, hi = edges[i], edges[i + 1]
    if math.isinf(hi):
        return f"≥ {lo:g}{unit}"
    return f"{lo:g}–{hi:g}{unit}"


@dataclass(frozen=True, slots=True)
class Rate:
    estimate: ArmEstimate
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Bucket:
    """One bucket of one arm: its tasks and units, and each rate (outcomes, confidence, gap)."""

    index: int
    label: str
    tasks: float
    rates: Mapping[str, Rate]


@dataclass(frozen=True)
class ArmCalibration:
    arm: str
    buckets: Mapping[str, tuple[Bucket, ...]]
    calibration_error: float | None


def _buckets(
    by_bucket: Mapping[int, Mapping[str, Moments]],
    edges: tuple[float, ...],
    unit: str,
    alpha: float,
) -> tuple[Bucket, ...]:
    found = []
    for i in sorted(by_bucket):
        if max((m.n for m in by_bucket[i].values()), default=0) < MIN_BUCKET_UNITS:
            continue
        rates = {}
        for what, m in by_bucket[i].items():
            estimate = ratio_estimate(m)
            rates[what] = Rate(estimate, normal_interval(estimate, alpha))
        # every unit with a task in the bucket has its acceptance pair: Σ tasks = n mean_y
        accepted = by_bucket[i]["accepted"]
        tasks = accepted.n * accepted.mean_y
        found.append(Bucket(i, bucket_label(edges, i, unit), tasks, rates))
    return tuple(found)


def _ece(buckets: tuple[Bucket, ...]) -> float | None:
    total = sum(b.tasks for b in buckets)
    parts = [
        (b.tasks, b.rates["accepted"].estimate.value, b.rates[CONFIDENCE].estimate.value)
        for b in buckets
        if "accepted" in b.rates and CONFIDENCE in b.rates
    ]
    if not total or not parts or any(not math.isfinite(a - c) for _, a, c in parts):
        return None
    return math.fsum(n / total * abs(a - c) for n, a, c in parts)


def unsure(experiment: Experiment, data: UnsureData | None) -> tuple[ArmCalibration, ...]:
    """Per AI arm with single-output tasks, its buckets and calibration error; () without."""
    if data is None:
        return ()
    found = []
    for arm in experiment.ai_variants():
        buckets = {}
        for dimension, _, edges in DIMENSIONS:
            by_bucket = data.moments.get(dimension, {}).get(arm, {})
            unit = " ms" if dimension == "latency" else ""
            kept = _buckets(by_bucket, edges, unit, experiment.alpha)
            if kept:
                buckets[dimension] = kept
        if buckets:
            error = _ece(buckets["confidence"]) if "confidence" in buckets else None
            found.append(ArmCalibration(arm, buckets, error))
    return tuple(found)
