"""`proof check`: the config against the data it names, before a run (issue 16, item 12)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from analysis.config import load_config
from analysis.progress import PROGRESS_ENV
from flows.cli import app

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-20"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("check")
    shutil.copytree(ROOT / "configs", root / "configs")
    data = root / "w.duckdb"
    args = ["simulate", "--units", "300", "--as-of", AS_OF, "--out", str(data),
            "--config-dir", str(root / "configs")]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    (root / "configs" / "sources.yaml").write_text(
        f"sources:\n  warehouse:\n    kind: duckdb\n    path: {data}\n"
    )
    experiment = root / "configs" / "experiments" / "smart-compose.yaml"
    text = experiment.read_text()
    assert "\nsegments:" in text
    experiment.write_text(text.replace("\nsegments: [", "\nsegments: [no_such_column, "))
    return root / "configs"


def test_check_names_what_a_run_would_silently_miss(config_dir: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--as-of", AS_OF, "--config-dir", str(config_dir)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "segment 'no_such_column' is not a column of the assignments table" in out
    assert "guardrail ai_latency_p95 is AI-only" in out  # smart-compose: one AI arm
    assert "units assigned by 2026-11-20: ai " in out
    auto_triage = out.split("auto-triage")[1].split("smart-compose")[0]
    assert "warning" not in auto_triage  # two AI arms, its segments exist


def test_check_stops_on_what_would_stop_a_run(config_dir: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["check", "-e", "nope", "--config-dir", str(config_dir)])
    assert unknown.exit_code == 2
    assert "nope" in unknown.output
    early = runner.invoke(
        app, ["check", "-e", "smart-compose", "--as-of", "2026-01-01", "--config-dir",
              str(config_dir)],
    )  # fmt: skip
    assert early.exit_code == 2
    assert "before the experiment's start" in early.output


def _changed(config_dir: Path, tmp_path: Path, *sql: str) -> Path:
    """A copy of the config dir whose warehouse is a copy of the data, changed by ``sql``."""
    data = tmp_path / "w.duckdb"
    shutil.copy(config_dir.parent / "w.duckdb", data)
    with duckdb.connect(str(data)) as con:
        for statement in sql:
            con.execute(statement)
    changed = tmp_path / "configs"
    shutil.copytree(config_dir, changed)
    (changed / "sources.yaml").write_text(
        f"sources:\n  warehouse:\n    kind: duckdb\n    path: {data}\n"
    )
    return changed


def _check(config_dir: Path, experiment: str) -> tuple[int, str, str]:
    args = ["check", "-e", experiment, "--as-of", AS_OF, "--config-dir", str(config_dir)]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def test_check_names_an_event_that_never_occurs(config_dir: Path, tmp_path: Path) -> None:
    changed = _changed(config_dir, tmp_path, "DELETE FROM events WHERE event = 'trust_survey'")
    code, out, err = _check(changed, "smart-compose")
    assert code == 0, out + err  # a warning: the run goes on, without that metric
    assert (
        "  warning: no event 'trust_survey' among the experiment's events: "
        "trust_score will have no data\n"
    ) in out
    assert out.count("no event ") == 1  # every other event of its metrics is there


def test_check_names_an_arm_with_no_unit(config_dir: Path, tmp_path: Path) -> None:
    changed = _changed(
        config_dir, tmp_path,
        "DELETE FROM assignments WHERE experiment_id = 'auto-triage' AND variant = 'ai_v2'",
    )  # fmt: skip
    code, out, err = _check(changed, "auto-triage")
    assert code == 0, out + err
    assert "  warning: arm 'ai_v2' has no assigned unit in the data\n" in out
    [units] = [line for line in out.splitlines() if "units assigned by" in line]
    assert "ai_v2" not in units
    assert "control " in units


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("DROP TABLE events", "table 'events' (the events table) does not exist"),
        ("ALTER TABLE events DROP COLUMN ts", "table 'events', column 'ts': expected Datetime"),
        ("ALTER TABLE assignments RENAME COLUMN variant TO arm",
         "table 'assignments', column 'variant': expected String, found no such column"),
    ],
)  # fmt: skip
def test_check_stops_on_a_missing_table_or_column(
    config_dir: Path, tmp_path: Path, sql: str, said: str
) -> None:
    code, out, err = _check(_changed(config_dir, tmp_path, sql), "smart-compose")
    assert code == 2
    assert "Traceback" not in out + err
    [line] = err.splitlines()  # one clear line
    assert line.startswith("smart-compose: error: source 'warehouse'"), line
    assert said in line


def test_validate_prints_the_config_warnings(config_dir: Path, tmp_path: Path) -> None:
    args = ["validate", "-e", "smart-compose", "--as-of", AS_OF,
            "--config-dir", str(config_dir), "--out", str(tmp_path / "out")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    config = load_config(config_dir)
    warnings = config.warnings_of(config.experiment("smart-compose"))
    assert len(warnings) == 2  # ai_latency_p95 and cost_per_completed_task: one AI arm
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warned == [f"warning: {w}" for w in warnings]
    assert "guardrail ai_latency_p95 is AI-only" in warned[0]


@pytest.mark.usefixtures("prefect_server")
def test_a_run_says_which_segment_it_could_not_break_down(
    config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_flows import _run

    monkeypatch.delenv(PROGRESS_ENV, raising=False)  # `proof run`'s stderr is a pipe here

    ran = _run(
        "-e", "smart-compose", "--as-of", AS_OF, "--config-dir", str(config_dir),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert "segment 'no_such_column' is not a column of the assignments table" in ran.output
    assert "segment 'plan' is not" not in ran.output
    # not at a terminal: no progress lines on the console (Prefect's own lines stay)
    assert "checking the data" not in ran.output
    assert "done in" not in ran.output
    assert "Finished in state Completed" in ran.output
