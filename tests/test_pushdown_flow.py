"""A push-down run through the real flow publishes what the polars path publishes.

Both demo experiments are simulated, bad rows (none critical) are planted in
smart-compose's, and the rows are loaded into a throwaway PostgreSQL schema
under the source's own column names. The same `sql` source is analysed twice
through `proof run`: with `pushdown: true` (quarantine, GX and the aggregation
inside the database) and with `pushdown: false` (the rows read into polars).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate
from tests.conftest import AS_OF, CONFIGS, make_config_dir
from tests.pg_factories import (
    PG_URI,
    assert_pushed_down_like,
    copy_into,
    planted,
    throwaway_schema,
)
from tests.test_flows import _assert_close, _run

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.usefixtures("prefect_server")

ENV = "PROOF_TEST_PUSHDOWN_URI"
EXPERIMENT = "smart-compose"
COLUMNS = {"unit_id": "user_id", "ts": "occurred_at"}


def _planted() -> dict[str, pl.DataFrame]:
    """Both experiments simulated; warnings-only bad rows planted in smart-compose's."""
    config = load_config(CONFIGS)
    data = simulate(list(config.experiments.values()), 2_000, AS_OF, seed=7)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    return planted(data, EXPERIMENT, future, critical=False)


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    data = _planted()
    with throwaway_schema("proof_push") as (con, name):
        for table, frame in data.items():
            copy_into(con, f"{name}.{table}", frame.rename(COLUMNS, strict=False))
        yield name


def _config_dir(root: Path, schema: str, pushdown: bool) -> Path:
    config_dir = make_config_dir(root, kind="parquet")
    mapping = ", ".join(f"{k}: {v}" for k, v in COLUMNS.items())
    extra = "    pushdown: true\n    dialect: postgres\n" if pushdown else ""
    (config_dir / "sources.yaml").write_text(
        "sources:\n  warehouse:\n    kind: sql\n"
        f"    uri_env: {ENV}\n    assignments: {schema}.assignments\n"
        f"    events: {schema}.events\n    columns: {{{mapping}}}\n{extra}"
    )
    return config_dir


