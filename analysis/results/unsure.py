"""The ``unsure`` record of results.json, from :mod:`analysis.unsure`."""

from __future__ import annotations

from collections.abc import Sequence

from analysis.results.comparison import num, pair
from analysis.results.records_unsure import (
    ArmCalibrationRecord,
    CalibrationBucketRecord,
    UnsureRecord,
)
from analysis.unsure import CONFIDENCE, GAP, ArmCalibration, Bucket


def _value(b: Bucket, what: str) -> float | None:
    rate = b.rates.get(what)
    return None if rate is None else num(rate.estimate.value)


def _ci(b: Bucket, what: str) -> tuple[float, float] | None:
    rate = b.rates.get(what)
    return None if rate is None else pair(rate.ci)


def unsure_record(arms: Sequence[ArmCalibration]) -> UnsureRecord:
    return UnsureRecord(
        arms=tuple(
            ArmCalibrationRecord(
                arm=a.arm,
                calibration_error=num(a.calibration_error),
                buckets=tuple(
                    CalibrationBucketRecord(
                        dimension=dimension,
                        bucket=b.index,
                        label=b.label,
                        tasks=round(b.tasks),
                        accepted=_value(b, "accepted"),
                        accepted_ci=_ci(b, "accepted"),
                        edited=_value(b, "edited"),
                        edited_ci=_ci(b, "edited"),
                        rejected=_value(b, "rejected"),
                        rejected_ci=_ci(b, "rejected"),
                        confidence=_value(b, CONFIDENCE),
                        gap=_value(b, GAP),
                        gap_ci=_ci(b, GAP),
                    )
                    for dimension, buckets in a.buckets.items()
                    for b in buckets
                ),
            )
            for a in arms
        )
    )
