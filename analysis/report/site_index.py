"""The site's index: every experiment's runs, latest first (``<out_dir>/index.html``).

Read from the published ``results.json`` files, written atomically; the
publisher rewrites it after each run, holding the index lock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from analysis.report.formatting import basis_view, primary_metric
from analysis.report.health import health_problems
from analysis.report.publish import write_text_atomic
from analysis.report.render import (
    REPORT_PAGE,
    SUPPORTED_SCHEMA_VERSION,
    VALIDATION_PAGE,
    render_index,
)

__all__ = ["collect_index_entries", "write_index"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- index


def _run_summary(experiment_id: str, run_dir: Path, results: Mapping[str, Any]) -> dict[str, Any]:
    base = f"{quote(experiment_id)}/{quote(run_dir.name)}"
    primary = primary_metric(results)
    srm: Mapping[str, Any] = results.get("srm") or {}
    validation: Mapping[str, Any] = results.get("validation") or {}
    decision: Mapping[str, Any] = results.get("decision") or {}
    chosen = [
        c
        for c in results.get("comparisons") or []
        if primary is not None and c.get("metric") == primary
    ]
    summaries = []
    for c in chosen:
        view = basis_view(c)
        verdict = c.get("verdict")
        summaries.append(
            {
                "metric": c.get("metric"),
                "label": c.get("label") or c.get("metric"),
                "control": c.get("control"),
                "treatment": c.get("treatment"),
                "lift": view["lift"],
                "lift_ci": view["ci"],
                "ci_kind": view["ci_kind"],
                "verdict": verdict,
                "verdict_class": verdict
                if verdict in {"better", "worse", "inconclusive"}
                else "unknown",
            }
        )
    lifts = [s["lift"] for s in summaries if s["lift"] is not None]
    return {
        "run_id": run_dir.name,
        "analysis_date": results.get("analysis_date"),
        "generated_at": results.get("generated_at"),
        "report_href": f"{base}/{REPORT_PAGE}" if (run_dir / REPORT_PAGE).is_file() else None,
        "validation_href": f"{base}/{VALIDATION_PAGE}"
        if (run_dir / VALIDATION_PAGE).is_file()
        else None,
        "results_href": f"{base}/results.json",
        "recommendation": decision.get("recommendation"),
        "reasons": list(decision.get("reasons") or []),
        "srm_flagged": bool(srm.get("flagged")),
        "srm_p_value": srm.get("p_value"),
        "validation_success": validation.get("success"),
        "problems": health_problems(results),
        "primary": summaries,
        "primary_sort": max(lifts) if lifts else None,
    }


def _sort_key(run: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(run.get("analysis_date") or ""),
        str(run.get("generated_at") or ""),
        str(run.get("run_id") or ""),
    )


def collect_index_entries(out_dir: Path) -> list[dict[str, Any]]:
    """One entry per experiment published under ``out_dir``, for :func:`render_index`.

    Reads every ``out_dir/<experiment>/<run>/results.json`` (hidden directories,
    such as in-flight ``.tmp-*`` runs, are skipped; unreadable files are logged
    and skipped).  Each entry::

        {"experiment_id", "name", "status", "owner",
         "latest": <run>, "runs": [<run>, ...]}   # latest first

    where a run is ``{"run_id", "analysis_date", "generated_at", "report_href",
    "validation_href", "results_href", "recommendation", "reasons",
    "srm_flagged", "srm_p_value", "validation_success", "problems": [{"level",
    "text"}], "primary": [summaries of the primary metric's comparisons, with
    the lift and interval the verdict reads], "primary_sort"}`` and hrefs are
    relative to ``out_dir`` (None for a page the run does not have).  Runs are ordered by
    (analysis_date, generated_at, run_id); experiments by name.
    """
    root = Path(out_dir)
    runs_by_experiment: dict[str, list[tuple[dict[str, Any], Mapping[str, Any]]]] = {}
    for path in sorted(root.glob("*/*/results.json")):
        run_dir = path.parent
        experiment_dir = run_dir.parent
        if experiment_dir.name.startswith(".") or run_dir.name.startswith("."):
            continue
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("skipping unreadable %s: %s", path, exc)
            continue
        if not isinstance(results, dict):
            logger.warning("skipping %s: not a JSON object", path)
            continue
        if results.get("schema_version") != SUPPORTED_SCHEMA_VERSION:
            logger.warning("skipping %s: schema_version %r", path, results.get("schema_version"))
            continue
        try:
            summary = _run_summary(experiment_dir.name, run_dir, results)
        except ValueError as exc:  # not results.json as Proof writes it
            logger.warning("skipping %s: %s", path, exc)
            continue
        experiment = results.get("experiment")
        runs_by_experiment.setdefault(experiment_dir.name, []).append(
            (summary, experiment if isinstance(experiment, Mapping) else {})
        )

    entries: list[dict[str, Any]] = []
    for experiment_id, found in runs_by_experiment.items():
        found.sort(key=lambda pair: _sort_key(pair[0]), reverse=True)
        runs = [summary for summary, _ in found]
        experiment = found[0][1]  # the latest run's view of the experiment
        entries.append(
            {
                "experiment_id": experiment_id,
                "name": experiment.get("name") or experiment_id,
                "status": experiment.get("status"),
                "owner": experiment.get("owner"),
                "latest": runs[0],
                "runs": runs,
            }
        )
    entries.sort(key=lambda e: (str(e["name"]).casefold(), e["experiment_id"]))
    return entries


def write_index(out_dir: Path) -> Path:
    """Render ``out_dir/index.html`` from every published run, atomically."""
    target = Path(out_dir) / "index.html"
    write_text_atomic(target, render_index(collect_index_entries(out_dir)))
    return target
