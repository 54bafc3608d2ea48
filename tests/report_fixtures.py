"""Realistic results dicts for the report tests, and variants built from them.

``tests/fixtures/results_*.json`` are results that the engine produced (schema
version 1, with ``over_time``, ``funnel``, ``distributions``,
``exposure_trend``, ``failure_patterns``, ``task_flow`` and ``unsure``, the last
three added later from the same data and engine) on the demo data: ``proof
simulate`` with seed 7 and 100,000 units, analysed as of 2026-11-25, with floats rounded to 6
significant digits.  ``smart_compose`` has two arms, ``auto_triage`` three
(pooled AI comparisons, non-inferiority guardrails).  The report reads
results only, so these files are all its tests need.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "fixtures"
Results = dict[str, Any]

#: The payloads pushed through every string of a results dict.
XSS = "<script>alert(1)</script>"
XSS_IMG = '<img src=x onerror="window.__xss=true">'
XSS_RUN = "<script>window.__xss=true</script>"

#: Fields added to results.json after its first version: a report must do without them.
NEWER_FIELDS = (
    "over_time",
    "funnel",
    "distributions",
    "exposure_trend",
    "pooled_ai",
    "heterogeneity",
    "pre_exposure",
    "failure_patterns",
    "decay",
    "task_flow",
    "unsure",
)


def load(name: str) -> Results:
    """A fresh copy of ``tests/fixtures/results_<name>.json`` (smart_compose, auto_triage)."""
    results: Results = json.loads((DATA / f"results_{name}.json").read_text(encoding="utf-8"))
    return results


def unhealthy(results: Results) -> Results:
    """The same run with every health problem: SRM, failed validation, pre-exposure
    imbalance, an underpowered primary metric, an effect that fades."""
    bad = copy.deepcopy(results)
    bad["srm"].update(flagged=True, p_value=2e-6)
    bad["validation"].update(
        success=False,
        page="validation.html",
        failed_expectations=[
            {
                "table": "events",
                "expectation": "expect_column_values_to_not_be_null",
                "column": "unit_id",
                "severity": "critical",
                "unexpected_count": 57,
                "examples": ["event_id=e-1093 unit_id=None", "event_id=e-2211 unit_id=None"],
            },
            {
                "table": "assignments",
                "expectation": "expect_column_values_to_be_in_set",
                "column": "variant",
                "severity": "warning",
                "unexpected_count": 12,
                "examples": ["ai_v3"],
            },
        ],
    )
    bad["data"]["quarantined_rows"] = 12
    key = next(iter(bad["pre_exposure"]["p_values_adjusted"]))
    bad["pre_exposure"]["flagged"] = [key]
    bad["pre_exposure"]["p_values_adjusted"][key] = 1e-5
    for c in bad["comparisons"]:
        if c["role"] == "primary":
            c["power"].update(mde_relative=0.031, days_to_planned_mde=12.4, reason=None)
    bad["decay"] = fading()
    # the first AI arm logs its confidence, overconfidently (as the demo holdout's does)
    sure = bad["unsure"]["arms"][0]
    sure["calibration_error"] = 0.403
    sure["buckets"] = [
        {
            "dimension": "confidence", "bucket": 4, "label": "0.8\u20131", "tasks": 20529,
            "accepted": 0.4774, "accepted_ci": [0.4688, 0.486], "edited": 0.2484,
            "edited_ci": [0.2411, 0.2557], "rejected": 0.2008, "rejected_ci": [0.1941, 0.2075],
            "confidence": 0.9044, "gap": -0.427, "gap_ci": [-0.4356, -0.4184],
        },
        *sure["buckets"],
    ]  # fmt: skip
    bad["decision"] = {
        "recommendation": "investigate",
        "reasons": ["Sample ratio mismatch (p < 0.001): assignment may be broken."],
    }
    return bad


def fading() -> Results:
    """A holdout's ``decay`` record (as :mod:`analysis.results.decay` writes it): the
    completion lift of ``ai`` fades, ``ai``'s own acceptance is steady so far."""
    return {
        "decaying": True,
        "alpha": 0.05,
        "level": 0.025,
        "trends": [
            {
                "metric": "task_completion_rate",
                "label": "Task completion rate",
                "goal": "increase",
                "control": "control",
                "treatment": "ai",
                "units": 61234,
                "baseline": 0.7012,
                "slope": -0.00512,
                "slope_ci": [-0.00731, -0.00293],
                "slope_sequential_ci": [-0.00905, -0.00119],
                "p_value": 0.0031,
                "decaying": True,
                "note": None,
            },
            {
                "metric": "acceptance_rate",
                "label": "Acceptance rate",
                "goal": "increase",
                "control": None,
                "treatment": "ai",
                "units": 30112,
                "baseline": 0.4488,
                "slope": -0.00061,
                "slope_ci": [-0.00212, 0.0009],
                "slope_sequential_ci": [-0.00377, 0.00255],
                "p_value": 1.0,
                "decaying": False,
                "note": "observational: one arm's own trend, not a randomised comparison",
            },
        ],
    }


