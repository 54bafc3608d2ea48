"""The demo shows a healthy experiment next to one with data problems (issue 16, item 4)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
from typer.testing import CliRunner

from analysis.config import load_config
from analysis.devtools.simulate import simulate
from analysis.quarantine import collect_tables
from analysis.validation.experiment import check_experiment
from flows.cli import app

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "configs")
AS_OF = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 21, 6, tzinfo=dt.UTC)


def _check(experiment_id: str, clean: set[str]) -> dict[str, object]:
    experiment = CONFIG.experiment(experiment_id)
    data = simulate(list(CONFIG.experiments.values()), 1_500, AS_OF, 3, clean=clean)
    assignments = data.assignments.filter(pl.col("experiment_id") == experiment_id)
    events = data.events.filter(pl.col("unit_id").is_in(assignments.get_column("unit_id")))
    raw = collect_tables({"assignments": assignments, "events": events})  # as a run reads
    return check_experiment(raw, experiment, AS_OF, now=NOW).report.summary()


def test_a_clean_experiment_passes_every_check_and_the_other_keeps_its_defects() -> None:
    clean = _check("smart-compose", {"smart-compose"})
    assert clean["success"] is True
    assert clean["failed"] == 0
    assert not any(clean["quarantine"].values())  # type: ignore[attr-defined]
    dirty = _check("auto-triage", {"smart-compose"})
    failed = {f["reason"] for f in dirty["failed_expectations"]}  # type: ignore[attr-defined]
    assert {"duplicate_event_id", "crossover"} <= failed
    assert dirty["success"] is True  # warnings only


def test_simulate_clean_option_checks_its_ids(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["simulate", "--units", "50", "--as-of", AS_OF.isoformat(), "--out",
            str(tmp_path / "w.duckdb"), "--config-dir", str(ROOT / "configs")]  # fmt: skip
    bad = runner.invoke(app, [*args, "--clean", "no-such-experiment"])
    assert bad.exit_code == 2
    assert "no-such-experiment" in bad.output
    assert not (tmp_path / "w.duckdb").exists()
    good = runner.invoke(app, [*args, "--clean", "smart-compose"])
    assert good.exit_code == 0, good.output
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        (copies,) = con.execute(
            "SELECT count(*) - count(DISTINCT event_id) FROM events WHERE unit_id IN "
            "(SELECT unit_id FROM assignments WHERE experiment_id = 'smart-compose')"
        ).fetchall()[0:1][0]
    assert copies == 0  # no duplicate event ids in the clean experiment
