"""`proof check`: the config against the data it names, before a run (issue 16, item 12)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

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


@pytest.mark.usefixtures("prefect_server")
def test_a_run_says_which_segment_it_could_not_break_down(config_dir: Path, tmp_path: Path) -> None:
    from tests.test_flows import _run

    ran = _run(
        "-e", "smart-compose", "--as-of", AS_OF, "--config-dir", str(config_dir),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert "segment 'no_such_column' is not a column of the assignments table" in ran.output
    assert "segment 'plan' is not" not in ran.output