def legacy(results: Results) -> Results:
    """The same run without the fields added after results.json's first version."""
    old = copy.deepcopy(results)
    for key in NEWER_FIELDS:
        old.pop(key, None)
    old["validation"].pop("page", None)
    return old


#: Objects whose keys are data (arm names, table names, metric-and-arms), not field names.
_DATA_KEYED = frozenset(
    {"variants", "units", "expected", "observed", "counts", "rows", "p_values_adjusted"}
)


def _map_strings(value: Any, change: Callable[[str], str], data_keys: bool = False) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {
            (change(k) if data_keys else k): _map_strings(v, change, k in _DATA_KEYED)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    return value


def poison(results: Results, payload: str = XSS) -> Results:
    """Every string value of the results, and every key that is data (variant names in
    ``units``, ``counts``, ...), with ``payload`` appended: segment values, labels,
    funnel steps, reasons, dates, the validation page name, ...

    The change is the same everywhere, so arms still match across fields.
    ``schema_version`` and the ids that name directories are kept.
    """
    bad: Results = _map_strings(copy.deepcopy(results), lambda s: f"{s}{payload}")
    bad["schema_version"] = results["schema_version"]
    bad["experiment_id"] = results["experiment_id"]
    bad["run_id"] = results["run_id"]
    return bad


def publish(out_dir: Path, results: Results, experiment_id: str | None = None) -> Path:
    """Render one run's pages and publish them with its results.json; returns the run dir."""
    from analysis.report import REPORT_PLOTLY_SRC, publish_run, render_run_files

    files: dict[str, str] = {"results.json": json.dumps(results)}
    files |= render_run_files(results, REPORT_PLOTLY_SRC)
    return publish_run(out_dir, experiment_id or results["experiment_id"], results["run_id"], files)


def build_demo_site(out_dir: Path) -> list[str]:
    """The demo site from the fixtures: smart-compose (two runs) and auto-triage, the
    shared plotly.min.js and the index.  Returns the pages to check, relative to out_dir."""
    from analysis.report import ensure_plotly_asset, write_index

    ensure_plotly_asset(out_dir)
    smart = load("smart_compose")
    earlier = copy.deepcopy(smart)
    earlier.update(
        run_id="20261101T020000Z",
        analysis_date="2026-10-31",
        generated_at="2026-11-01T02:00:38+00:00",
    )
    earlier["decision"]["recommendation"] = "keep running"
    pages = []
    for results in (earlier, smart, load("auto_triage")):
        run = publish(out_dir, results)
        pages += [str((run / p).relative_to(out_dir)) for p in ("report.html", "validation.html")]
    write_index(out_dir)
    return ["index.html", *pages[2:]]  # the earlier run's pages are the same kind
