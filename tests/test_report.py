"""Tests of analysis.report: figures, HTML rendering, atomic publishing and the site index.

The fixtures are hand-written results dicts (schema_version 1): the report only
reads results, so no data or statistics are needed here.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from analysis.report import (
    REPORT_PLOTLY_SRC,
    VALIDATION_PAGE,
    collect_index_entries,
    ensure_plotly_asset,
    exposure_trend_chart,
    forest_plot,
    funnel_chart,
    over_time_chart,
    power_chart,
    publish_run,
    render_index,
    render_report,
    render_run_files,
    render_validation,
    segment_heatmap,
    time_on_task_chart,
    trust_chart,
    units_bar,
    write_index,
    write_text_atomic,
)
from analysis.report.formatting import basis_view
from analysis.report.text import fmt_ci, fmt_lift
from tests import report_fixtures as fixtures

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

Results = dict[str, Any]
METHODS = {"mean": "welch", "proportion": "welch", "ratio": "delta", "quantile": "bootstrap"}


def _comparison(
    metric: str,
    label: str,
    category: str,
    kind: str,
    goal: str,
    control: str,
    treatment: str,
    *,
    lift: float | None,
    verdict: str = "inconclusive",
    p: float | None = 0.4,
    mean_control: float | None = 0.5,
    note: str | None = None,
) -> dict[str, Any]:
    ci = None if lift is None else [lift - 0.03, lift + 0.03]
    return {
        "metric": metric,
        "label": label,
        "category": category,
        "kind": kind,
        "goal": goal,
        "control": control,
        "treatment": treatment,
        "n_control": 5012,
        "n_treatment": 4968,
        "mean_control": mean_control,
        "mean_treatment": None if lift is None or mean_control is None else mean_control * 1.05,
        "diff": None if lift is None else 0.025,
        "diff_ci": None if lift is None else [0.01, 0.04],
        "lift": lift,
        "lift_ci": ci,
        "p_value": p,
        "p_value_adjusted": None if p is None else min(1.0, p * 3),
        "method": METHODS[kind],
        "note": note,
        "cuped": {
            "applied": kind == "mean",
            "variance_reduction": 0.21 if kind == "mean" else None,
            "reason": None if kind == "mean" else "no pre-period covariate",
        },
        "sequential": {
            "lift_ci": None if lift is None else [lift - 0.06, lift + 0.06],
            "p_value": p,
            "reason": None,
        },
        "verdict": verdict,
        "verdict_basis": "fixed_horizon",
    }


@pytest.fixture
def two_arm_results() -> Results:
    """Smart compose: control vs ai, one comparison without an estimate."""
    comparisons = [
        _comparison(
            "task_completion_rate",
            "Task completion rate",
            "outcome",
            "ratio",
            "increase",
            "control",
            "ai",
            lift=0.062,
            verdict="better",
            p=0.0004,
        ),
        _comparison(
            "tasks_completed_per_user",
            "Tasks completed per user",
            "outcome",
            "mean",
            "increase",
            "control",
            "ai",
            lift=0.031,
            p=0.08,
            mean_control=3.2,
        ),
        _comparison(
            "time_on_task",
            "Time on task (s)",
            "effort",
            "ratio",
            "decrease",
            "control",
            "ai",
            lift=-0.12,
            verdict="better",
            p=0.001,
            mean_control=312.0,
        ),
        _comparison(
            "trust_score",
            "Trust score",
            "trust",
            "mean",
            "increase",
            "control",
            "ai",
            lift=None,
            p=None,
            mean_control=None,
            note="no trust_survey responses in control",
        ),
        _comparison(
            "support_tickets_per_user",
            "Support tickets per user",
            "guardrail",
            "mean",
            "decrease",
            "control",
            "ai",
            lift=0.15,
            verdict="worse",
            p=0.01,
            mean_control=0.2,
        ),
    ]
    return {
        "schema_version": 1,
        "experiment_id": "smart-compose",
        "run_id": "2026-11-02T020000Z",
        "analysis_date": "2026-11-01",
        "generated_at": "2026-11-02T02:00:13Z",
        "experiment": {
            "name": "Smart compose in the ticket editor",
            "hypothesis": "AI drafts help agents finish tickets faster without losing their trust",
            "owner": "pm@example.com",
            "status": "running",
            "start": "2026-10-01",
            "end": None,
            "control": "control",
            "variants": {
                "control": {"share": 0.5, "ai": False},
                "ai": {"share": 0.5, "ai": True},
            },
            "alpha": 0.05,
            "source": "warehouse",
        },
        "data": {
            "units": {"control": 5012, "ai": 4968},
            "events": 412_345,
            "duplicates_dropped": 120,
            "crossovers_excluded": 3,
            "quarantined_rows": 0,
        },
        "validation": {"success": True, "failed_expectations": [], "expectations_evaluated": 24},
        "srm": {
            "p_value": 0.66,
            "flagged": False,
            "expected": {"control": 0.5, "ai": 0.5},
            "observed": {"control": 5012, "ai": 4968},
        },
        "comparisons": comparisons,
        "descriptive": [
            {
                "metric": "acceptance_rate",
                "label": "Acceptance rate",
                "variant": "ai",
                "n": 4100,
                "value": 0.41,
            },
            {
                "metric": "ai_latency_p95",
                "label": "AI latency p95 (ms)",
                "variant": "ai",
                "n": 4968,
                "value": None,
            },
        ],
        "segments": [],
        "decision": {
            "recommendation": "investigate",
            "reasons": [
                "Task completion rate is better (+6.2%).",
                "Guardrail support tickets per user is worse (+15.0%).",
            ],
        },
    }


@pytest.fixture
def three_arm_results() -> Results:
    """Auto triage: control, ai, ai_v2; AI-only metrics compare ai_v2 with ai; SRM and
    validation both fail."""
    comparisons = [
        _comparison(
            "task_completion_rate",
            "Task completion rate",
            "outcome",
            "ratio",
            "increase",
            "control",
            "ai",
            lift=0.02,
            p=0.3,
        ),
        _comparison(
            "task_completion_rate",
            "Task completion rate",
            "outcome",
            "ratio",
            "increase",
            "control",
            "ai_v2",
            lift=0.05,
            verdict="better",
            p=0.002,
        ),
        _comparison(
            "abandonment_rate",
            "Abandonment rate",
            "outcome",
            "ratio",
            "decrease",
            "control",
            "ai",
            lift=None,  # NaN never reaches JSON: null plus a reason
            p=None,
            note="control has no abandoned tasks",
        ),
        _comparison(
            "abandonment_rate",
            "Abandonment rate",
            "outcome",
            "ratio",
            "decrease",
            "control",
            "ai_v2",
            lift=-0.04,
            p=0.2,
        ),
        _comparison(
            "acceptance_rate",
            "Acceptance rate",
            "trust",
            "ratio",
            "increase",
            "ai",
            "ai_v2",
            lift=0.09,
            verdict="better",
            p=0.0001,
        ),
        _comparison(
            "ai_latency_p95",
            "AI latency p95 (ms)",
            "guardrail",
            "quantile",
            "decrease",
            "ai",
            "ai_v2",
            lift=0.2,
            verdict="worse",
            p=0.03,
            mean_control=840.0,
        ),
    ]
    return {
        "schema_version": 1,
        "experiment_id": "auto-triage",
        "run_id": "2026-11-03T020000Z",
        "analysis_date": "2026-11-02",
        "generated_at": "2026-11-03T02:00:09Z",
        "experiment": {
            "name": "Automatic triage of incoming requests",
            "hypothesis": "An AI triage step routes requests so users complete them more often",
            "owner": "triage-team@example.com",
            "status": "running",
            "start": "2026-10-15",
            "end": "2026-12-15",
            "control": "control",
            "variants": {
                "control": {"share": 0.34, "ai": False},
                "ai": {"share": 0.33, "ai": True},
                "ai_v2": {"share": 0.33, "ai": True},
            },
            "alpha": 0.05,
            "source": "warehouse",
        },
        "data": {
            "units": {"control": 3400, "ai": 3100, "ai_v2": 3500},
            "events": 250_000,
            "duplicates_dropped": 0,
            "crossovers_excluded": 12,
            "quarantined_rows": 57,
        },
        "validation": {
            "success": False,
            "failed_expectations": [
                {
                    "table": "events",
                    "expectation": "expect_column_values_to_not_be_null",
                    "column": "unit_id",
                    "severity": "critical",
                    "unexpected_count": 57,
                },
                {
                    "table": "assignments",
                    "expectation": "expect_table_row_count_to_be_between",
                    "column": None,
                    "severity": "warning",
                    "unexpected_count": None,
                },
            ],
            "expectations_evaluated": 30,
        },
        "srm": {
            "p_value": 0.00002,
            "flagged": True,
            "expected": {"control": 0.34, "ai": 0.33, "ai_v2": 0.33},
            "observed": {"control": 3400, "ai": 3100, "ai_v2": 3500},
        },
        "comparisons": comparisons,
        "descriptive": [],
        "segments": [],
        "decision": {
            "recommendation": "investigate",
            "reasons": ["Sample ratio mismatch (p < 0.001): assignment may be broken."],
        },
    }


def _poison(results: Results) -> Results:
    """Put the XSS payload in every free-text field of a results dict."""
    bad = copy.deepcopy(results)
    exp = bad["experiment"]
    exp["name"] = f"Name {XSS}"
    exp["hypothesis"] = f"Hypothesis {XSS}"
    exp["owner"] = XSS
    evil_arm = f"ai{XSS}"
    exp["variants"] = {(evil_arm if k == "ai" else k): v for k, v in exp["variants"].items()}
    for section in ("units",):
        bad["data"][section] = {
            (evil_arm if k == "ai" else k): v for k, v in bad["data"][section].items()
        }
    for key in ("expected", "observed"):
        bad["srm"][key] = {(evil_arm if k == "ai" else k): v for k, v in bad["srm"][key].items()}
    bad["srm"]["flagged"] = True
    for c in bad["comparisons"]:
        c["label"] = f"{c['label']} {XSS}"
        c["method"] = XSS
        c["note"] = XSS
        c["treatment"] = evil_arm if c["treatment"] == "ai" else c["treatment"]
    for d in bad["descriptive"]:
        d["label"] = XSS
        d["variant"] = evil_arm
    bad["validation"]["success"] = False
    bad["validation"]["failed_expectations"] = [
        {
            "table": XSS,
            "expectation": XSS,
            "column": XSS,
            "severity": "critical",
            "unexpected_count": 1,
        },
    ]
    bad["decision"]["reasons"] = [f"Reason {XSS}"]
    bad["decision"]["recommendation"] = XSS
    return bad


def _finite_lifts(results: Mapping[str, Any]) -> int:
    return sum(
        1
        for c in results["comparisons"]
        if isinstance(c["lift"], float) and math.isfinite(c["lift"])
    )


# --------------------------------------------------------------------------- figures


def _traces(fig: Any, meta: str) -> list[Any]:
    return [trace for trace in fig.data if trace.meta == meta]


@pytest.mark.parametrize("fixture", ["two_arm_results", "three_arm_results"])
def test_forest_plot_has_one_point_per_finite_lift(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    results: Results = request.getfixturevalue(fixture)
    fig = forest_plot(results)
    points = [x for trace in _traces(fig, "fixed") for x in trace.x]
    assert len(points) == _finite_lifts(results)
    expected = sorted(c["lift"] * 100 for c in results["comparisons"] if c["lift"] is not None)
    assert sorted(points) == pytest.approx(expected)
    assert all(trace.error_x.type == "data" for trace in fig.data)
    # Each point also carries its always-valid interval, drawn as a thinner, capped line.
    sequential = _traces(fig, "sequential")
    assert sorted(x for trace in sequential for x in trace.x) == pytest.approx(expected)
    assert all(
        t.error_x.thickness < f.error_x.thickness
        for t, f in zip(sequential, _traces(fig, "fixed"), strict=True)
    )


def test_forest_plot_draws_the_numbers_of_the_verdict_basis() -> None:
    """sequential_cuped: the CUPED lift, its fixed-horizon CUPED CI and the sequential CI."""
    results = fixtures.load("auto_triage")
    fig = forest_plot(results)
    first = results["comparisons"][0]
    assert first["verdict_basis"] == "sequential_cuped"
    fixed = next(t for t in _traces(fig, "fixed") if t.name == first["verdict"])
    sequential = next(t for t in _traces(fig, "sequential") if t.legendgroup == first["verdict"])
    lift = first["cuped"]["lift"] * 100
    assert fixed.x[0] == pytest.approx(lift)
    assert fixed.error_x.array[0] == pytest.approx(first["cuped"]["lift_ci"][1] * 100 - lift)
    assert sequential.error_x.arrayminus[0] == pytest.approx(
        lift - first["sequential"]["lift_ci"][0] * 100
    )


def test_forest_plot_colours_and_symbols_by_verdict(two_arm_results: Results) -> None:
    fig = forest_plot(two_arm_results)
    by_name = {trace.name: trace for trace in _traces(fig, "fixed")}
    assert by_name["better"].marker.color == "#0072B2"
    assert by_name["worse"].marker.color == "#D55E00"
    assert by_name["inconclusive"].marker.color == "#999999"
    symbols = {trace.marker.symbol for trace in _traces(fig, "fixed")}
    assert len(symbols) == 3  # the verdict is readable without colour
    hover = " ".join(t for trace in _traces(fig, "fixed") for t in trace.text)
    assert "p = " in hover
    assert "n = " in hover
    assert "method: delta" in hover
    assert "always-valid CI" in hover


def test_forest_plot_groups_categories_in_order(two_arm_results: Results) -> None:
    fig = forest_plot(two_arm_results)
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("<b>")]
    assert titles == ["<b>Outcome</b>", "<b>Effort</b>", "<b>Guardrail</b>"]
    note = [a.text for a in fig.layout.annotations if a.text.startswith("Not plotted")]
    assert len(note) == 1
    assert "Trust score" in note[0]


def test_forest_plot_without_estimates_is_a_note(two_arm_results: Results) -> None:
    for c in two_arm_results["comparisons"]:
        c["lift"] = None
    fig = forest_plot(two_arm_results)
    assert len(fig.data) == 0
    assert any("No comparison" in a.text for a in fig.layout.annotations)
    assert any("Not plotted" in a.text for a in fig.layout.annotations)


def test_units_bar_shows_every_arm(three_arm_results: Results) -> None:
    fig = units_bar(three_arm_results)
    bars = {x: y for trace in fig.data for x, y in zip(trace.x, trace.y, strict=True)}
    assert bars == {"control": 3400, "ai": 3100, "ai_v2": 3500}
    assert list(fig.layout.xaxis.categoryarray) == ["control", "ai", "ai_v2"]
    hatched = [trace for trace in fig.data if trace.marker.pattern.shape == "/"]
    assert [list(t.x) for t in hatched] == [["ai", "ai_v2"]]  # AI arms: hatched, not colour alone


# --------------------------------------------------------------------------- report


@pytest.mark.parametrize("fixture", ["two_arm_results", "three_arm_results"])
def test_report_shows_decision_and_every_comparison(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    results: Results = request.getfixturevalue(fixture)
    page = render_report(results, REPORT_PLOTLY_SRC)
    assert results["decision"]["recommendation"] in page
    for reason in results["decision"]["reasons"]:
        assert str(escape(reason)) in page
    for c in results["comparisons"]:
        assert str(escape(c["label"])) in page
    assert results["experiment"]["name"] in page
    assert results["run_id"] in page
    assert 'name="viewport"' in page
    assert "Welch" in page
    assert "delta method" in page


def test_report_banners(two_arm_results: Results, three_arm_results: Results) -> None:
    healthy = render_report(two_arm_results, REPORT_PLOTLY_SRC)
    assert 'role="alert"' not in healthy
    broken = render_report(three_arm_results, REPORT_PLOTLY_SRC)
    assert broken.count('role="alert"') == 2
    assert "2 health warnings below" in broken  # the verdict card points at them
    assert "Sample ratio mismatch" in broken
    assert "Data validation failed" in broken
    assert "expect_column_values_to_not_be_null" in broken


def test_report_verdict_marks_are_text_not_colour_alone(two_arm_results: Results) -> None:
    page = render_report(two_arm_results, REPORT_PLOTLY_SRC)
    assert re.search(r'class="verdict better">\S+ better<', page)
    assert re.search(r'class="verdict worse">\S+ worse<', page)
    assert re.search(r'class="verdict inconclusive">\S+ inconclusive<', page)
    assert "+6.2%" in page  # lift as a percentage
    assert "[+3.2%, +9.2%]" in page  # its CI
    assert "no trust_survey responses in control" in page  # the reason for a missing lift


@pytest.mark.parametrize("fixture", ["two_arm_results", "three_arm_results"])
def test_report_loads_plotly_from_the_relative_asset_only(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    page = render_report(request.getfixturevalue(fixture), REPORT_PLOTLY_SRC)
    srcs = re.findall(r"<script[^>]*\bsrc=\"([^\"]*)\"", page)
    assert srcs == ["../../assets/plotly.min.js"]
    assert "cdn" not in page.lower()
    assert "https://" not in page
    assert len(page.encode()) < 200_000  # no inlined plotly bundle (it is > 3 MB)
    assert 'id="fig-forest"' in page
    assert 'id="fig-units"' in page
    assert "defer" in re.search(r"<script[^>]*plotly\.min\.js[^>]*>", page).group(0)  # type: ignore[union-attr]


def test_report_renders_the_minimal_contract_shape() -> None:
    """Only the fields of the contract's section 3 example: no experiment block, no labels."""
    results = {
        "schema_version": 1,
        "experiment_id": "bare",
        "run_id": "r1",
        "analysis_date": "2026-11-01",
        "data": {
            "units": {"control": 10, "ai": 12},
            "events": 90,
            "duplicates_dropped": 0,
            "crossovers_excluded": 0,
            "quarantined_rows": 0,
        },
        "validation": {"success": True, "failed_expectations": []},
        "srm": {"p_value": None, "flagged": False, "expected": {}, "observed": {}},
        "comparisons": [],
        "segments": [],
        "decision": {"recommendation": "keep running", "reasons": []},
    }
    page = render_report(results, REPORT_PLOTLY_SRC)
    assert "keep running" in page
    assert "No comparisons in this run." in page
    assert 'id="fig-forest"' not in page
    assert page.count("not available for this run") >= 7


