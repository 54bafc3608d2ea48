"""When it is unsure (analysis.unsure): rates by the model's confidence and by latency.

An AI arm whose confidence c ~ Beta(8.5, 1.5) (mean 0.85) is accepted with probability
0.45 c / 0.85: overconfident, its true calibration error is 0.85 - 0.45 = 0.40. Every
bucket's rates hold their truths (true_unsure) within 99.9 % intervals; latency, drawn
apart from the outcome, leaves every rate flat.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from analysis.config.load import load_config
from analysis.devtools.simulate import (
    AI_BEHAVIOUR,
    CONTROL_BEHAVIOUR,
    simulate_experiment,
    true_unsure,
)
from analysis.engines.polars_measure import measure
from analysis.sources.read import Tables
from analysis.unsure import CONFIDENCE_EDGES, ArmCalibration, unsure

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
AS_OF = dt.date(2026, 11, 20)
SURE = replace(AI_BEHAVIOUR, confidence_a=8.5, confidence_b=1.5)


@pytest.fixture(scope="module")
def calibration() -> ArmCalibration:
    experiment = CONFIG.experiment("smart-compose").model_copy(update={"alpha": 0.001})
    behaviours = {"control": CONTROL_BEHAVIOUR, "ai": SURE}
    data = simulate_experiment(experiment, 30_000, AS_OF, seed=4, behaviours=behaviours)
    tables = Tables(data.assignments.lazy(), data.events.lazy())
    measured = measure(tables, experiment, CONFIG.metrics_of(experiment), AS_OF)
    (arm,) = unsure(experiment, measured.unsure)
    return arm


def test_confidence_buckets_recover_their_true_rates(calibration: ArmCalibration) -> None:
    truths = true_unsure(SURE, CONFIDENCE_EDGES)
    checked = 0
    for bucket in calibration.buckets["confidence"]:
        truth = truths[bucket.index]
        if bucket.tasks < 200:  # Beta(8.5, 1.5) puts almost nothing below 0.4
            continue
        for what in ("accepted", "edited", "rejected", "gap"):
            rate = bucket.rates[what]
            assert rate.ci is not None, (bucket.label, what)
            assert rate.ci[0] <= truth[what] <= rate.ci[1], (bucket.label, what, truth[what])
        mean = bucket.rates["confidence"].estimate.value
        assert mean == pytest.approx(truth["confidence"], abs=0.01), bucket.label
        checked += 1
    assert checked >= 2
    assert calibration.calibration_error == pytest.approx(0.85 - 0.45, abs=0.02)


def test_latency_leaves_every_rate_flat(calibration: ArmCalibration) -> None:
    """Latency is drawn apart from the outcome: each bucket's rates are the arm's."""
    checked = 0
    for bucket in calibration.buckets["latency"]:
        if bucket.tasks < 200:
            continue
        for what, truth in (
            ("accepted", SURE.accept_prob),
            ("edited", SURE.edit_prob),
            ("rejected", SURE.reject_prob),
        ):
            rate = bucket.rates[what]
            assert rate.ci is not None
            assert rate.ci[0] <= truth <= rate.ci[1], (bucket.label, what)
        checked += 1
    assert checked >= 3


def test_an_arm_without_confidence_has_latency_only() -> None:
    experiment = CONFIG.experiment("smart-compose")
    data = simulate_experiment(experiment, 2_000, AS_OF, seed=5)
    assert "ai_confidence" not in set(data.events["event"])
    measured = measure(
        Tables(data.assignments.lazy(), data.events.lazy()),
        experiment,
        CONFIG.metrics_of(experiment),
        AS_OF,
    )
    (arm,) = unsure(experiment, measured.unsure)
    assert set(arm.buckets) == {"latency"}
    assert arm.calibration_error is None
