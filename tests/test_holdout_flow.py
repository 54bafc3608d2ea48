"""A holdout through the flows: read weekly, its decay published, the banner drawn and
``proof.effect.decaying`` emitted; the nightly run reads each week once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate, write_duckdb
from analysis.results import Results
from flows import events
from tests.conftest import AS_OF, make_config_dir

HOLDOUT = "summaries-holdout"
SUNDAY_BEFORE = dt.date(2026, 11, 15)  # AS_OF is a Friday


@pytest.fixture(scope="module")
def holdout_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo holdout alone (its AI arm's help fades), simulated with 40,000 units."""
    tmp = tmp_path_factory.mktemp("holdout")
    config_dir = make_config_dir(tmp)
    for other in (config_dir / "experiments").glob("*.yaml"):
        if other.stem != HOLDOUT:
            other.unlink()
    config = load_config(config_dir)
    data = simulate([config.experiment(HOLDOUT)], 40_000, AS_OF, seed=2)
    write_duckdb(tmp / "data" / "warehouse.duckdb", data)
    return config_dir


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The events the flow emits (as the automations would receive them)."""
    found: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "emit_event", lambda name, **kw: found.append((name, kw)))
    return found


@pytest.mark.usefixtures("prefect_server")
def test_a_fading_holdout_publishes_its_decay_and_emits_the_event(
    holdout_dir: Path, tmp_path: Path, emitted: list[tuple[str, dict[str, Any]]]
) -> None:
    from flows.analyze import analyze_experiment

    out = tmp_path / "out"
    analyze_experiment(
        HOLDOUT, as_of=AS_OF, run_id="w1", config_dir=str(holdout_dir), out_dir=str(out)
    )
    run = out / HOLDOUT / "w1"
    results = Results.from_json((run / "results.json").read_text(encoding="utf-8"))
    assert results.analysis_date == SUNDAY_BEFORE.isoformat()  # weekly: whole weeks
    assert results.experiment.kind == "holdout"
    assert results.decay is not None
    assert results.decay.decaying
    fading = {(t.metric, t.control) for t in results.decay.trends if t.decaying}
    assert ("acceptance_rate", None) in fading
    [event] = [e for n, e in emitted if n == events.EFFECT_DECAYING]
    assert event["resource"]["prefect.resource.id"] == f"proof.experiment.{HOLDOUT}"
    payload = event["payload"]
    assert payload["run_id"] == "w1"
    assert payload["as_of"] == SUNDAY_BEFORE.isoformat()
    assert {(t["metric"], t["control"]) for t in payload["trends"]} == fading
    assert all(t["interval"][1] < 0 for t in payload["trends"])  # acceptance: goal increase
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="banner-decay"' in html
    assert 'id="decay-trends"' in html
    assert "The effect is fading" in html


@pytest.mark.usefixtures("prefect_server")
def test_the_nightly_run_reads_a_weekly_holdout_once_a_week(
    holdout_dir: Path, tmp_path: Path, emitted: list[tuple[str, dict[str, Any]]]
) -> None:
    from flows.analyze import nightly

    out = str(tmp_path / "out")
    first = nightly(as_of=AS_OF, config_dir=str(holdout_dir), out_dir=out, run_id="fri")
    again = nightly(
        as_of=AS_OF + dt.timedelta(days=1), config_dir=str(holdout_dir), out_dir=out, run_id="sat"
    )
    assert [s["experiment_id"] for s in first] == [HOLDOUT]
    assert again == []  # Saturday: the week through Sunday the 15th is already published
    decided = [e for n, e in emitted if n == events.DECISION_MADE]
    assert len(decided) == 1
