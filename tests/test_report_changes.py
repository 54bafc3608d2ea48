"""What changed since the last run: :mod:`analysis.report.changes` and the report's section.

Runs are published for real (``publish_results``) into a temporary reports
directory; nothing of the file system is mocked.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from markupsafe import escape

from analysis.report import REPORT_PLOTLY_SRC, render_report
from analysis.report.changes import MAX_ROWS, changes_since, previous_results
from analysis.report.site import publish_results
from analysis.report.text import fmt_lift
from analysis.results import Results
from tests.report_fixtures import XSS, load

LOGGER = logging.getLogger("tests.report_changes")
ARROW = "\u2192"
EARLIER = "20261115T020000Z"
LATEST = "20261126T020000Z"  # the fixture's own run
LATER = "20261127T020000Z"


def _smart() -> Results:
    return Results.model_validate(load("smart_compose"))


def _changed(results: Results, metric: str, **fields: Any) -> Results:
    """``results`` with comparison ``metric`` changed: ``verdict``, ``lift`` (the one the
    verdict reads, CUPED's too), ``ci`` (the always-valid interval it reads), ``label``."""
    comparisons = []
    for c in results.comparisons:
        if c.metric == metric:
            update: dict[str, Any] = {}
            if "verdict" in fields:
                update["verdict"] = fields["verdict"]
            if "label" in fields:
                update["label"] = fields["label"]
            if "lift" in fields:
                update["lift"] = fields["lift"]
                update["cuped"] = c.cuped.model_copy(update={"lift": fields["lift"]})
            if "ci" in fields:
                update["sequential"] = c.sequential.model_copy(update={"lift_ci": fields["ci"]})
            comparisons.append(c.model_copy(update=update))
        else:
            comparisons.append(c)
    return results.model_copy(update={"comparisons": tuple(comparisons)})


def _run(results: Results, run_id: str, day: str, **fields: Any) -> Results:
    return results.model_copy(
        update={"run_id": run_id, "analysis_date": day, "generated_at": f"{day}T02:00:00+00:00"}
        | fields
    )


def _earlier() -> Results:
    """The fixture two weeks earlier: time on task still inconclusive, at -12.0%."""
    smart = _changed(_smart(), "time_on_task", verdict="inconclusive", lift=-0.12, ci=(-0.25, 0.01))
    return _run(smart, EARLIER, "2026-11-14")


def _section(page: str) -> str | None:
    found = re.search(r'<section id="changes".*?</section>', page, re.S)
    return found.group(0) if found else None


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


# --------------------------------------------------------------------------- changes_since


def test_a_changed_verdict_and_lift_are_listed_first_in_words() -> None:
    changes = changes_since(_earlier(), _smart())
    assert changes.previous_run_id == EARLIER
    assert changes.previous_analysis_date == "2026-11-14"
    assert changes.recommendation is None
    assert changes.moved
    first = changes.rows[0]
    assert first.kind == "verdict"
    new_lift = fmt_lift(-0.150776)
    assert first.text == (
        f"Time on task (s), ai vs control: inconclusive {ARROW} better; "
        f"lift {fmt_lift(-0.12)} {ARROW} {new_lift}; interval now excludes 0"
    )
    assert "\u221212.0%" in first.text  # the report's own number format (a typographic minus)
    assert [r.kind for r in changes.rows] == ["verdict"]  # nothing else moved


def test_the_recommendation_and_a_lift_that_moved_without_a_verdict() -> None:
    before = _changed(_earlier(), "trust_score", lift=-0.01)
    before = before.model_copy(
        update={"decision": before.decision.model_copy(update={"recommendation": "keep running"})}
    )
    changes = changes_since(before, _smart())
    assert changes.recommendation == ("keep running", "ship")
    assert [r.kind for r in changes.rows] == ["verdict", "lift"]
    assert changes.rows[1].text == (
        f"Trust score (1-7), ai vs control: lift {fmt_lift(-0.01)} {ARROW} {fmt_lift(-0.0227764)}"
    )
    assert changes.lines[0] == f"Recommendation: keep running {ARROW} ship"


def test_small_moves_and_identical_runs_are_nothing() -> None:
    smart = _smart()
    nudged = _changed(smart, "trust_score", lift=-0.0227764 * 1.05)  # 5% of itself
    assert not changes_since(nudged, smart).moved
    changes = changes_since(_run(smart, EARLIER, "2026-11-14"), smart)
    assert not changes.moved
    assert changes.rows == ()
    assert changes.lines == ("Nothing moved",)


def test_an_interval_that_now_includes_0_is_said() -> None:
    smart = _smart()
    later = _changed(smart, "retries_per_task", ci=(-0.001, 0.2))
    (row,) = changes_since(smart, later).rows
    assert row.kind == "lift"
    assert row.detail.endswith("interval now includes 0")


def test_added_and_removed_comparisons() -> None:
    smart = _smart()
    fewer = smart.model_copy(update={"comparisons": smart.comparisons[1:]})
    added = changes_since(fewer, smart).rows
    assert [(r.kind, r.subject) for r in added] == [("added", "New comparisons")]
    assert added[0].detail == "Task completion rate, ai vs control (better)"
    removed = changes_since(smart, fewer).rows
    assert [(r.kind, r.subject) for r in removed] == [("removed", "No longer compared")]


def test_at_most_max_rows_verdict_changes_first() -> None:
    smart = _smart()
    flipped = smart
    for c in smart.comparisons:
        verdict = "better" if c.verdict == "inconclusive" else "inconclusive"
        flipped = _changed(flipped, c.metric, verdict=verdict)
    flipped = _changed(flipped, "trust_score", verdict="worse", lift=-0.2)  # a move only
    changes = changes_since(smart, flipped)
    assert len(smart.comparisons) == MAX_ROWS + 1
    assert len(changes.rows) == MAX_ROWS
    assert changes.more == 1
    assert [r.kind for r in changes.rows] == ["verdict"] * MAX_ROWS  # the move is left off
    assert changes.lines[-1] == f"and {changes.more} more"


# --------------------------------------------------------------------------- previous_results


def test_previous_results_skips_later_unreadable_other_schema_and_replaced(
    tmp_path: Path,
) -> None:
    out = tmp_path / "reports"
    publish_results(out, _earlier(), {}, LOGGER)
    publish_results(out, _run(_smart(), LATER, "2026-11-26"), {}, LOGGER)
    experiment = out / "smart-compose"
    for name, text in (
        ("20261120T020000Z", "{not json"),
        ("20261121T020000Z", '{"schema_version": 2, "analysis_date": "2026-11-20"}'),
        ("20261122T020000Z", '{"schema_version": 1, "analysis_date": "2026-11-21"}'),
        (".tmp-20261123T020000Z-x", _smart().to_json()),
    ):
        (experiment / name).mkdir()
        (experiment / name / "results.json").write_text(text, encoding="utf-8")
    smart = _smart()
    args = (out, "smart-compose", LATEST, smart.analysis_date, smart.generated_at)
    previous = previous_results(*args)
    assert previous is not None
    assert previous.run_id == EARLIER
    # the run being replaced is never its own previous run
    later = previous_results(out, "smart-compose", LATER, "2026-11-26", "2026-11-26T02:00:00Z")
    assert later is not None
    assert later.run_id == EARLIER
    assert previous_results(out, "smart-compose", EARLIER, "2026-11-14", None) is None
    assert previous_results(out, "no-such-experiment", LATEST, "2026-11-25", None) is None


# --------------------------------------------------------------------------- published


def _page(run_dir: Path) -> str:
    return (run_dir / "report.html").read_text(encoding="utf-8")


def test_published_reports_say_what_moved_since_the_run_before(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    first = publish_results(out, _earlier(), {}, LOGGER)
    assert _section(_page(first)) is None
    assert "Since the last run" not in _page(first)

    second = publish_results(out, _smart(), {}, LOGGER)
    section = _section(_page(second))
    assert section is not None
    text = _text(section)
    assert f"Since the last run (run {EARLIER}, as of 2026-11-14)" in text
    assert f"Time on task (s), ai vs control: inconclusive {ARROW} better" in text
    assert "Nothing moved" not in text

    third = publish_results(out, _run(_smart(), LATER, "2026-11-26"), {}, LOGGER)
    text = _text(_section(_page(third)) or "")
    assert f"(run {LATEST}, as of 2026-11-25)" in text
    assert "Nothing moved" in text

    # the second run published again (same id): compared with the first, not with itself
    again = _changed(_smart(), "trust_score", verdict="inconclusive")
    republished = publish_results(out, again, {}, LOGGER)
    assert republished == second
    text = _text(_section(_page(republished)) or "")
    assert f"(run {EARLIER}, as of 2026-11-14)" in text
    assert f"Trust score (1-7), ai vs control: worse {ARROW} inconclusive" in text
    assert f"Time on task (s), ai vs control: inconclusive {ARROW} better" in text


def test_the_section_escapes_names_from_config() -> None:
    before = _earlier()
    after = _changed(_smart(), "time_on_task", label=f"Time {XSS}")
    page = render_report(after, REPORT_PLOTLY_SRC, changes=changes_since(before, after))
    section = _section(page)
    assert section is not None
    assert XSS not in page
    assert str(escape(f"Time {XSS}, ai vs control")) in section