def test_report_refuses_remote_plotly(two_arm_results: Results) -> None:
    with pytest.raises(ValueError, match="relative URL"):
        render_report(two_arm_results, "https://cdn.plot.ly/plotly-3.0.0.min.js")


def test_report_refuses_unknown_schema(two_arm_results: Results) -> None:
    two_arm_results["schema_version"] = 2
    with pytest.raises(ValueError, match="schema_version"):
        render_report(two_arm_results, REPORT_PLOTLY_SRC)


@pytest.mark.parametrize("fixture", ["two_arm_results", "three_arm_results"])
def test_report_and_index_escape_every_string(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bad = _poison(request.getfixturevalue(fixture))
    page = render_report(bad, REPORT_PLOTLY_SRC)
    assert XSS not in page
    assert "<script>alert" not in page
    assert XSS_ESCAPED in page
    publish_run(
        tmp_path,
        bad["experiment_id"],
        bad["run_id"],
        {"results.json": json.dumps(bad), "report.html": page},
    )
    index = write_index(tmp_path).read_text(encoding="utf-8")
    assert XSS not in index
    assert "<script>alert" not in index
    assert XSS_ESCAPED in index


# --------------------------------------------------------------------------- newer fields

REAL = ["smart_compose", "auto_triage"]


def test_basis_view_picks_the_numbers_the_verdict_reads() -> None:
    results = fixtures.load("auto_triage")
    by_basis = {c["verdict_basis"]: c for c in results["comparisons"]}
    cuped = basis_view(by_basis["sequential_cuped"])
    c = by_basis["sequential_cuped"]
    assert (cuped["lift"], cuped["ci"]) == (c["cuped"]["lift"], c["sequential"]["lift_ci"])
    assert cuped["fixed_ci"] == c["cuped"]["lift_ci"]
    assert cuped["p_value"] == c["verdict_p_value_adjusted"]
    plain = basis_view(by_basis["sequential"])
    c = by_basis["sequential"]
    assert (plain["lift"], plain["ci"], plain["cuped"]) == (
        c["lift"],
        c["sequential"]["lift_ci"],
        False,
    )
    c = dict(c, verdict_basis="fixed_horizon")
    fixed = basis_view(c)
    assert (fixed["ci"], fixed["ci_kind"]) == (c["lift_ci"], "fixed-horizon")


@pytest.mark.parametrize("name", REAL)
def test_scorecard_shows_what_the_decision_says(name: str) -> None:
    """Every comparison the decision quotes reads the same in the scorecard."""
    results = fixtures.load(name)
    page = render_report(results, REPORT_PLOTLY_SRC)
    reasons = " ".join(results["decision"]["reasons"])
    quoted = 0
    for c in results["comparisons"]:
        head = f"{c['label']}: {c['treatment']} vs {c['control']} "
        if head not in reasons:
            continue
        quoted += 1
        view = basis_view(c)
        lo, hi = (fmt_lift(v) for v in view["ci"])
        stated = f"{head}{fmt_lift(view['lift'])} (always-valid 95% CI {lo} to {hi})"
        assert stated.replace("\u2212", "-") in reasons  # the decision writes a hyphen-minus
        assert f"{fmt_lift(view['lift'])}</td>" in page or f"{fmt_lift(view['lift'])} <span" in page
        assert fmt_ci(view["ci"]) in page
    assert quoted >= 2


def test_over_time_chart_draws_every_day_and_arm() -> None:
    results = fixtures.load("auto_triage")
    fig = over_time_chart(results)
    assert fig is not None
    days = results["over_time"]["days"]
    lifts = {t.name: t for t in fig.data if t.name.endswith(": lift")}
    assert set(lifts) == {"ai vs control: lift", "ai_v2 vs control: lift"}
    first = days[-1]["comparisons"][0]
    assert lifts["ai vs control: lift"].y[-1] == pytest.approx(first["lift"] * 100)
    bands = [t for t in fig.data if t.name.endswith("always-valid band")]
    assert len(bands) == 2
    assert all(t.fill == "toself" and len(t.x) == 2 * len(days) for t in bands)
    units = {t.name: t for t in fig.data if t.name.startswith("units: ")}
    assert set(units) == {"units: control", "units: ai", "units: ai_v2"}
    assert units["units: ai"].y[-1] == days[-1]["units"]["ai"]
    dashes = {t.line.dash for t in units.values()}
    assert len(dashes) == 3  # arms differ by line style, not by colour alone


def test_exposure_trend_chart_has_a_panel_per_metric() -> None:
    results = fixtures.load("auto_triage")
    fig = exposure_trend_chart(results)
    assert fig is not None
    metrics = {t["metric"] for t in results["exposure_trend"]}
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == len(metrics)
    assert "Task completion rate" in titles
    points = sum(len(t.x) for t in fig.data)
    assert points == sum(len(t["buckets"]) for t in results["exposure_trend"])


def test_funnel_chart_counts_per_ai_arm() -> None:
    results = fixtures.load("auto_triage")
    fig = funnel_chart(results)
    assert fig is not None
    assert [t.name for t in fig.data] == ["ai", "ai_v2"]
    funnel = {f["variant"]: f["steps"] for f in results["funnel"]}
    for trace in fig.data:
        assert list(trace.x) == [s["count"] for s in funnel[trace.name]]
        assert list(trace.y) == [s["step"] for s in funnel[trace.name]]
        assert "% of shown)" in trace.text[1]  # accepted, as a share of the outputs shown
        assert "of shown" not in trace.text[-1]  # tasks completed is not a branch of "shown"
    assert len({t.marker.pattern.shape for t in fig.data}) == 2


def test_distribution_charts_show_each_arms_share() -> None:
    results = fixtures.load("smart_compose")
    time_fig = time_on_task_chart(results)
    assert time_fig is not None
    assert time_fig.layout.xaxis.type == "log"
    edges = results["distributions"]["time_on_task"]["log10_edges"]
    for trace in time_fig.data:
        assert trace.x[0] == pytest.approx(10 ** edges[0])
        assert sum(trace.y[:-1]) == pytest.approx(100)
    trust = trust_chart(results)
    assert trust is not None
    assert [t.name.split(" ")[0] for t in trust.data] == ["control", "ai"]
    assert all(sum(t.y) == pytest.approx(100) for t in trust.data)


def test_segment_heatmap_colours_by_goal_and_marks_significance() -> None:
    results = fixtures.load("auto_triage")
    fig = segment_heatmap(results, "task_completion_rate")
    assert fig is not None
    (heat,) = fig.data
    assert list(heat.x) == ["ai vs control", "ai_v2 vs control"]
    assert "platform: android" in heat.y
    first = next(
        s
        for s in results["segments"]
        if s["metric"] == "task_completion_rate"
        and s["value"] == "android"
        and s["treatment"] == "ai"
    )
    assert heat.z[0][0] == pytest.approx(first["lift"] * 100)
    assert heat.text[0][0].endswith("\u25cf")  # better after BH: filled circle
    assert heat.colorscale[-1][1] == "#0072B2"  # goal increase: higher is blue (better)
    down = segment_heatmap(results, "edit_rate")  # goal decrease: the scale is reversed
    assert down is not None
    assert down.data[0].colorscale[0][1] == "#0072B2"


def test_power_chart_marks_underpowered_tests() -> None:
    results = fixtures.load("auto_triage")
    fig = power_chart(results)
    assert fig is not None
    short = next(t for t in fig.data if t.name == "short of the plan")
    assert short.marker.pattern.shape == "/"
    weak = [
        c for c in results["comparisons"] if c["power"]["mde_relative"] > c["power"]["planned_mde"]
    ]
    assert len(short.x) == len(weak)


def test_newer_figures_are_none_without_their_fields() -> None:
    old = fixtures.legacy(fixtures.load("auto_triage"))
    for draw in (
        over_time_chart,
        exposure_trend_chart,
        funnel_chart,
        time_on_task_chart,
        trust_chart,
    ):
        assert draw(old) is None


FIGURE_IDS = [
    "fig-forest",
    "fig-over-time",
    "fig-exposure-trend",
    "fig-ai-funnel",
    "fig-time-on-task",
    "fig-trust",
    "fig-segments-0",
    "fig-power",
    "fig-units",
]
SECTIONS = [
    "verdict",
    "scorecard",
    "lift",
    "over-time",
    "ai-use",
    "distributions",
    "segments",
    "pooled",
    "power",
    "data",
    "methods",
    "glossary",
]


@pytest.mark.parametrize("name", REAL)
def test_report_has_every_section_with_real_numbers(name: str) -> None:
    results = fixtures.load(name)
    page = render_run_files(results, REPORT_PLOTLY_SRC)["report.html"]
    for section in SECTIONS:
        assert f'id="{section}"' in page
    for fid in FIGURE_IDS:
        assert f'id="{fid}"' in page
        assert f'id="{fid}-spec"' in page
    assert "not available for this run" not in page
    assert re.search(r"day \d+ of \d+, \d+ days to go", page)  # how far the experiment has run
    assert "h after the end of the data" in page  # freshness
    assert "Health checks:" in page  # nothing wrong, and it says so
    for arm, units in results["data"]["units"].items():
        assert f"<strong>{arm}</strong> {units:,} units" in page
    assert 'href="validation.html"' in page
    assert "Cochran" in page
    assert "Why sequential?" in page
    assert len(page.encode()) < 1_000_000


def test_report_shows_guardrail_noninferiority() -> None:
    page = render_report(fixtures.load("auto_triage"), REPORT_PLOTLY_SRC)
    assert "\u2713 Non-inferiority passed" in page
    assert "Non-inferiority failed (inferior)" in page
    assert "may rise by at most 10.0%" in page


def test_report_shows_pooled_ai_and_segments_tests() -> None:
    results = fixtures.load("auto_triage")
    page = render_report(results, REPORT_PLOTLY_SRC)
    assert page.count("ai (pooled) vs control") == len(results["pooled_ai"])
    assert "&#9888; differs" in page or "\u26a0 differs" in page
    two_arms = render_report(fixtures.load("smart_compose"), REPORT_PLOTLY_SRC)
    assert "fewer than two AI arms" in two_arms


def test_report_banners_for_every_health_problem() -> None:
    page = render_run_files(fixtures.unhealthy(fixtures.load("auto_triage")), REPORT_PLOTLY_SRC)[
        "report.html"
    ]
    assert page.count('role="alert"') == 5
    for title in (
        "Sample ratio mismatch",
        "Data validation failed",
        "Arms differed before the experiment",
        "The effect is fading",
        "Primary metric underpowered",
    ):
        assert title in page
    assert (
        "Task completion rate (ai vs control): \u22120.00512 per week (\u22120.7% of its level)"
        in page
    )
    assert 'href="#decay"' in page
    trends = page[page.index('id="decay-trends"') :]
    assert ">fading<" in trends
    assert ">steady so far<" in trends
    assert "observational: one arm&#39;s own trend" in trends
    assert '<a href="validation.html">See the data quality page</a>' in page
    assert "detectable now \u00b13.1%, planned \u00b12.0%" in page
    assert page.index('id="verdict"') < page.index('role="alert"') < page.index('id="scorecard"')
    assert "Health checks:" not in page


def test_report_degrades_without_newer_fields() -> None:
    page = render_report(fixtures.legacy(fixtures.load("auto_triage")), REPORT_PLOTLY_SRC)
    for what in (
        "The lift over time",
        "The lift by week since exposure",
        "The AI funnel",
        "The time-on-task distribution",
        "The trust score histogram",
        "Heterogeneity tests",
        "The pooled AI comparison",
    ):
        assert f"{what}: not available for this run." in page
    assert 'id="fig-forest"' in page
    assert 'id="fig-segments-0"' in page
    assert "data quality" not in page  # no validation page to link to


@pytest.mark.parametrize("page_name", ["javascript:alert(1)", "../x.html", "https://e.x/v.html"])
def test_report_links_only_a_plain_validation_page(page_name: str) -> None:
    results = fixtures.load("smart_compose")
    results["validation"]["page"] = page_name
    page = render_report(results, REPORT_PLOTLY_SRC)
    assert page_name not in page
    results["validation"]["page"] = "validation.html"
    assert 'href="validation.html"' in render_report(results, REPORT_PLOTLY_SRC)


def test_validation_page_lists_failures_examples_and_cleaning() -> None:
    results = fixtures.unhealthy(fixtures.load("auto_triage"))
    page = render_validation(results)
    assert "failed" in page
    assert "30 expectations evaluated" not in page
    assert "18 expectations evaluated: 16 passed, 2 failed (1 critical)" in page
    assert "expect_column_values_to_not_be_null" in page
    assert "event_id=e-1093 unit_id=None" in page  # examples
    assert ">57<" in page  # unexpected count
    assert "Duplicate events dropped" in page
    assert f">{results['data']['duplicates_dropped']:,}<" in page
    assert f">{results['data']['crossovers_excluded']:,}<" in page
    assert 'href="report.html"' in page
    assert "<script" not in page  # readable offline, nothing to load
    results["validation"]["expectations"] = [
        {
            "table": "events",
            "expectation": "expect_x",
            "column": "ts",
            "severity": "critical",
            "success": True,
            "unexpected_count": 0,
        },
    ]
    assert "Every expectation" in render_validation(results)


def test_render_run_files_returns_both_pages() -> None:
    results = fixtures.load("smart_compose")
    files = render_run_files(results, REPORT_PLOTLY_SRC)
    assert set(files) == {"report.html", VALIDATION_PAGE}
    assert 'href="validation.html"' in files["report.html"]
    assert "Data quality: Smart compose" in files[VALIDATION_PAGE]


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize("payload", [fixtures.XSS, fixtures.XSS_IMG])
def test_every_string_of_real_results_is_escaped(name: str, payload: str, tmp_path: Path) -> None:
    """Segment values, variant names, labels, funnel steps, dates, reasons, ... all poisoned."""
    bad = fixtures.poison(fixtures.unhealthy(fixtures.load(name)), payload)
    assert bad["funnel"][0]["steps"][1]["step"].endswith(payload)
    assert any(k.endswith(payload) for k in bad["data"]["units"])
    files = render_run_files(bad, REPORT_PLOTLY_SRC)
    escaped = str(escape(payload))
    for page in files.values():
        assert payload not in page
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert escaped in page
    publish_run(
        tmp_path, bad["experiment_id"], bad["run_id"], {"results.json": json.dumps(bad), **files}
    )
    index = write_index(tmp_path).read_text(encoding="utf-8")
    assert payload not in index
    assert escaped in index


@pytest.mark.parametrize("name", REAL)
def test_report_size_budget(name: str) -> None:
    """One report stays under 1 MB; plotly.js is shared, never inlined."""
    page = render_run_files(fixtures.load(name), REPORT_PLOTLY_SRC)["report.html"]
    assert len(page.encode()) < 1_000_000
    assert re.findall(r"<script[^>]*\bsrc=\"([^\"]*)\"", page) == ["../../assets/plotly.min.js"]
    assert "plotly.js v" not in page.lower()  # the bundle's banner


# --------------------------------------------------------------------------- publishing


def test_write_text_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "page.html"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two \u2713")
    assert target.read_text(encoding="utf-8") == "two \u2713"
    assert [p.name for p in target.parent.iterdir()] == ["page.html"]


def test_publish_run_writes_and_replaces(tmp_path: Path) -> None:
    run = publish_run(tmp_path, "exp", "r1", {"report.html": "v1", "data/x.bin": b"\x00\x01"})
    assert run == tmp_path / "exp" / "r1"
    assert (run / "data" / "x.bin").read_bytes() == b"\x00\x01"
    publish_run(tmp_path, "exp", "r1", {"report.html": "v2"})
    assert (run / "report.html").read_text(encoding="utf-8") == "v2"
    assert not (run / "data").exists()  # replaced as a whole, not merged
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]


