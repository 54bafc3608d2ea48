"""The demo shows a healthy experiment next to one with data problems (issue 16, item 4)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from analysis.config import load_config
from analysis.devtools.simulate import simulate
from analysis.devtools.simulate.writers import write_duckdb
from analysis.engines import RunOptions, engine_for
from analysis.pipeline import summarise
from analysis.quarantine import collect_tables
from analysis.report.health import health_problems
from analysis.report.site import publish_results
from analysis.validation.experiment import check_experiment
from flows.cli import DEMO_SEED, DEMO_UNITS, app, demo_clean
from tests.conftest import make_config_dir

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


@pytest.mark.parametrize("as_of", [AS_OF, None], ids=["mid-run", "planned-end"])
def test_the_demos_clean_experiment_gets_a_report_with_no_warning(
    tmp_path: Path, as_of: dt.date | None
) -> None:
    """`proof demo`'s clean experiment, run as a run does, on the demo's data: no banner.

    The demo's own units and seed; the data through a day mid-run, and through the
    planned end (the report the demo shows once the experiment has ended).
    """
    config_dir = make_config_dir(tmp_path)  # the `warehouse` DuckDB under tmp_path
    config = load_config(config_dir)
    assert demo_clean(config.experiments) == ["smart-compose", "summaries-holdout"]
    experiment = config.experiment("smart-compose")
    day = experiment.data_through(as_of or experiment.end or AS_OF)
    data = simulate([experiment], DEMO_UNITS, day, DEMO_SEED, clean={experiment.id})
    write_duckdb(tmp_path / "data" / "warehouse.duckdb", data)
    engine = engine_for(experiment.source, config.sources[experiment.source], RunOptions())
    checked = engine.check(experiment, day)
    metrics = config.metrics_of(experiment)
    measured = engine.measure(checked, experiment, metrics, day)
    assert measured.unit_validation is not None
    validation = checked.report.merge(measured.unit_validation).summary()
    now = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), dt.UTC)
    results = summarise(
        experiment, metrics, measured, validation, "demo", day, now, checked.rows_quarantined
    )
    run_dir = publish_results(
        tmp_path / "reports", results, checked.quarantined, logging.getLogger(__name__)
    )

    published = json.loads((run_dir / "results.json").read_text())
    checks = published["validation"]
    assert checks["success"] is True
    assert [f for f in checks["failed_expectations"] if f["severity"] == "warning"] == []
    assert checks["failed_expectations"] == []
    assert published["data"]["quarantined_rows"] == 0
    assert health_problems(published) == []  # the index's list of problems
    report = (run_dir / "report.html").read_text()
    assert 'class="alert-hint"' not in report  # no "N health warnings below"
    assert 'role="alert"' not in report  # no banner
    assert 'class="ok-line"' in report  # the green line of the checks that passed
    assert f"all {checks['expectations_evaluated']:,} data checks passed" in report
