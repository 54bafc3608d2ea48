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

from analysis.report.summary import markdown_summary
from tests import report_fixtures

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
