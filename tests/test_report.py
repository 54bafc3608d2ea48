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
    collect_index_entries,
    ensure_plotly_asset,
    forest_plot,
    publish_run,
    render_index,
    render_report,
    units_bar,
    write_index,
    write_text_atomic,
)

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


@pytest.mark.parametrize("fixture", ["two_arm_results", "three_arm_results"])
def test_forest_plot_has_one_point_per_finite_lift(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    results: Results = request.getfixturevalue(fixture)
    fig = forest_plot(results)
    points = [x for trace in fig.data for x in trace.x]
    assert len(points) == _finite_lifts(results)
    expected = sorted(c["lift"] * 100 for c in results["comparisons"] if c["lift"] is not None)
    assert sorted(points) == pytest.approx(expected)
    assert all(trace.error_x.type == "data" for trace in fig.data)


def test_forest_plot_colours_and_symbols_by_verdict(two_arm_results: Results) -> None:
    fig = forest_plot(two_arm_results)
    by_name = {trace.name: trace for trace in fig.data}
    assert by_name["better"].marker.color == "#0072B2"
    assert by_name["worse"].marker.color == "#D55E00"
    assert by_name["inconclusive"].marker.color == "#999999"
    symbols = {trace.marker.symbol for trace in fig.data}
    assert len(symbols) == 3  # the verdict is readable without colour
    hover = " ".join(t for trace in fig.data for t in trace.text)
    assert "p = " in hover
    assert "n = " in hover
    assert "method: delta" in hover


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


def test_units_bar_shows_every_arm(three_arm_results: Results) -> None:
    fig = units_bar(three_arm_results)
    assert list(fig.data[0].x) == ["control", "ai", "ai_v2"]
    assert list(fig.data[0].y) == [3400, 3100, 3500]


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
    assert 'id="forest-plot"' in page
    assert 'id="units-bar"' in page


def test_report_renders_the_minimal_contract_shape() -> None:
    """Only the fields of the contract's section 3 example: no experiment block, no labels."""
    results = {
        "schema_version": 1,
        "experiment_id": "bare",
        "run_id": "r1",
        "analysis_date": "2026-11-01",
        "data": {"units": {"control": 10, "ai": 12}, "events": 90, "duplicates_dropped": 0,
                 "crossovers_excluded": 0, "quarantined_rows": 0},
        "validation": {"success": True, "failed_expectations": []},
        "srm": {"p_value": None, "flagged": False, "expected": {}, "observed": {}},
        "comparisons": [],
        "segments": [],
        "decision": {"recommendation": "keep running", "reasons": []},
    }  # fmt: skip
    page = render_report(results, REPORT_PLOTLY_SRC)
    assert "keep running" in page
    assert "No comparisons in this run." in page
    assert 'id="forest-plot"' not in page


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
    assert "<script" not in page  # the index needs no plotly
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
