"""A guardrail that can only be described is said so: at config time and in the reasons."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from analysis.comparisons import compare_all
from analysis.config import load_config
from analysis.decision import decide
from analysis.devtools.simulate import simulate
from analysis.engines.polars_measure import measure
from analysis.pipeline import summarise
from analysis.quarantine import collect_tables
from analysis.report.summary import markdown_summary
from analysis.stats.srm import srm_test
from analysis.validation.experiment import check_experiment

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "configs")
AS_OF = dt.date(2026, 11, 20)


def test_config_warns_about_ai_only_guardrails_with_one_ai_arm() -> None:
    one_arm = CONFIG.experiment("smart-compose")
    assert len(one_arm.ai_variants()) == 1
    warned = CONFIG.warnings_of(one_arm)
    ai_only = [g for g in one_arm.metrics.guardrails if CONFIG.metrics[g].ai_only]
    assert ai_only
    assert len(warned) == len(ai_only)
    assert all(any(g in w for w in warned) for g in ai_only)
    assert all("can only be described" in w for w in warned)
    two_arms = CONFIG.experiment("auto-triage")
    assert len(two_arms.ai_variants()) == 2
    assert CONFIG.warnings_of(two_arms) == []


def _analysed() -> tuple[object, ...]:
    experiment = CONFIG.experiment("smart-compose")
    metrics = CONFIG.metrics_of(experiment)
    data = simulate([experiment], 3_000, AS_OF, 5)
    raw = collect_tables({"assignments": data.assignments, "events": data.events})
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    checked = check_experiment(raw, experiment, AS_OF, now=now)
    held = checked.quarantine
    measured = measure(held.tables(), experiment, metrics, AS_OF, unique_events=True)
    return experiment, metrics, measured, checked.report.summary(), now


def test_the_reasons_never_say_no_guardrail_was_breached_over_an_uncompared_one() -> None:
    experiment, metrics, measured, _, _ = _analysed()
    comparisons, _ = compare_all(experiment, metrics, measured.data, AS_OF)
    srm = srm_test(measured.cleaning.units, {n: v.share for n, v in experiment.variants.items()})
    plain = decide(experiment, comparisons, srm, True, AS_OF)
    assert plain.recommendation != "investigate"
    noted = decide(
        experiment, comparisons, srm, True, AS_OF, described_guardrails=["ai_latency_p95"]
    )
    assert noted.recommendation == plain.recommendation
    assert noted.reasons[: len(plain.reasons)] == tuple(
        r.replace("No guardrail was breached", "No compared guardrail was breached")
        for r in plain.reasons
    )
    assert "Not compared: the guardrail ai_latency_p95 is AI-only" in noted.reasons[-1]


def _ids_shown(text: str) -> list[str]:
    """The metric ids (snake_case) in ``text`` of the metrics whose label is not their id."""
    return [
        name
        for name, metric in CONFIG.metrics.items()
        if metric.label != name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
    ]


def test_a_whole_analysis_names_the_described_guardrails_in_its_reasons() -> None:
    experiment, metrics, measured, validation, now = _analysed()
    results = summarise(experiment, metrics, measured, validation, "r1", AS_OF, now)
    reasons = " ".join(results.decision.reasons)
    described = [g for g in experiment.metrics.guardrails if CONFIG.metrics[g].ai_only]
    assert described
    not_compared = reasons.split("Not compared:")[-1]
    # by the labels the report shows (AI latency p95 (ms)), not the ids (ai_latency_p95)
    assert all(CONFIG.metrics[name].label in not_compared for name in described)
    assert _ids_shown(reasons) == []
    assert "No guardrail was breached" not in reasons


def test_the_summary_artifact_names_metrics_by_their_labels() -> None:
    experiment, metrics, measured, validation, now = _analysed()
    results = summarise(experiment, metrics, measured, validation, "r1", AS_OF, now)
    text = markdown_summary(results, "file:///r/report.html")
    assert "Not compared: the guardrails " in text  # the reason that named ids before
    assert _ids_shown(text) == []
    assert CONFIG.metrics[experiment.metrics.primary].label in text
