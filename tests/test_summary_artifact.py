"""The summary artifact fits the Prefect UI (issue 16, item 9).

The UI shows a markdown artifact in a pane about 880 px wide at a 1440 px
window (docs/img/ui-artifact-summary.png) and cuts a wider table off at the
right. The table of seven columns (metric, arms, lift, CI and its kind, p,
verdict, basis: ~125 characters of text) lost its basis column there, while
about 100 characters of text in seven columns fitted. The bound here, at most
five columns and 80 characters of text per row, keeps a margin for a
narrower window and a longer metric label.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from markupsafe import escape

from analysis.report import REPORT_PLOTLY_SRC, render_report
from analysis.report.summary import comparison_notes, comparison_rows, markdown_summary
from analysis.results import Results
from tests import report_fixtures
from tests.test_report_words import ADJUSTED_AWAY, SEQUENTIAL_WIDE

MAX_COLUMNS = 5
MAX_TEXT = 80  # visible characters of a row's cells, together


def _table_rows(markdown: str) -> list[list[str]]:
    """Every row of the markdown's tables (the separator rows left out), as cell texts."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-", ":", " "}:
            continue
        cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
        rows.append([cell.strip().replace("\\|", "|") for cell in cells])
    return rows


@pytest.mark.parametrize(
    ("name", "estimate"),
    [("smart_compose", "+6.9% [+6.3%, +7.5%]"), ("auto_triage", "+7.3% [+6.4%, +8.2%]")],
)
def test_the_primary_metric_table_fits_the_prefect_ui(name: str, estimate: str) -> None:
    text = markdown_summary(report_fixtures.load(name), "file:///r/report.html")
    rows = _table_rows(text)
    assert len(rows) >= 2  # the header and a row per treatment arm
    assert rows[0] == ["metric", "arms", "lift [95% CI]", "p", "verdict"]
    for row in rows:
        assert len(row) <= MAX_COLUMNS, row
        assert sum(len(cell) for cell in row) <= MAX_TEXT, row
    # what the merged and dropped columns said is still there: the interval and the basis
    assert rows[1][:3] == ["Task completion rate", "ai vs control", estimate]
    assert "Basis of the verdict: always-valid (sequential) test on CUPED-adjusted values" in text


def test_the_basis_is_named_per_pair_of_arms_when_they_differ() -> None:
    results: dict[str, Any] = report_fixtures.load("auto_triage")
    primary = results["experiment"]["metrics"]["primary"]
    first = next(c for c in results["comparisons"] if c["metric"] == primary)
    first["verdict_basis"] = "fixed_horizon"
    text = markdown_summary(results)
    assert (
        "Basis of the verdict: ai vs control: fixed-horizon test; "
        "ai_v2 vs control: always-valid (sequential) test on CUPED-adjusted values"
    ) in text
    assert all(len(row) <= MAX_COLUMNS for row in _table_rows(text))


# ------------------------------------------------- why inconclusive (issue 16, item 3)

SAYS_WHY = "inconclusive \u00b9", "inconclusive \u00b2"  # a verdict with the number of its note


def _said_by_the_report(results: dict[str, Any], note: str) -> bool:
    """Whether the report's scorecard says the note's reason in the same words."""
    why = note.split("): ", 1)[1].removesuffix(".")
    page = render_report(results, REPORT_PLOTLY_SRC)
    return str(escape(f"Why inconclusive: {why}.")) in page


def test_the_summary_says_why_a_primary_verdict_is_inconclusive() -> None:
    results: dict[str, Any] = report_fixtures.load("auto_triage")
    ai, ai_v2 = (c for c in results["comparisons"] if c["role"] == "primary")
    # significant before the adjustment over the two primary comparisons, not after
    ai.update(ADJUSTED_AWAY)
    # the fixed-horizon interval excludes 0, the always-valid one the verdict reads does not
    ai_v2.update(SEQUENTIAL_WIDE)
    text = markdown_summary(results, "file:///r/report.html")
    rows = _table_rows(text)
    assert rows[0] == ["metric", "arms", "lift [95% CI]", "p", "verdict"]
    assert [row[4] for row in rows[1:]] == list(SAYS_WHY)
    for row in rows:
        assert len(row) <= MAX_COLUMNS, row
        assert sum(len(cell) for cell in row) <= MAX_TEXT, row
    notes = [line for line in text.splitlines() if "Why inconclusive" in line]
    assert notes == [
        "\u00b9 Why inconclusive (Task completion rate, ai vs control): significant before "
        "adjusting for 2 comparisons (p = 0.035), not after (adjusted p = 0.069; alpha 0.05).",
        "\u00b2 Why inconclusive (Task completion rate, ai_v2 vs control): the fixed-horizon "
        "interval [+0.8%, +6.0%] excludes 0, but the always-valid interval, which allows "
        "nightly looks, still includes 0 ([\u22121.1%, +8.0%]).",
    ]
    assert text.index("| inconclusive \u00b2 |") < text.index(notes[0])  # under the table
    assert all(_said_by_the_report(results, note) for note in notes)


def test_the_summary_says_nothing_more_of_clear_verdicts() -> None:
    text = markdown_summary(report_fixtures.load("auto_triage"))
    assert "Why inconclusive" not in text
    assert [row[4] for row in _table_rows(text)[1:]] == ["better", "better"]


def test_the_comparisons_table_says_why_a_verdict_is_inconclusive() -> None:
    """auto-triage's own results: two inconclusive verdicts beside an interval clear of 0."""
    results = report_fixtures.load("auto_triage")
    rows = comparison_rows(results)
    marked = [(r["metric"], r["arms"], r["verdict"]) for r in rows if r["verdict"] in SAYS_WHY]
    assert marked == [
        ("Abandonment rate", "ai vs control", SAYS_WHY[0]),
        ("Retries per task", "ai_v2 vs control", SAYS_WHY[1]),
    ]
    assert all(r["verdict"] in {"better", "worse", *SAYS_WHY} for r in rows)
    notes = comparison_notes(results)
    assert len(notes) == 2
    assert notes[0].startswith("\u00b9 Why inconclusive (Abandonment rate, ai vs control): ")
    assert notes[1] == (
        "\u00b2 Why inconclusive (Retries per task, ai_v2 vs control): the fixed-horizon "
        "interval [+0.2%, +3.1%] excludes 0, but the always-valid interval, which allows "
        "nightly looks, still includes 0 ([\u22120.7%, +4.0%])."
    )
    assert all(_said_by_the_report(results, note) for note in notes)


def test_the_flow_shows_the_notes_with_the_comparisons_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows import analyze

    made: dict[str, dict[str, Any]] = {}

    def record(kind: str) -> Any:
        def create(data: Any, **kwargs: Any) -> None:
            made[kind] = {"data": data, **kwargs}

        return create

    for kind in ("link", "markdown", "table"):
        monkeypatch.setattr(analyze, f"create_{kind}_artifact", record(kind))
    results = report_fixtures.load("auto_triage")
    analyze.record_artifacts.fn(Results.model_validate(results), "file:///r/report.html")
    table = made["table"]
    assert table["data"] == comparison_rows(results)
    description = table["description"]
    assert description.startswith("Every comparison of auto-triage, run ")
    notes = description.split("\n\n")[1:]  # the marked verdicts' notes, each a paragraph
    assert len(notes) == 2
    assert notes == comparison_notes(results)
