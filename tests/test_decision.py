"""The decision rules, one scenario each."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from analysis.comparisons import Comparison
from analysis.config.load import load_config
from analysis.decision import decide
from analysis.stats.bayes import bayesian_lift
from analysis.stats.inference import ArmEstimate, TwoArmResult
from analysis.stats.power import mde
from analysis.stats.sequential import sequential_interval
from analysis.stats.srm import SrmResult

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
SMART = CONFIG.experiment("smart-compose")
TRIAGE = CONFIG.experiment("auto-triage")
OK_SRM = SrmResult(0.5, False, 1.0, {}, {})
BAD_SRM = SrmResult(1e-6, True, 30.0, {}, {})
DURING = dt.date(2026, 11, 1)


def _c(
    metric: str, treatment: str, lift: float, verdict: str, role: str, control: str = "control"
) -> Comparison:
    est = ArmEstimate(1000, 1.0, 0.0001)
    result = TwoArmResult(
        est, est, lift, (lift - 0.01, lift + 0.01), lift, (lift - 0.01, lift + 0.01),
        0.001 if verdict != "inconclusive" else 0.5, 100.0, "welch_t",
    )  # fmt: skip
    p = result.p_value
    return Comparison(
        metric=CONFIG.metrics[metric],
        role=role,
        control=control,
        treatment=treatment,
        result=result,
        cuped=None,
        cuped_result=None,
        sequential=sequential_interval(result, 0.05, 10_000),
        bayes=bayesian_lift(result, CONFIG.metrics[metric].goal),
        basis="fixed_horizon",
        p_value_adjusted=p,
        verdict_p_value=p,
        verdict=verdict,
        mde=mde(est, est, 0.05),
    )


def test_srm_means_investigate_whatever_the_metrics() -> None:
    d = decide(
        SMART, [_c("task_completion_rate", "ai", 0.05, "better", "primary")], BAD_SRM, True, DURING
    )
    assert d.recommendation == "investigate"
    assert "sample-ratio mismatch" in d.reasons[0]


def test_failed_validation_means_investigate() -> None:
    d = decide(
        SMART, [_c("task_completion_rate", "ai", 0.05, "better", "primary")], OK_SRM, False, DURING
    )
    assert d.recommendation == "investigate"


def test_better_primary_and_no_worse_guardrail_ships() -> None:
    comps = [
        _c("task_completion_rate", "ai", 0.05, "better", "primary"),
        _c("trust_score", "ai", -0.02, "worse", "secondary"),
    ]
    d = decide(SMART, comps, OK_SRM, True, DURING)
    assert d.recommendation == "ship"
    assert any(r.startswith("Watch: Trust score") for r in d.reasons)


def test_worse_guardrail_blocks() -> None:
    comps = [
        _c("task_completion_rate", "ai", 0.05, "better", "primary"),
        _c("support_tickets_per_user", "ai", 0.2, "worse", "guardrail"),
    ]
    d = decide(SMART, comps, OK_SRM, True, DURING)
    assert d.recommendation == "don't ship"
    assert "Support tickets per user" in d.reasons[0]


def test_inconclusive_keeps_running_until_the_planned_end() -> None:
    comps = [_c("task_completion_rate", "ai", 0.01, "inconclusive", "primary")]
    assert decide(SMART, comps, OK_SRM, True, DURING).recommendation == "keep running"
    assert SMART.end is not None
    assert decide(SMART, comps, OK_SRM, True, SMART.end).recommendation == "don't ship"


def test_multi_arm_ships_the_arm_without_a_worse_guardrail() -> None:
    comps = [
        _c("task_completion_rate", "ai", 0.05, "better", "primary"),
        _c("task_completion_rate", "ai_v2", 0.08, "better", "primary"),
        _c("ai_latency_p95", "ai_v2", 0.3, "worse", "guardrail", control="ai"),
    ]
    d = decide(TRIAGE, comps, OK_SRM, True, DURING)
    assert d.recommendation == "ship"
    assert d.reasons[0].startswith("Ship ai:")
    assert any("AI latency p95" in r for r in d.reasons)


def test_multi_arm_picks_the_largest_gain() -> None:
    comps = [
        _c("task_completion_rate", "ai", 0.05, "better", "primary"),
        _c("task_completion_rate", "ai_v2", 0.08, "better", "primary"),
    ]
    d = decide(TRIAGE, comps, OK_SRM, True, DURING)
    assert d.reasons[0].startswith("Ship ai_v2:")
