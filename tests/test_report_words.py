"""The report in words people use: data checks in plain words, and why an inconclusive
verdict sits beside an interval that excludes 0.

Issue "As people meet it": a health banner that says
``expect_compound_columns_to_be_unique`` tells a reader nothing, and a guardrail whose
interval excludes 0 but reads "inconclusive" looks like a bug unless the report says why.
"""

from __future__ import annotations

import copy
import datetime as dt
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from analysis.config.load import load_config
from analysis.partitions.batches import BatchOutcome
from analysis.report import REPORT_PLOTLY_SRC, render_report, render_run_files, render_validation
from analysis.report.formatting import why_inconclusive
from analysis.report.health import check_words
from analysis.suites.load import DEFAULT_SUITE_DIR, load_suite
from analysis.suites.params import run_params
from analysis.validation.tables import expectation_outcome
from tests import report_fixtures as fixtures

Results = dict[str, Any]
CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
AS_OF = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 26, 2, tzinfo=dt.UTC)
TABLES = ("assignments", "events", "unit_metrics")


def _e(text: str) -> str:
    """``text`` as the report writes it: escaped by jinja's autoescape."""
    return str(escape(text))


# --------------------------------------------------------------------------- data checks


def _records(experiment_id: str, table: str) -> list[dict[str, Any]]:
    """Every expectation of a shipped suite, as the pipeline records it in results.json."""
    experiment = CONFIG.experiment(experiment_id)
    params = run_params(
        experiment, AS_OF, NOW, metrics=CONFIG.metrics_of(experiment), assigned_units=10
    )
    suite = load_suite(table, params)
    return [
        {**expectation_outcome(e, BatchOutcome(e.key, success=True)).record(), "success": True}
        for e in suite.expectations
    ]


@pytest.mark.parametrize("experiment_id", sorted(CONFIG.experiments))
@pytest.mark.parametrize("table", TABLES)
def test_every_shipped_expectation_has_plain_words(experiment_id: str, table: str) -> None:
    records = _records(experiment_id, table)
    raw = json.loads((DEFAULT_SUITE_DIR / f"{table}.json").read_text(encoding="utf-8"))
    assert {r["expectation"] for r in records} == {t["type"] for t in raw["expectations"]}
    said: dict[str, dict[str, Any]] = {}
    for record in records:
        words = check_words(record)
        assert words, record
        assert words != record["expectation"]
        assert "expect_" not in words, words
        # Two different checks of a table never read the same.
        assert words not in said, (record, said.get(words))
        said[words] = record


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (
            {"table": "assignments", "expectation": "expect_compound_columns_to_be_unique",
             "column": "experiment_id,unit_id", "reason": "crossover"},
            "each unit is in one arm only",
        ),
        (
            {"table": "events", "expectation": "expect_column_values_to_not_be_null",
             "column": "unit_id", "reason": "null_unit_id"},
            "every event has a unit",
        ),
        (  # an older record, without the rule's reason
            {"table": "events", "expectation": "expect_column_values_to_not_be_null",
             "column": "unit_id"},
            "every event has a unit",
        ),
        (
            {"table": "events", "expectation": "expect_column_values_to_be_between",
             "column": "value", "condition": 'event=="ai_latency"', "reason": "value_out_of_range"},
            "every ai_latency event has a value in its allowed range",
        ),
        (  # bounds, when a record carries them
            {"table": "events", "expectation": "expect_column_values_to_be_between",
             "column": "value", "condition": 'event=="ai_latency"', "reason": "value_out_of_range",
             "min_value": 0, "max_value": 600000},
            "every ai_latency event has a value between 0 and 600,000",
        ),
        (
            {"table": "assignments", "expectation": "expect_column_values_to_be_in_set",
             "column": "variant", "reason": "unknown_variant"},
            "every unit is assigned to an arm the experiment defines",
        ),
    ],
)  # fmt: skip
def test_check_words_say_what_the_check_means(record: dict[str, Any], words: str) -> None:
    assert check_words(record) == words


def test_check_words_of_an_unknown_check_is_none() -> None:
    assert check_words({"table": "events", "expectation": "expect_something_new"}) is None


FAILED = [
    {
        "table": "assignments",
        "expectation": "expect_compound_columns_to_be_unique",
        "column": "experiment_id,unit_id",
        "severity": "critical",
        "unexpected_count": 80,
        "examples": ["unit_id=u619, experiment_id=auto-triage"],
        "reason": "crossover",
        "condition": None,
        "explain": "a unit with rows in two variants is a crossover (every row quarantined)",
    },
    {
        "table": "events",
        "expectation": "expect_column_values_to_not_be_null",
        "column": "unit_id",
        "severity": "warning",
        "unexpected_count": 57,
        "examples": ["event_id=e-1093 unit_id=None"],
        "reason": "null_unit_id",
        "condition": None,
        "explain": None,
    },
    {
        "table": "events",
        "expectation": "expect_column_values_to_be_between",
        "column": "value",
        "severity": "warning",
        "unexpected_count": 3,
        "examples": ["value=-4.0"],
        "reason": "value_out_of_range",
        "condition": 'event=="ai_latency"',
        "explain": None,
    },
]
WORDS = [
    "each unit is in one arm only",
    "every event has a unit",
    "every ai_latency event has a value in its allowed range",
]


