"""Where it fails: which labels are broken down, and their shares and moves against truth.

The shares are ratio metrics measured by the engines (their parity is in the
DuckDB, PostgreSQL and Spark measurement tests, ``assert_measured_like``);
here: the choice of labels, the recovery of the shares the simulation planted,
the move it planted between the AI arms, and the Benjamini-Hochberg adjustment
against statsmodels.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import metrics as metrics_mod
from analysis.config.load import load_config
from analysis.devtools.simulate import (
    ERROR_TYPES,
    REJECT_REASONS,
    default_behaviours,
    simulate_experiment,
)
from analysis.engines.polars_failures import failure_data
from analysis.failure_patterns import failure_patterns
from analysis.failures import (
    MAX_DISTINCT,
    MAX_LABELS,
    FailureData,
    failure_metrics,
    top_labels,
)
from analysis.measurement import Window
from analysis.report.render import render_report
from analysis.results.failures import failure_patterns_record

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
AS_OF = dt.date(2026, 11, 20)


def test_the_most_frequent_labels_of_each_failure_event_in_a_fixed_order() -> None:
    counts = [
        ("ai_rejected", "b", 5), ("ai_rejected", "a", 5), ("ai_rejected", "c", 9),
        ("ai_error", "timeout", 3), ("ai_shown", "x", 100), ("ai_rejected", "", 50),
        ("ai_rejected", "x" * 201, 40),
    ]  # fmt: skip
    # by event, most frequent first, ties by text; no other event, no empty or overlong label
    assert top_labels(counts) == [
        ("ai_rejected", "c"), ("ai_rejected", "a"), ("ai_rejected", "b"), ("ai_error", "timeout")
    ]  # fmt: skip
    many = [("ai_rejected", f"l{i:02d}", 100 - i) for i in range(20)]
    assert top_labels(many) == [("ai_rejected", f"l{i:02d}") for i in range(MAX_LABELS)]
    # more distinct labels than a category has: an id or free text, none broken down
    ids = [("ai_rejected", f"id-{i}", 1) for i in range(MAX_DISTINCT + 1)]
    assert top_labels(ids) == []
    hostile = failure_metrics([("ai_rejected", "x'; DROP TABLE t; --")])
    assert hostile[0].metric.name == "failure_ai_rejected_0"  # the label is data, not a name
    assert hostile[0].metric.numerator is not None
    assert hostile[0].metric.numerator.label_equals == "x'; DROP TABLE t; --"


@pytest.fixture(scope="module")
def patterns():  # type: ignore[no-untyped-def]
    experiment = CONFIG.experiment("auto-triage")
    behaviours = default_behaviours(experiment)
    data = simulate_experiment(experiment, 3000, AS_OF, seed=23, behaviours=behaviours)
    window = Window(AS_OF, experiment.window_days, experiment.pre_window_days)
    units = metrics_mod.clean_assignments(data.assignments.lazy(), window).collect().lazy()
    events = data.events.lazy().unique(subset="event_id", keep="any")
    in_window = metrics_mod.in_window_events(units, events, window, deduplicate=False)
    found = failure_patterns(experiment, failure_data(units, events, window, in_window))
    assert found is not None
    return experiment, behaviours, found


def test_each_share_covers_the_share_the_simulation_planted(patterns) -> None:  # type: ignore[no-untyped-def]
    """Every (label, AI arm) share of the rejections (reasons) and of the errors (types)
    against the planted share, within its 99.9 % interval (fourteen intervals: at 95 %
    one would miss half the time); the reported interval is the 95 % one around it."""
    experiment, behaviours, found = patterns
    assert {(s.failure.event, s.failure.label) for s in found.shares} == {
        *(("ai_rejected", r) for r in REJECT_REASONS),
        *(("ai_error", t) for t in ERROR_TYPES),
    }
    assert {s.arm for s in found.shares} == set(experiment.ai_variants())
    z = stats.norm.ppf(1 - 0.001 / 2)
    for s in found.shares:
        b = behaviours[s.arm]
        planted = dict(zip(REJECT_REASONS, b.reject_reasons, strict=True)) | dict(
            zip(ERROR_TYPES, b.error_types, strict=True)
        )
        se = math.sqrt(s.estimate.variance)
        assert abs(s.estimate.value - planted[s.failure.label]) <= z * se, (s.failure.label, s.arm)
        assert s.ci is not None
        assert s.ci[1] - s.ci[0] == pytest.approx(2 * stats.norm.ppf(0.975) * se)


def test_the_planted_moves_are_found_and_the_p_values_are_adjusted_together(patterns) -> None:  # type: ignore[no-untyped-def]
    """Each move (ai_v2 against ai) against the planted difference, within its 99.9 %
    interval; the two largest planted ones (half the hallucinations, 0.15 against 0.30;
    more timeouts among the errors, 0.7 against 0.5) significant after BH; the largest
    observed move first."""
    _, behaviours, found = patterns

    def planted(arm: str) -> dict[str, float]:
        b = behaviours[arm]
        return dict(zip(REJECT_REASONS, b.reject_reasons, strict=True)) | dict(
            zip(ERROR_TYPES, b.error_types, strict=True)
        )

    z = stats.norm.ppf(1 - 0.001 / 2)
    for move in found.moves:
        assert (move.control, move.treatment) == ("ai", "ai_v2")
        label = move.failure.label
        truth = planted("ai_v2")[label] - planted("ai")[label]
        se = math.sqrt(move.result.control.variance + move.result.treatment.variance)
        assert move.result.diff is not None
        assert abs(move.result.diff - truth) <= z * se, (label, move.result.diff, truth)
    by_label = {m.failure.label: m for m in found.moves}
    for label, sign in (("hallucination", -1), ("timeout", 1)):
        move = by_label[label]
        assert move.result.diff_ci is not None
        assert min(sign * move.result.diff_ci[0], sign * move.result.diff_ci[1]) > 0
        assert move.p_adjusted is not None
        assert move.p_adjusted < 0.001
    diffs = [abs(m.result.diff or 0.0) for m in found.moves]
    assert diffs == sorted(diffs, reverse=True)
    raw = [m.result.p_value for m in found.moves]
    assert all(p is not None for p in raw)
    want = multipletests(raw, method="fdr_bh")[1]
    assert [m.p_adjusted for m in found.moves] == pytest.approx(list(want), rel=1e-12)


def test_the_section_shows_labels_as_text(patterns) -> None:  # type: ignore[no-untyped-def]
    """A label from the data is text on the page, never markup (the report fixtures poison
    every label of the section too, and the browser tests render them)."""
    from tests.report_fixtures import load

    _, _, found = patterns
    record = failure_patterns_record(found).model_dump(mode="json")
    hostile = '<img src=x onerror="window.__xss=true">'
    record["shares"][0]["label"] = hostile
    results = load("auto_triage") | {"failure_patterns": record}
    html = render_report(results, "../../assets/plotly.min.js")
    assert hostile not in html
    assert "&lt;img src=x onerror=" in html
    assert 'id="failure-shares"' in html
    assert 'id="failure-moves"' in html


def test_too_many_labels_say_so_and_no_labels_leave_the_section_out() -> None:
    from tests.report_fixtures import load

    experiment = CONFIG.experiment("auto-triage")
    assert failure_patterns(experiment, FailureData()) is None
    found = failure_patterns(experiment, FailureData(distinct=MAX_DISTINCT + 1))
    assert found is not None
    assert found.shares == ()
    assert found.moves == ()
    record = failure_patterns_record(found).model_dump(mode="json")
    html = render_report(load("auto_triage") | {"failure_patterns": record}, "a/plotly.min.js")
    assert "more than 200 distinct labels" in html
    assert 'id="failure-shares"' not in html
    results = load("auto_triage")
    results.pop("failure_patterns")
    assert "to see where the AI fails" in render_report(results, "a/plotly.min.js")
