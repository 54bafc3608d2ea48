"""Expected stops print one clear line; tracebacks only behind `--debug`, or for bugs.

Every run is `proof ...` in a subprocess that talks to the session's test
server: Prefect writes its logs to the process's own stderr, which is what a
person at the terminal sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pytest

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate, write_parquet
from tests.conftest import AS_OF, make_config_dir

pytestmark = pytest.mark.usefixtures("prefect_server")

EXPERIMENT = "smart-compose"


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str
    run_id: str = ""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _proof(*args: str, env: dict[str, str] | None = None, script: Path | None = None) -> Ran:
    from prefect.settings import PREFECT_API_URL

    entry = [str(script)] if script else ["-m", "flows.cli"]
    done = subprocess.run(
        [sys.executable, *entry, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), **(env or {})},
        timeout=300,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def _plain_and_debug(
    config_dir: Path, out: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[Ran, Ran]:
    """`proof run ARGS` without and with `--debug`, at the same time.

    Each has its own out dir and a run id of its own (``Ran.run_id``).
    """
    common = ("run", "--config-dir", str(config_dir), "--as-of", AS_OF.isoformat(), *args)
    with ThreadPoolExecutor(2) as pool:
        runs = {
            rid: pool.submit(
                _proof, *common, "--out", str(out / rid), "--run-id", rid, *extra, env=env
            )
            for rid, extra in (
                (f"plain-{uuid.uuid4().hex}", ()),
                (f"debug-{uuid.uuid4().hex}", ("--debug",)),
            )
        }
        plain, debug = (replace(run.result(), run_id=rid) for rid, run in runs.items())
    return plain, debug


def _assert_clear_stop(plain: Ran, debug: Ran, message: str) -> None:
    """Exit code 2 and the one clear line on stderr; the traceback only with --debug."""
    assert plain.exit_code == 2, plain.output
    assert f"error: {message}" in plain.stderr, plain.output
    assert "Traceback" not in plain.output, plain.output
    assert debug.exit_code == 2, debug.output
    assert f"error: {message}" in debug.stderr, debug.output
    assert "Traceback (most recent call last)" in debug.stderr, debug.output


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped configs over small simulated parquet data (2,000 units per experiment)."""
    config_dir = make_config_dir(tmp_path, kind="parquet")
    data = simulate(list(load_config(config_dir).experiments.values()), 2_000, AS_OF, seed=5)
    write_parquet(tmp_path / "data" / "files", data)
    return config_dir


def _flow_run_log(run_id: str) -> tuple[str | None, str | None, str]:
    """The state name, state message and log text of the analyze-experiment run ``run_id``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(), sort=FlowRunSort.START_TIME_DESC, limit=50
        )
        run = next(r for r in runs if r.parameters.get("run_id") == run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert run.state is not None
    return run.state.name, run.state.message, "\n".join(log.message for log in logs)


def test_a_failed_critical_validation_prints_its_message_without_a_traceback(
    config_dir: Path, tmp_path: Path
) -> None:
    for part in (tmp_path / "data" / "files" / "events").glob("*.parquet"):
        frame = pl.read_parquet(part)
        broken = pl.col("unit_id").str.starts_with(EXPERIMENT) & (pl.col("event") == "retry")
        frame.with_columns(
            pl.when(broken).then(None).otherwise(pl.col("ts")).alias("ts")
        ).write_parquet(part)
    plain, debug = _plain_and_debug(config_dir, tmp_path / "out", "-e", EXPERIMENT)
    _assert_clear_stop(plain, debug, f"{EXPERIMENT}: critical validation failed:")
    assert "table 'events', column 'ts'" in plain.stderr
    assert "CriticalValidationError" in debug.stderr
    # the Prefect UI still shows the run as failed with the message; its log keeps the traceback
    state, state_message, log = _flow_run_log(plain.run_id)
    assert state == "Failed"
    assert "critical validation failed" in (state_message or "")
    assert "Traceback (most recent call last)" in log


def test_a_config_error_prints_its_message_without_a_traceback(tmp_path: Path) -> None:
    config_dir = make_config_dir(tmp_path, kind="parquet")
    path = config_dir / "experiments" / f"{EXPERIMENT}.yaml"
    path.write_text(path.read_text() + "alpha: lots\n")
    plain, debug = _plain_and_debug(config_dir, tmp_path / "out", "-e", EXPERIMENT)
    _assert_clear_stop(plain, debug, str(path))
    assert "ConfigError" in debug.stderr
    demo = _proof("demo", "--config-dir", str(config_dir), "--out", str(tmp_path / "demo"))
    assert demo.exit_code == 2, demo.output
    assert f"error: {path}" in demo.stderr
    assert "Traceback" not in demo.output


def test_an_unreachable_source_prints_its_message_without_a_traceback(
    config_dir: Path, tmp_path: Path
) -> None:
    (config_dir / "sources.yaml").write_text(
        "sources:\n  warehouse:\n    kind: sql\n    uri_env: PROOF_TEST_DOWN_URI\n"
        "    assignments: analytics.assignments\n    events: analytics.events\n"
    )
    env = {"PROOF_TEST_DOWN_URI": "postgresql://proof@127.0.0.1:1/test"}  # nothing listens
    plain, debug = _plain_and_debug(config_dir, tmp_path / "out", "-e", EXPERIMENT, env=env)
    _assert_clear_stop(plain, debug, f"{EXPERIMENT}: source 'warehouse'")
    assert "127.0.0.1:1" in plain.stderr
    assert "SourceUnavailableError" in debug.stderr  # retried: nothing listened


def test_a_bug_still_shows_its_traceback(config_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "buggy_proof.py"
    script.write_text(
        "import analysis.engines.polars_engine\n"
        "from flows.cli import app\n\n\n"
        "def broken_check(*args, **kwargs):\n"
        "    raise ZeroDivisionError('a bug in the analysis')\n\n\n"
        "analysis.engines.polars_engine.check_experiment = broken_check\n"
        "app()\n"
    )
    ran = _proof(
        "run", "--config-dir", str(config_dir), "--out", str(tmp_path / "out"),
        "--as-of", AS_OF.isoformat(), "-e", EXPERIMENT, script=script,
    )  # fmt: skip
    assert ran.exit_code != 0, ran.output
    assert "Traceback (most recent call last)" in ran.stderr, ran.output
    assert "in broken_check" in ran.stderr
    assert "ZeroDivisionError: a bug in the analysis" in ran.stderr
    assert f"error: {EXPERIMENT}: a bug in the analysis" in ran.stderr


def test_run_and_demo_explain_debug() -> None:
    for command in ("run", "demo"):
        ran = _proof(command, "--help")
        assert ran.exit_code == 0
        assert "--debug" in ran.stdout
        assert "traceback" in ran.stdout