def _failing() -> Results:
    results = fixtures.load("auto_triage")
    results["validation"].update(
        success=False,
        page="validation.html",
        failed_expectations=copy.deepcopy(FAILED),
        expectations=[{**f, "success": False} for f in FAILED]
        + [
            {
                "table": "events",
                "expectation": "expect_column_values_to_be_unique",
                "column": "event_id",
                "severity": "warning",
                "unexpected_count": 0,
                "reason": "duplicate_event_id",
                "success": True,
            }
        ],
    )
    return results


def test_health_banner_shows_plain_words_with_the_gx_name_beside() -> None:
    page = render_run_files(_failing(), REPORT_PLOTLY_SRC)["report.html"]
    banner = page[page.index('id="banner-validation"') :]
    banner = banner[: banner.index("</section>")]
    for words, failed in zip(WORDS, FAILED, strict=True):
        assert _e(words) in banner
        assert failed["expectation"] in banner  # still there, in the small print
        assert banner.index(_e(words)) < banner.index(failed["expectation"])
    # The data section lists the failures in the same words.
    data = page[page.index('id="data"') :]
    for words in WORDS:
        assert _e(words) in data


def test_validation_page_shows_plain_words_with_the_gx_name_beside() -> None:
    page = render_validation(_failing())
    failed = page[page.index('id="failed"') : page.index('id="all"')]
    every = page[page.index('id="all"') : page.index('id="rows"')]
    for words, record in zip(WORDS, FAILED, strict=True):
        assert _e(words) in failed
        assert _e(words) in every
        assert record["expectation"] in failed
    assert _e("each event is recorded once (no repeated event id)") in every
    assert _e("a unit with rows in two variants is a crossover") in failed  # the meta's explain


def test_plain_words_of_data_checks_are_escaped() -> None:
    results = fixtures.poison(_failing())
    page = render_run_files(results, REPORT_PLOTLY_SRC)
    for text in page.values():
        assert "<script>alert" not in text


# --------------------------------------------------------------------------- inconclusive


def _secondary_count(results: Results) -> int:
    return sum(c["role"] == "secondary" for c in results["comparisons"])


#: A comparison significant before the multiplicity adjustment and not after.
ADJUSTED_AWAY: dict[str, Any] = {
    "verdict": "inconclusive",
    "verdict_basis": "fixed_horizon",
    "p_value": 0.035,
    "p_value_adjusted": 0.069,
    "verdict_p_value_adjusted": 0.069,
    "lift": 0.021,
    "lift_ci": [0.0015, 0.0405],
    "verdict_lift_ci": [0.0016, 0.0409],
}
#: A comparison whose fixed-horizon interval excludes 0 and always-valid one does not.
SEQUENTIAL_WIDE: dict[str, Any] = {
    "verdict": "inconclusive",
    "verdict_basis": "sequential",
    "p_value": 0.012,
    "p_value_adjusted": 0.012,
    "verdict_p_value_adjusted": 0.21,
    "lift": 0.034,
    "lift_ci": [0.0075, 0.0605],
    "sequential": {"lift_ci": [-0.011, 0.079], "p_value": 0.21, "reason": None},
    "verdict_lift_ci": [-0.0108, 0.0801],
}


def _adjusted_away(results: Results) -> dict[str, Any]:
    """A secondary metric significant before the Holm adjustment and not after."""
    c = next(c for c in results["comparisons"] if c["role"] == "secondary")
    c.update(ADJUSTED_AWAY)
    return c


def _sequential_wide(results: Results) -> dict[str, Any]:
    """A guardrail whose fixed-horizon interval excludes 0 and always-valid one does not."""
    c = next(c for c in results["comparisons"] if c["role"] == "guardrail")
    c.update(SEQUENTIAL_WIDE, noninferiority=None)
    return c


def test_why_inconclusive_names_the_multiplicity_adjustment() -> None:
    results = fixtures.load("auto_triage")
    c = _adjusted_away(results)
    text = why_inconclusive(c, alpha=0.05, family_size=15)
    assert text is not None
    assert "significant before adjusting for 15 comparisons" in text
    assert "p = 0.035" in text
    assert "adjusted p = 0.069" in text
    assert "always-valid" not in text


