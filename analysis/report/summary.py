"""Short summaries of a run, drawn from its results only, for the orchestrator's UI.

The Prefect flows show these as artifacts (a markdown summary and a table of
the comparisons) and put the decision in events. Like the report, they format
the results and never recompute a statistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.report.formatting import (
    BASIS_TEXT,
    as_results,
    basis_view,
    fmt_ci,
    fmt_count,
    fmt_lift,
    fmt_p,
)
from analysis.results.model import Results
from analysis.results.records import ComparisonRecord

# Recommendations that should reach a person rather than wait in a report.
ATTENTION = frozenset({"don't ship", "investigate"})


def _cell(text: object) -> str:
    """Markdown table cell text: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(c: ComparisonRecord) -> str:
    """The numbers the verdict read (CUPED-adjusted or always-valid when that was the basis)."""
    view = basis_view(c)
    p_value = view.p_value if view.p_value is not None else c.p_value
    cells = (
        c.label or c.metric,
        f"{c.treatment} vs {c.control}",
        fmt_lift(view.lift),
        f"{fmt_ci(view.ci)} ({view.ci_kind})",
        fmt_p(p_value),
        c.verdict,
        BASIS_TEXT.get(view.basis, view.basis),
    )
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def primary_comparisons(results: Results) -> list[ComparisonRecord]:
    """The comparisons of the experiment's primary metric (one per treatment arm)."""
    primary = results.experiment.metrics.primary
    return [c for c in results.comparisons if c.metric == primary]


def markdown_summary(results: Results | Mapping[str, Any], report_url: str | None = None) -> str:
    """Decision and reasons, primary metric (lift and CI), SRM and validation, in markdown."""
    r = as_results(results)
    decision, srm, validation = r.decision, r.srm, r.validation
    lines = [
        f"# {r.experiment.name or r.experiment_id}",
        "",
        f"Experiment `{r.experiment_id}`, run `{r.run_id}`, as of {r.analysis_date}.",
        "",
        f"## Decision: **{decision.recommendation}**",
        "",
        *(f"- {reason}" for reason in decision.reasons),
        "",
        "## Primary metric",
        "",
        "| metric | arms | lift | CI | p | verdict | basis |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.extend(_row(c) for c in primary_comparisons(r))
    flagged = "**flagged**" if srm.flagged else "not flagged"
    failed = validation.failed_expectations
    units = r.data.units
    lines += [
        "",
        "## Data",
        "",
        f"- Units: {', '.join(f'{arm} {fmt_count(n)}' for arm, n in units.items()) or '–'}",
        f"- Sample-ratio mismatch: {flagged} (p {fmt_p(srm.p_value)})",
        f"- Validation: {'passed' if validation.success else '**failed**'}"
        f" ({len(failed)} expectation(s) failed"
        f"{', '.join([''] + [str(f.expectation) for f in failed])})",
    ]
    if report_url:
        lines += ["", f"[Open the report]({report_url})"]
    return "\n".join(lines) + "\n"


def comparison_rows(results: Results | Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per comparison: JSON values only (numbers stay numbers)."""
    rows: list[dict[str, Any]] = []
    for c in as_results(results).comparisons:
        low, high = c.lift_ci or (None, None)
        rows.append(
            {
                "metric": c.metric,
                "role": c.role,
                "category": c.category,
                "control": c.control,
                "treatment": c.treatment,
                "n_control": c.n_control,
                "n_treatment": c.n_treatment,
                "mean_control": c.mean_control,
                "mean_treatment": c.mean_treatment,
                "lift": c.lift,
                "lift_ci_low": low,
                "lift_ci_high": high,
                "p_value": c.p_value,
                "p_value_adjusted": c.p_value_adjusted,
                "verdict": c.verdict,
                "verdict_basis": c.verdict_basis,
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