def test_publish_run_failure_keeps_the_old_run(tmp_path: Path) -> None:
    publish_run(tmp_path, "exp", "r1", {"report.html": "good", "results.json": "{}"})
    files: dict[str, Any] = {"report.html": "new", "results.json": object()}
    with pytest.raises(TypeError, match=r"results\.json"):
        publish_run(tmp_path, "exp", "r1", files)
    run = tmp_path / "exp" / "r1"
    assert (run / "report.html").read_text(encoding="utf-8") == "good"
    assert (run / "results.json").read_text(encoding="utf-8") == "{}"
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]  # no .tmp-* left
    with pytest.raises(TypeError):
        publish_run(tmp_path, "exp", "r2", files)
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]


@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "a\\b"])
def test_publish_run_refuses_unsafe_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="directory name"):
        publish_run(tmp_path, "exp", bad, {"report.html": "x"})
    with pytest.raises(ValueError, match="directory name"):
        publish_run(tmp_path, bad, "r1", {"report.html": "x"})


def test_publish_run_refuses_files_outside_the_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="relative path"):
        publish_run(tmp_path, "exp", "r1", {"../escape.html": "x"})
    assert not (tmp_path / "escape.html").exists()
    assert list((tmp_path / "exp").iterdir()) == []


def test_ensure_plotly_asset_writes_once(tmp_path: Path) -> None:
    asset = ensure_plotly_asset(tmp_path)
    assert asset == tmp_path / "assets" / "plotly.min.js"
    assert asset.stat().st_size > 1_000_000
    before = asset.stat().st_mtime_ns
    assert ensure_plotly_asset(tmp_path) == asset
    assert asset.stat().st_mtime_ns == before  # not rewritten
    assert [p.name for p in asset.parent.iterdir()] == ["plotly.min.js"]


