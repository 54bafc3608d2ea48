"""Short summaries of a run, drawn from its results only, for the orchestrator's UI.

The Prefect flows show these as artifacts (a markdown summary and a table of
the comparisons) and put the decision in events. Like the report, they format
the results and never recompute a statistic; an "inconclusive" verdict beside
an interval that excludes 0 is marked, and a note says why in the report's
words (:func:`~analysis.report.sections_comparisons.inconclusive_reasons`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.report.formatting import BASIS_TEXT, as_results, basis_view, ordered_comparisons
from analysis.report.sections_comparisons import inconclusive_reasons
from analysis.report.text import fmt_ci, fmt_count, fmt_lift, fmt_p
from analysis.results.model import Results, ValidationRecord
from analysis.results.records import ComparisonRecord

# Recommendations that should reach a person rather than wait in a report.
ATTENTION = frozenset({"don't ship", "investigate"})

_SUPERSCRIPT = str.maketrans(
    "0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


def _cell(text: object) -> str:
    """Markdown table cell text: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cells(c: ComparisonRecord, mark: str = "") -> dict[str, str]:
    """A comparison as the report's scorecard shows it: the numbers its verdict read
    (CUPED-adjusted or always-valid when that was the basis), formatted as there.

    ``mark`` follows the verdict: the number of the note that says why it is
    inconclusive (:func:`_noted`).
    """
    view = basis_view(c)
    verdict = c.verdict or "inconclusive"
    return {
        "metric": c.label or c.metric,
        "arms": f"{c.treatment} vs {c.control}",
        "lift": fmt_lift(view.lift),
        "interval": fmt_ci(view.ci),
        "p (adjusted)": fmt_p(view.p_value if view.p_value is not None else c.p_value),
        "verdict": f"{verdict} {mark}" if mark else verdict,
    }


def _noted(shown: Sequence[ComparisonRecord], r: Results) -> tuple[list[dict[str, str]], list[str]]:
    """The cells of ``shown``, and a note for each inconclusive verdict beside an
    interval that excludes 0, saying why; its verdict cell carries the note's number.
    """
    reasons = inconclusive_reasons(shown, r.comparisons, r.experiment.alpha)
    cells: list[dict[str, str]] = []
    notes: list[str] = []
    for c, why in zip(shown, reasons, strict=True):
        mark = ""
        if why is not None:
            mark = str(len(notes) + 1).translate(_SUPERSCRIPT)
            which = f"{c.label or c.metric}, {c.treatment} vs {c.control}"
            notes.append(f"{mark} Why inconclusive ({which}): {why}.")
        cells.append(_cells(c, mark))
    return cells, notes


def _row(cells: Mapping[str, str]) -> str:
    """A primary comparison in five short columns: metric, arms, lift [interval], p, verdict.

    The Prefect UI cuts a wide markdown table off at the right; the basis the
    verdict read, and why a verdict is inconclusive, go under the table instead
    (:func:`_basis_line`, :func:`_noted`).
    """
    estimate = f"{cells['lift']} {cells['interval']}"
    shown = (cells["metric"], cells["arms"], estimate, cells["p (adjusted)"], cells["verdict"])
    return "| " + " | ".join(_cell(x) for x in shown) + " |"


def _basis_line(comparisons: Sequence[ComparisonRecord]) -> str | None:
    """Which test the primary numbers come from, once (per pair of arms when they differ)."""
    bases = [(c, BASIS_TEXT.get(b, b)) for c in comparisons for b in [basis_view(c).basis]]
    if not bases:
        return None
    if len({text for _, text in bases}) == 1:
        read = bases[0][1]
    else:
        read = "; ".join(f"{c.treatment} vs {c.control}: {text}" for c, text in bases)
    return f"Basis of the verdict: {read}; p is adjusted for multiple comparisons."


def _confidence(alpha: float | None) -> str:
    return f"{(1 - alpha) * 100:.4g}% CI" if alpha is not None and 0 < alpha < 1 else "CI"


def _validation_line(validation: ValidationRecord) -> str:
    """The validation in words: "passed", "passed with 2 warnings (…)", "**failed**: …"."""
    failed = validation.failed_expectations
    critical = sum(1 for f in failed if f.severity == "critical")
    warned = len(failed) - critical
    warnings = f"{warned} warning{'' if warned == 1 else 's'}"
    names = f" ({', '.join(str(f.expectation) for f in failed)})" if failed else ""
    if not validation.success:
        counts = f"{critical} critical" + (f", {warnings}" if warned else "")
        return f"**failed**: {counts}{names}"
    return f"passed with {warnings}{names}" if failed else "passed"


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
        f"| metric | arms | lift [{_confidence(r.experiment.alpha)}] | p | verdict |",
        "|---|---|---|---|---|",
    ]
    primary = primary_comparisons(r)
    cells, notes = _noted(primary, r)
    lines.extend(_row(row) for row in cells)
    for note in notes:
        lines += ["", note]
    basis = _basis_line(primary)
    if basis:
        lines += ["", basis]
    flagged = "**flagged**" if srm.flagged else "not flagged"
    units = r.data.units
    lines += [
        "",
        "## Data",
        "",
        f"- Units: {', '.join(f'{arm} {fmt_count(n)}' for arm, n in units.items()) or '–'}",
        f"- Sample-ratio mismatch: {flagged} (p {fmt_p(srm.p_value)})",
        f"- Validation: {_validation_line(validation)}",
    ]
    if report_url:
        lines += ["", f"[Open the report]({report_url})"]
    return "\n".join(lines) + "\n"


def comparison_rows(results: Results | Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per comparison, in the report's order, formatted as its scorecard shows it.

    For the table artifact: the metric's display name, the arms, the lift and its
    interval as signed percentages, the adjusted p-value and the verdict. The
    numbers are those the verdict read (:func:`basis_view`), as in the report;
    the raw values stay in the published results.json. An inconclusive verdict
    beside an interval that excludes 0 carries the number of the note
    (:func:`comparison_notes`) that says why.
    """
    return _table(as_results(results))[0]


def comparison_notes(results: Results | Mapping[str, Any]) -> list[str]:
    """Why the verdicts marked in :func:`comparison_rows` are inconclusive, one note each."""
    return _table(as_results(results))[1]


def _table(r: Results) -> tuple[list[dict[str, str]], list[str]]:
    return _noted([c for _, group in ordered_comparisons(r.comparisons) for c in group], r)


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
