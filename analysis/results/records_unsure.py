"""The ``unsure`` record of results.json: calibration by bucket (:mod:`analysis.unsure`)."""

from __future__ import annotations

from analysis.results.records import Pair, Record


class CalibrationBucketRecord(Record):
    """One bucket of one AI arm: its single-output tasks and each rate with its interval.

    ``confidence``: the bucket's mean confidence; ``gap``: acceptance minus it.
    """

    dimension: str
    bucket: int
    label: str
    tasks: int = 0
    accepted: float | None = None
    accepted_ci: Pair | None = None
    edited: float | None = None
    edited_ci: Pair | None = None
    rejected: float | None = None
    rejected_ci: Pair | None = None
    confidence: float | None = None
    gap: float | None = None
    gap_ci: Pair | None = None


class ArmCalibrationRecord(Record):
    """An AI arm's buckets and its expected calibration error (None without confidence)."""

    arm: str
    calibration_error: float | None = None
    buckets: tuple[CalibrationBucketRecord, ...] = ()


class UnsureRecord(Record):
    """``unsure``: per AI arm with single-output tasks, by confidence and by latency."""

    arms: tuple[ArmCalibrationRecord, ...] = ()