# --------------------------------------------------------------------------- index


PublishFn = Callable[[Results], Path]


@pytest.fixture
def publish(tmp_path: Path) -> PublishFn:
    def _publish(results: Results) -> Path:
        return publish_run(
            tmp_path,
            results["experiment_id"],
            results["run_id"],
            {
                "results.json": json.dumps(results),
                "report.html": render_report(results, REPORT_PLOTLY_SRC),
            },
        )

    return _publish


def test_index_lists_latest_run_first_and_links_earlier_runs(
    tmp_path: Path, publish: PublishFn, two_arm_results: Results, three_arm_results: Results
) -> None:
    runs = []
    for day, run_id in [(1, "b-run"), (3, "c-run"), (2, "a-run")]:
        results = copy.deepcopy(two_arm_results)
        results["analysis_date"] = f"2026-11-0{day}"
        results["run_id"] = run_id
        results["decision"]["recommendation"] = "ship" if day == 3 else "keep running"
        runs.append(results)
        publish(results)
    publish(three_arm_results)
    (tmp_path / "smart-compose" / ".tmp-x-123").mkdir()  # an in-flight publish is ignored
    (tmp_path / "smart-compose" / ".tmp-x-123" / "results.json").write_text("{", "utf-8")

    entries = collect_index_entries(tmp_path)
    assert [e["experiment_id"] for e in entries] == ["auto-triage", "smart-compose"]
    smart = entries[1]
    assert [r["run_id"] for r in smart["runs"]] == ["c-run", "a-run", "b-run"]
    assert smart["latest"]["run_id"] == "c-run"
    assert smart["latest"]["report_href"] == "smart-compose/c-run/report.html"
    assert smart["latest"]["primary"][0]["metric"] == "task_completion_rate"
    triage = entries[0]
    assert triage["latest"]["srm_flagged"] is True
    assert triage["latest"]["validation_success"] is False
    assert [c["treatment"] for c in triage["latest"]["primary"]] == ["ai", "ai_v2"]

    page = write_index(tmp_path).read_text(encoding="utf-8")
    latest_at = page.index('href="smart-compose/c-run/report.html"')
    assert latest_at < page.index('href="smart-compose/a-run/report.html"')
    assert page.index('href="smart-compose/a-run/report.html"') < page.index(
        'href="smart-compose/b-run/report.html"'
    )
    assert "sample ratio mismatch" in page
    assert "data validation failed" in page
    assert "+6.2% [+3.2%, +9.2%]" in page  # primary metric lift and CI
    assert "2026-11-03" in page  # last run date
    assert "<script src" not in page  # the index needs no plotly, only its inline sorter
    assert 'name="viewport"' in page