@pytest.fixture(scope="module")
def runs(pg_schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The run directory of each path: `pushdown` and `polars`."""
    done: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, PG_URI)
        for name, flag in (("pushdown", True), ("polars", False)):
            root = tmp_path_factory.mktemp(name)
            config_dir = _config_dir(root, pg_schema, flag)
            out = root / "out"
            ran = _run(
                "--config-dir", str(config_dir), "--out", str(out), "--run-id", name,
                "-e", EXPERIMENT, "--as-of", AS_OF.isoformat(),
            )  # fmt: skip
            assert ran.exit_code == 0, ran.output
            if flag:
                assert "aggregated inside the database (postgres)" in ran.output
            done[name] = out / EXPERIMENT / name
        yield done


def _results(run_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run_dir / "results.json").read_text())
    return loaded


def test_pushdown_publishes_the_results_of_the_polars_path(runs: dict[str, Path]) -> None:
    got, want = _results(runs["pushdown"]), _results(runs["polars"])
    assert got["segments"]
    assert_pushed_down_like(got, want, "postgres")
    # each named part on its own, for a readable failure
    for key in ("comparisons", "srm", "data", "decision", "segments", "pooled_ai", "pre_exposure"):
        _assert_close(got[key], want[key], key)
    assert got["data"]["duplicates_dropped"] >= 5  # the simulation has retries of its own
    assert got["data"]["crossovers_excluded"] >= 1
    reasons = got["validation"]["quarantine"]
    for reason in ("unknown_variant", "assigned_out_of_range", "crossover", "duplicate_assignment"):
        assert reasons["assignments"][reason] >= 1, reason
    for reason in (
        "ts_in_future", "ts_before_window", "value_out_of_range", "duplicate_event_id",
        "unit_assignment_quarantined", "unit_crossed_over",
    ):  # fmt: skip
        assert reasons["events"][reason] >= 1, reason


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def test_pushdown_writes_the_same_quarantine_files(runs: dict[str, Path]) -> None:
    for table in ("assignments", "events"):
        got = pl.read_parquet(runs["pushdown"] / "quarantine" / f"{table}.parquet")
        want = pl.read_parquet(runs["polars"] / "quarantine" / f"{table}.parquet")
        assert got.height > 0, table
        assert_frame_equal(_sorted(got), _sorted(want))


def test_pushdown_report_says_where_it_ran_and_leaves_nothing_out(runs: dict[str, Path]) -> None:
    html = (runs["pushdown"] / "report.html").read_text()
    assert len(html) > 10_000
    assert "aggregated inside the database (postgres)" in html
    # every section is computed and every check ran, the per-unit metric checks included
    assert re.findall(r"([^>]*): not computed by push-down runs", html) == []
    assert "not run by push-down runs" not in html
    checks = (runs["pushdown"] / "validation.html").read_text()
    assert "no unit has two rows of metrics" in checks
    assert "every analysed unit has exactly one row of metrics" in checks
    polars_html = (runs["polars"] / "report.html").read_text()
    assert "push-down" not in polars_html


def test_proof_validate_runs_inside_the_database(
    pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`proof validate` on a push-down source: the quarantine counts of the database check."""
    from typer.testing import CliRunner

    from analysis.engines import database as database_engine
    from flows.cli import app

    monkeypatch.setenv(ENV, PG_URI)
    config_dir = _config_dir(tmp_path, pg_schema, pushdown=True)
    calls: list[str] = []
    real_check = database_engine.check_experiment_sql

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0].source)  # the run's Database handle
        return real_check(*args, **kwargs)

    monkeypatch.setattr(database_engine, "check_experiment_sql", spy)
    result = CliRunner().invoke(
        app,
        ["validate", "-e", EXPERIMENT, "--as-of", AS_OF.isoformat(),
         "--config-dir", str(config_dir), "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls == ["warehouse"]
    assert "unknown_variant" in result.output
    assert not (tmp_path / "out" / ".cache").exists()  # nothing was read into polars


@pytest.mark.parametrize("pushdown", [True, False], ids=["database", "polars"])
def test_proof_validate_counts_and_quarantines_what_the_run_reports(
    runs: dict[str, Path],
    pg_schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pushdown: bool,
) -> None:
    """Every expectation the report counts (the per-unit metric checks included), and
    with --quarantine the run's quarantine files; without it, no claim of files."""
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv(ENV, PG_URI)
    config_dir = _config_dir(tmp_path, pg_schema, pushdown=pushdown)
    args = ["validate", "-e", EXPERIMENT, "--as-of", AS_OF.isoformat(),
            "--config-dir", str(config_dir), "--out", str(tmp_path / "out")]  # fmt: skip
    run_dir = runs["pushdown" if pushdown else "polars"]
    validation = _results(run_dir)["validation"]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0, plain.output
    assert f"{validation['expectations_evaluated']} expectations: " in plain.output
    assert "unit_metrics" in plain.output  # rows of the per-unit table
    assert "quarantine/<table>.parquet with a reason" not in plain.output.split("(not written")[0]
    assert "`proof validate --quarantine DIR` writes them" in plain.output
    written = CliRunner().invoke(app, [*args, "--quarantine", str(tmp_path / "q")])
    assert written.exit_code == 0, written.output
    assert f"each with its reason: {tmp_path / 'q' / 'quarantine'}" in written.output
    for table in ("assignments", "events"):
        got = pl.read_parquet(tmp_path / "q" / "quarantine" / f"{table}.parquet")
        want = pl.read_parquet(run_dir / "quarantine" / f"{table}.parquet")
        assert got.height > 0, table
        assert_frame_equal(_sorted(got), _sorted(want))
