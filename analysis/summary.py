"""Short summaries of a run, drawn from ``results.json`` only, for the orchestrator's UI.

The Prefect flows show these as artifacts (a markdown summary and a table of
the comparisons) and put the decision in events. Like the report, they format
the results and never recompute a statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.report.formatting import BASIS_TEXT, basis_view, fmt_ci, fmt_count, fmt_lift, fmt_p

# Recommendations that should reach a person rather than wait in a report.
ATTENTION = frozenset({"don't ship", "investigate"})


def _cell(text: object) -> str:
    """Markdown table cell text: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(c: Mapping[str, Any]) -> str:
    """The numbers the verdict read (CUPED-adjusted or always-valid when that was the basis)."""
    view = basis_view(c)
    p_value = view["p_value"] if view["p_value"] is not None else c.get("p_value")
    cells = (
        c.get("label") or c.get("metric"),
        f"{c.get('treatment')} vs {c.get('control')}",
        fmt_lift(view["lift"]),
        f"{fmt_ci(view['ci'])} ({view['ci_kind']})",
        fmt_p(p_value),
        c.get("verdict"),
        BASIS_TEXT.get(view["basis"], view["basis"]),
    )
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def primary_comparisons(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The comparisons of the experiment's primary metric (one per treatment arm)."""
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    primary = (experiment.get("metrics") or {}).get("primary")
    return [c for c in results.get("comparisons") or [] if c.get("metric") == primary]


def markdown_summary(results: Mapping[str, Any], report_url: str | None = None) -> str:
    """Decision and reasons, primary metric (lift and CI), SRM and validation, in markdown."""
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    decision: Mapping[str, Any] = results.get("decision") or {}
    srm: Mapping[str, Any] = results.get("srm") or {}
    validation: Mapping[str, Any] = results.get("validation") or {}
    name = experiment.get("name") or results.get("experiment_id")
    lines = [
        f"# {name}",
        "",
        f"Experiment `{results.get('experiment_id')}`, run `{results.get('run_id')}`, "
        f"as of {results.get('analysis_date')}.",
        "",
        f"## Decision: **{decision.get('recommendation', 'unknown')}**",
        "",
        *(f"- {reason}" for reason in decision.get("reasons") or []),
        "",
        "## Primary metric",
        "",
        "| metric | arms | lift | CI | p | verdict | basis |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.extend(_row(c) for c in primary_comparisons(results))
    flagged = "**flagged**" if srm.get("flagged") else "not flagged"
    failed: Sequence[Mapping[str, Any]] = validation.get("failed_expectations") or []
    units = results.get("data", {}).get("units") or {}
    lines += [
        "",
        "## Data",
        "",
        f"- Units: {', '.join(f'{arm} {fmt_count(n)}' for arm, n in units.items()) or '–'}",
        f"- Sample-ratio mismatch: {flagged} (p {fmt_p(srm.get('p_value'))})",
        f"- Validation: {'passed' if validation.get('success') else '**failed**'}"
        f" ({len(failed)} expectation(s) failed"
        f"{', '.join([''] + [str(f.get('expectation')) for f in failed])})",
    ]
    if report_url:
        lines += ["", f"[Open the report]({report_url})"]
    return "\n".join(lines) + "\n"


def comparison_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per comparison: JSON values only (numbers stay numbers)."""
    rows: list[dict[str, Any]] = []
    for c in results.get("comparisons") or []:
        lift_ci = c.get("lift_ci") or [None, None]
        rows.append(
            {
                "metric": c.get("metric"),
                "role": c.get("role"),
                "category": c.get("category"),
                "control": c.get("control"),
                "treatment": c.get("treatment"),
                "n_control": c.get("n_control"),
                "n_treatment": c.get("n_treatment"),
                "mean_control": c.get("mean_control"),
                "mean_treatment": c.get("mean_treatment"),
                "lift": c.get("lift"),
                "lift_ci_low": lift_ci[0],
                "lift_ci_high": lift_ci[1],
                "p_value": c.get("p_value"),
                "p_value_adjusted": c.get("p_value_adjusted"),
                "verdict": c.get("verdict"),
                "verdict_basis": c.get("verdict_basis"),
            }
        )
    return rows


def nightly_markdown(summaries: Sequence[Mapping[str, Any]]) -> str:
    """A table of every experiment of a nightly run: decision and report, or the error."""
    lines = ["# Nightly run", "", "| experiment | outcome | report |", "|---|---|---|"]
    for s in summaries:
        if "error" in s:
            outcome, report = f"**failed**: {s['error']}", "–"
        else:
            outcome, report = str(s.get("decision")), str(s.get("report"))
        lines.append(f"| {_cell(s.get('experiment_id'))} | {_cell(outcome)} | {_cell(report)} |")
    failed = sum(1 for s in summaries if "error" in s)
    lines += ["", f"{len(summaries) - failed} analysed, {failed} failed."]
    return "\n".join(lines) + "\n"