def test_why_inconclusive_names_the_always_valid_basis() -> None:
    c = _sequential_wide(fixtures.load("auto_triage"))
    text = why_inconclusive(c, alpha=0.05)
    assert text is not None
    assert "the always-valid interval, which allows nightly looks, still includes 0" in text
    assert "[+0.8%, +6.0%]" in text  # the fixed-horizon interval that excludes 0
    assert "[\u22121.1%, +8.0%]" in text  # the interval the verdict reads
    assert "adjusting" not in text


def test_why_inconclusive_is_silent_when_nothing_needs_explaining() -> None:
    results = fixtures.load("auto_triage")
    c = _adjusted_away(results)
    assert why_inconclusive(dict(c, verdict="better"), alpha=0.05) is None
    plain = dict(c, lift_ci=[-0.01, 0.05], verdict_lift_ci=[-0.011, 0.052], p_value=0.3)
    assert why_inconclusive(plain, alpha=0.05) is None
    no_interval = dict(c, lift=None, lift_ci=None, verdict_lift_ci=None, sequential={}, cuped={})
    assert why_inconclusive(no_interval, alpha=0.05) is None


def test_why_inconclusive_without_a_family_size_still_says_it() -> None:
    c = _adjusted_away(fixtures.load("auto_triage"))
    text = why_inconclusive(c, alpha=0.05)
    assert text is not None
    assert "significant before adjusting for multiple comparisons" in text


def _row_of(page: str, label: str) -> str:
    """The scorecard row (``<tr>...</tr>``) of the metric labelled ``label``."""
    scorecard = page[page.index('id="scorecard"') : page.index('id="lift"')]
    start = scorecard.index(f'<span class="label">{_e(label)}</span>')
    return scorecard[scorecard.rindex("<tr>", 0, start) : scorecard.index("</tr>", start)]


def _titles(row: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'title="([^"]*)"', row)]


def test_report_says_why_a_metric_is_inconclusive_beside_its_verdict() -> None:
    results = fixtures.load("auto_triage")
    adjusted = _adjusted_away(results)
    wide = _sequential_wide(results)
    page = render_report(results, REPORT_PLOTLY_SRC)
    n = _secondary_count(results)

    row = _row_of(page, adjusted["label"])
    said = f"significant before adjusting for {n} comparisons"
    verdict_cell = row[row.index('data-label="Verdict"') :]
    assert _e(said) in verdict_cell  # beside the verdict
    assert _e(said) in row[row.index("<details") : row.index("</details>")]  # in the details
    assert any(said in t for t in _titles(verdict_cell))  # in the verdict's tooltip

    row = _row_of(page, wide["label"])
    said = "the always-valid interval, which allows nightly looks, still includes 0"
    verdict_cell = row[row.index('data-label="Verdict"') :]
    assert _e(said) in verdict_cell
    assert _e(said) in row[row.index("<details") : row.index("</details>")]
    assert any(said in t for t in _titles(verdict_cell))


def test_report_explains_real_inconclusive_results() -> None:
    """smart-compose's users_completing_a_task: fixed-horizon interval clear of 0,
    always-valid interval not (the engine's own numbers)."""
    results = fixtures.load("smart_compose")
    c = next(c for c in results["comparisons"] if c["metric"] == "users_completing_a_task")
    assert c["verdict"] == "inconclusive"
    assert c["lift_ci"][0] > 0 > c["sequential"]["lift_ci"][0]
    row = _row_of(render_report(results, REPORT_PLOTLY_SRC), c["label"])
    assert _e("the always-valid interval, which allows nightly looks, still includes 0") in row


def test_report_explains_nothing_for_clear_verdicts() -> None:
    results = fixtures.load("smart_compose")
    page = render_report(results, REPORT_PLOTLY_SRC)
    for c in results["comparisons"]:
        if c["verdict"] != "inconclusive":
            assert "Why inconclusive" not in _row_of(page, c["label"])


def test_headline_says_why_the_primary_metric_is_inconclusive() -> None:
    results = fixtures.load("smart_compose")
    primary = next(c for c in results["comparisons"] if c["role"] == "primary")
    primary.update(
        verdict="inconclusive",
        verdict_basis="sequential",
        lift_ci=[0.004, 0.03],
        sequential={"lift_ci": [-0.002, 0.036], "p_value": 0.09, "reason": None},
        verdict_p_value_adjusted=0.09,
        verdict_lift_ci=None,
    )
    page = render_report(results, REPORT_PLOTLY_SRC)
    start = page.index('id="verdict"')
    verdict = page[start : page.index("</section>", start)]
    assert _e("the always-valid interval, which allows nightly looks, still includes 0") in verdict