def test_index_with_same_date_orders_by_generated_at(
    tmp_path: Path, publish: PublishFn, two_arm_results: Results
) -> None:
    first = copy.deepcopy(two_arm_results)
    first["run_id"] = "zzz"
    first["generated_at"] = "2026-11-02T01:00:00Z"
    second = copy.deepcopy(two_arm_results)
    second["run_id"] = "aaa"
    second["generated_at"] = "2026-11-02T05:00:00Z"
    publish(first)
    publish(second)
    (entry,) = collect_index_entries(tmp_path)
    assert [r["run_id"] for r in entry["runs"]] == ["aaa", "zzz"]


def test_render_index_empty() -> None:
    page = render_index([])
    assert "No reports have been published yet." in page
    assert "<script" not in page


def test_index_is_sortable_filterable_and_shows_health(tmp_path: Path) -> None:
    healthy = fixtures.load("smart_compose")
    sick = fixtures.unhealthy(fixtures.load("auto_triage"))
    older = copy.deepcopy(healthy)
    older["run_id"], older["analysis_date"] = "20261101T020000Z", "2026-10-31"
    older["decision"]["recommendation"] = "keep running"
    for results in (older, healthy, sick):
        files = render_run_files(results, REPORT_PLOTLY_SRC)
        publish_run(
            tmp_path,
            results["experiment_id"],
            results["run_id"],
            {"results.json": json.dumps(results), **files},
        )
    entries = collect_index_entries(tmp_path)
    triage, smart = entries
    assert [p["text"] for p in triage["latest"]["problems"]] == [
        "sample ratio mismatch",
        "data validation failed",
        "arms differed before exposure",
        "the effect is fading",
        "primary metric underpowered",
    ]
    assert smart["latest"]["problems"] == []
    assert (
        smart["latest"]["validation_href"] == f"smart-compose/{healthy['run_id']}/validation.html"
    )
    assert smart["latest"]["primary"][0]["ci_kind"] == "always-valid"
    page = write_index(tmp_path).read_text(encoding="utf-8")
    for control in (
        'id="filter-text"',
        'id="filter-decision"',
        'id="filter-problems"',
        'data-key="name"',
        'data-key="lift"',
        'data-key="problems"',
        'data-key="date"',
    ):
        assert control in page
    assert 'data-problems="5"' in page
    assert 'data-problems="0"' in page
    assert "History (2 runs)" in page
    assert "20261101T020000Z" in page  # the earlier run is kept and linked
    assert "&#10003; healthy" in page
    assert 'href="smart-compose/20261126T020000Z/validation.html"' in page
