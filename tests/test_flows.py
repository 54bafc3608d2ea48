"""The Prefect flows and the CLI, against a real (temporary) Prefect server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate, write_parquet
from analysis.devtools.simulate.landing import write_landing_files
from analysis.validation.experiment import partition_window
from flows.cli import app
from tests.conftest import AS_OF, make_config_dir

pytestmark = pytest.mark.usefixtures("prefect_server")

COMPARISON_KEYS = {
    "metric", "category", "kind", "goal", "control", "treatment", "n_control", "n_treatment",
    "mean_control", "mean_treatment", "diff", "diff_ci", "lift", "lift_ci", "p_value",
    "p_value_adjusted", "method", "cuped", "sequential", "verdict",
}  # fmt: skip


def assert_contract(results: dict[str, Any]) -> None:
    """results.json holds every key of the contract (section 3), with the right types."""
    assert results["schema_version"] == 1
    for key in ("experiment_id", "run_id", "analysis_date"):
        assert isinstance(results[key], str)
    data = results["data"]
    for key in ("events", "duplicates_dropped", "crossovers_excluded", "quarantined_rows"):
        assert isinstance(data[key], int)
    assert all(isinstance(n, int) for n in data["units"].values())
    assert isinstance(results["validation"]["success"], bool)
    assert isinstance(results["validation"]["failed_expectations"], list)
    srm = results["srm"]
    assert set(srm) >= {"p_value", "flagged", "expected", "observed"}
    for c in results["comparisons"]:
        assert set(c) >= COMPARISON_KEYS, COMPARISON_KEYS - set(c)
        assert c["verdict"] in {"better", "worse", "inconclusive"}
        assert set(c["cuped"]) >= {"applied", "variance_reduction"}
        assert set(c["sequential"]) >= {"lift_ci", "p_value"}
        for key in ("diff_ci", "lift_ci"):
            assert c[key] is None or (len(c[key]) == 2 and c[key][0] <= c[key][1])
    assert isinstance(results["segments"], list)
    assert results["decision"]["recommendation"] in {
        "ship",
        "don't ship",
        "keep running",
        "investigate",
    }
    assert results["decision"]["reasons"]


@pytest.fixture
def parquet_setup(tmp_path: Path) -> Path:
    config_dir = make_config_dir(tmp_path, kind="parquet")
    cfg = load_config(config_dir)
    data = simulate(list(cfg.experiments.values()), 3_000, AS_OF, seed=5)
    write_parquet(tmp_path / "data" / "files", data)
    return config_dir


@dataclass
class Ran:
    exit_code: int
    output: str


def _run(*args: str) -> Ran:
    """`proof run ...` in a subprocess that talks to the session's test server.

    A subprocess, not typer's CliRunner: Prefect's log handlers keep the stream
    they first saw, and CliRunner closes its captured streams after each call.
    """
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return Ran(done.returncode, done.stdout + done.stderr)


def test_run_one_experiment_from_parquet(parquet_setup: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(
        "--config-dir", str(parquet_setup), "--out", str(out), "--run-id", "z1",
        "--experiment", "smart-compose", "--as-of", AS_OF.isoformat(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((out / "smart-compose" / "z1" / "results.json").read_text())
    assert_contract(results)
    assert results["analysis_date"] == AS_OF.isoformat()
    cfg = load_config(parquet_setup)
    experiment = cfg.experiment("smart-compose")
    covered = {c["metric"] for c in results["comparisons"]} | {
        d["metric"] for d in results["descriptive"]
    }
    assert covered == set(experiment.metrics.all())
    assert (out / "smart-compose" / "z1" / "report.html").stat().st_size > 10_000
    assert (out / "assets" / "plotly.min.js").exists()
    assert "smart-compose" in (out / "index.html").read_text()


def _without_run_stamps(results: dict[str, Any]) -> dict[str, Any]:
    """Results without what differs by design: the run's name and time, what was reused."""
    validation = {k: v for k, v in results["validation"].items() if k != "partitions"}
    kept = {k: v for k, v in results.items() if k not in ("run_id", "generated_at")}
    return kept | {"validation": validation}


def _assert_close(got: Any, want: Any, where: str = "") -> None:
    """Equal JSON, floats to 1e-9 relative: partials merged in another order round differently."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert got.keys() == want.keys(), where
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), where
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def test_a_cached_run_and_a_no_cache_run_publish_the_same_results(
    parquet_setup: Path, tmp_path: Path
) -> None:
    """The second run reuses stored partials; `--no-cache` recomputes; the numbers agree."""
    out = tmp_path / "out"
    common = ("--config-dir", str(parquet_setup), "--out", str(out),
              "--experiment", "smart-compose", "--as-of", AS_OF.isoformat())  # fmt: skip
    runs = {rid: _run(*common, "--run-id", rid, *extra)
            for rid, extra in (("c1", ()), ("c2", ()), ("c3", ("--no-cache",)))}  # fmt: skip
    for rid, ran in runs.items():
        assert ran.exit_code == 0, (rid, ran.output)
    assert "0 (day, cohort) partitions reused" in runs["c1"].output
    assert " 0 computed, 0 day files written" in runs["c2"].output
    assert "0 (day, cohort) partitions reused" in runs["c3"].output
    published = {
        rid: _without_run_stamps(
            json.loads((out / "smart-compose" / rid / "results.json").read_text())
        )
        for rid in runs
    }
    _assert_close(published["c2"], published["c1"])
    _assert_close(published["c3"], published["c1"])
    assert list((out / ".cache" / "partials" / "smart-compose").glob("*.parquet"))


def test_a_run_after_the_planned_end_analyses_the_final_data(
    parquet_setup: Path, tmp_path: Path
) -> None:
    # The experiment ends on AS_OF; a nightly run 10 days later must not read a
    # fixed-horizon test again on more data: it publishes the final analysis again.
    path = parquet_setup / "experiments" / "smart-compose.yaml"
    path.write_text(path.read_text().replace("end: 2026-11-30", f"end: {AS_OF.isoformat()}"))
    out = tmp_path / "out"
    later = AS_OF + dt.timedelta(days=10)
    for run_id, day in (("final", AS_OF), ("later", later)):
        result = _run(
            "--config-dir", str(parquet_setup), "--out", str(out), "--run-id", run_id,
            "--experiment", "smart-compose", "--as-of", day.isoformat(),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    final, again = (
        json.loads((out / "smart-compose" / r / "results.json").read_text())
        for r in ("final", "later")
    )
    assert again["analysis_date"] == AS_OF.isoformat()
    assert {c["verdict_basis"] for c in again["comparisons"]} <= {
        "fixed_horizon",
        "fixed_horizon_cuped",
    }
    _assert_close(_without_run_stamps(again), _without_run_stamps(final))


def test_nightly_isolates_a_failing_experiment(parquet_setup: Path, tmp_path: Path) -> None:
    broken = (parquet_setup / "experiments" / "smart-compose.yaml").read_text()
    broken = broken.replace("id: smart-compose", "id: broken").replace(
        "source: warehouse", "source: elsewhere"
    )
    (parquet_setup / "experiments" / "broken.yaml").write_text(broken)
    with (parquet_setup / "sources.yaml").open("a") as f:
        f.write("  elsewhere:\n    kind: parquet\n    assignments: ../nowhere/*.parquet\n"
                "    events: ../nowhere/*.parquet\n")  # fmt: skip
    out = tmp_path / "out"
    result = _run("--config-dir", str(parquet_setup), "--out", str(out), "--as-of", "2026-11-20")
    assert result.exit_code == 1
    assert "broken: FAILED" in result.output
    assert "no parquet file matches" in result.output
    assert "Traceback" not in result.output  # an expected stop: its message, no traceback
    for ok in ("smart-compose", "auto-triage"):
        runs = list((out / ok).glob("*/results.json"))
        assert len(runs) == 1
        assert_contract(json.loads(runs[0].read_text()))
    assert not (out / "broken").exists()


def test_failed_run_keeps_the_last_good_report(parquet_setup: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--config-dir", str(parquet_setup), "--out", str(out), "--experiment", "smart-compose"]
    assert _run(*args, "--run-id", "good").exit_code == 0
    index_before = (out / "index.html").read_text()

    # a broken delivery: the retries of smart-compose lose their timestamps
    for part in (tmp_path / "data" / "files" / "events").glob("*.parquet"):
        frame = pl.read_parquet(part)
        broken = pl.col("unit_id").str.starts_with("smart-compose") & (pl.col("event") == "retry")
        frame.with_columns(
            pl.when(broken).then(None).otherwise(pl.col("ts")).alias("ts")
        ).write_parquet(part)

    bad = _run(*args, "--run-id", "bad")
    assert bad.exit_code == 2
    assert "critical validation failed" in bad.output
    assert "table 'events', column 'ts'" in bad.output
    assert "Traceback" not in bad.output
    assert (out / "smart-compose" / "good" / "report.html").exists()
    assert not (out / "smart-compose" / "bad").exists()
    assert not list((out / "smart-compose").glob(".tmp*"))
    assert (out / "index.html").read_text() == index_before


def test_help_explains_every_command() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in ("demo", "run", "simulate"):
        assert command in top.output
        text = runner.invoke(app, [command, "--help"]).output
        assert "--config-dir" in text
    assert "--as-of" in runner.invoke(app, ["run", "--help"]).output
    assert "--aa" in runner.invoke(app, ["simulate", "--help"]).output


def test_bad_rows_are_quarantined_counted_and_reported(parquet_setup: Path, tmp_path: Path) -> None:
    """Out-of-range values, future timestamps and unassigned units, through the real flow."""
    events_dir = tmp_path / "data" / "files" / "events"
    # the last part with smart-compose's events (the parts are in time order)
    part, frame = next(
        (p, f)
        for p in sorted(events_dir.glob("*.parquet"), reverse=True)
        if (f := pl.read_parquet(p))["unit_id"].str.starts_with("smart-compose").any()
    )
    template = frame.filter(pl.col("unit_id").str.starts_with("smart-compose")).head(1)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    bad_values = template.with_columns(
        pl.lit("trust_survey").alias("event"), pl.lit(9.0).alias("value")
    )
    injected = [
        bad_values.with_columns(pl.lit(f"bad-value-{i}").alias("event_id")) for i in range(5)
    ] + [
        template.with_columns(
            pl.lit(f"future-{i}").alias("event_id"),
            pl.lit(future).cast(frame.schema["ts"]).alias("ts"),
        )
        for i in range(3)
    ]
    smart = pl.concat([pl.read_parquet(p) for p in events_dir.glob("*.parquet")]).filter(
        pl.col("unit_id").str.starts_with("smart-compose")
    )
    ghosts = smart.head(smart.height // 5).with_columns(
        ("ghost-" + pl.col("event_id")).alias("event_id"),
        ("ghost-" + pl.col("unit_id")).alias("unit_id"),
    )
    pl.concat([frame, *injected, ghosts]).write_parquet(part)

    out = tmp_path / "out"
    ran = _run(
        "--config-dir", str(parquet_setup), "--out", str(out), "--run-id", "q",
        "--experiment", "smart-compose", "--as-of", AS_OF.isoformat(),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    run_dir = out / "smart-compose" / "q"
    results = json.loads((run_dir / "results.json").read_text())
    reasons = results["validation"]["quarantine"]["events"]
    assert reasons["value_out_of_range"] == 5
    assert reasons["ts_in_future"] == 3
    assert reasons.get("duplicate_event_id", 0) == results["data"]["duplicates_dropped"]
    assert results["data"]["quarantined_rows"] == sum(
        sum(by_reason.values()) for by_reason in results["validation"]["quarantine"].values()
    )
    warnings = {f["expectation"] for f in results["validation"]["failed_expectations"]}
    assert "expect_unassigned_event_share_to_be_at_most" in warnings
    # nothing is lost: the quarantine files hold every set-aside row, with its reason
    kept = pl.read_parquet(run_dir / "quarantine" / "events.parquet")
    assert kept.height == sum(reasons.values())
    assert set(kept["reason"].unique()) == set(reasons)
    assert (run_dir / "validation.html").exists()


def _break_assignments_column(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("variant")


def _naive_assignment_times(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("assigned_at").dt.replace_time_zone(None))


def _unknown_variant_everywhere(frame: pl.DataFrame) -> pl.DataFrame:
    smart = pl.col("experiment_id") == "smart-compose"
    return frame.with_columns(
        pl.when(smart).then(pl.lit("mystery")).otherwise(pl.col("variant")).alias("variant")
    )


def _assigned_at_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("assigned_at").dt.to_string())


def _no_assignments_yet(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(pl.col("experiment_id") != "smart-compose")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_break_assignments_column, "column 'variant'"),
        (_naive_assignment_times, "timezone-naive"),
        (_assigned_at_as_text, "expected Datetime"),
        (_unknown_variant_everywhere, "variant"),
        (_no_assignments_yet, "has no assignments yet"),
    ],
)
def test_broken_inputs_fail_clearly_through_the_flow(
    parquet_setup: Path, tmp_path: Path, mutate: Any, message: str
) -> None:
    path = tmp_path / "data" / "files" / "assignments.parquet"
    mutate(pl.read_parquet(path)).write_parquet(path)
    out = tmp_path / "out"
    ran = _run("--config-dir", str(parquet_setup), "--out", str(out), "-e", "smart-compose")
    assert ran.exit_code == 2, ran.output
    assert "error: smart-compose" in ran.output
    assert message in ran.output
    assert "Traceback" not in ran.output
    assert not (out / "smart-compose").exists()


def test_an_unreachable_database_fails_after_retries_without_credentials(
    parquet_setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (parquet_setup / "sources.yaml").write_text(
        "sources:\n  warehouse:\n    kind: sql\n    uri_env: PROOF_TEST_DOWN_URI\n"
        "    assignments: analytics.assignments\n    events: analytics.events\n"
    )
    # port 1 on loopback: nothing listens there
    monkeypatch.setenv("PROOF_TEST_DOWN_URI", "postgresql://proof:s3cret-pass@127.0.0.1:1/test")
    out = tmp_path / "out"
    ran = _run("--config-dir", str(parquet_setup), "--out", str(out), "-e", "smart-compose")
    assert ran.exit_code == 2, ran.output
    assert "source 'warehouse'" in ran.output
    assert "127.0.0.1:1" in ran.output
    assert "s3cret-pass" not in ran.output
    assert "Traceback" not in ran.output
    assert not (out / "smart-compose").exists()


def test_files_by_ingestion_day_with_late_and_future_events_give_the_no_cache_results(
    tmp_path: Path,
) -> None:
    """One file lands a night, with late and future-dated events, a copy of an event
    that landed days before and a unit that crosses over: the cached night publishes
    what a `--no-cache` run does, and validates a bounded number of partitions."""
    config_dir = make_config_dir(tmp_path, kind="parquet")
    lake = tmp_path / "data" / "lake"
    (config_dir / "sources.yaml").write_text(
        "sources:\n  warehouse:\n    kind: parquet\n"
        "    assignments: ../data/lake/assignments.parquet\n"
        "    events: ../data/lake/events-*.parquet\n"
    )
    experiment = load_config(config_dir).experiment("smart-compose")
    data = simulate([experiment], 1_500, AS_OF, seed=9)
    yesterday = AS_OF - dt.timedelta(days=1)
    write_landing_files(lake, data, yesterday, seed=9)
    out = tmp_path / "out"
    common = ("--config-dir", str(config_dir), "--out", str(out), "--experiment", "smart-compose")
    night = _run(*common, "--as-of", yesterday.isoformat(), "--run-id", "n1")
    assert night.exit_code == 0, night.output

    write_landing_files(lake, data, AS_OF, seed=9)
    tonight = lake / f"events-{AS_OF.isoformat()}.parquet"
    landed_before = pl.read_parquet(
        lake / f"events-{(AS_OF - dt.timedelta(days=5)).isoformat()}.parquet"
    )
    pl.concat([pl.read_parquet(tonight), landed_before.head(3)]).write_parquet(tonight)
    assignments = pl.read_parquet(lake / "assignments.parquet")
    first = assignments.row(0, named=True)
    other = next(v for v in experiment.variants if v != first["variant"])
    crossed = assignments.head(1).with_columns(
        pl.lit(other).alias("variant"),
        pl.lit(dt.datetime.combine(AS_OF, dt.time(9), dt.UTC)).alias("assigned_at"),
    )
    pl.concat([assignments, crossed]).write_parquet(lake / "assignments.parquet")

    runs = {rid: _run(*common, "--as-of", AS_OF.isoformat(), "--run-id", rid, *extra)
            for rid, extra in (("n2", ()), ("n3", ("--no-cache",)))}  # fmt: skip
    for rid, ran in runs.items():
        assert ran.exit_code == 0, (rid, ran.output)
    published = {
        rid: json.loads((out / "smart-compose" / rid / "results.json").read_text()) for rid in runs
    }
    _assert_close(_without_run_stamps(published["n2"]), _without_run_stamps(published["n3"]))
    quarantined = published["n2"]["validation"]["quarantine"]
    assert quarantined["events"]["ts_in_future"] > 0
    assert quarantined["events"]["duplicate_event_id"] >= 3
    assert quarantined["assignments"]["crossover"] >= 2
    # bounded: the window's days and the rows before and after it, not one per day of ts
    window = partition_window(experiment, AS_OF, dt.datetime.now(dt.UTC))
    cached = out / ".cache" / "validation" / "smart-compose"
    labels = {path.name.rsplit("-", 1)[0] for path in cached.glob("*.json")}
    assert "after" in labels  # the future-dated rows, in one partition
    days = {dt.date.fromisoformat(x[:10]) for x in labels if x[:4].isdigit()}
    assert window[0] <= min(days) <= max(days) <= window[1]
    future = pl.scan_parquet(lake / "events-*.parquet").filter(pl.col("ts").dt.date() > window[1])
    assert future.select(pl.col("ts").dt.date().n_unique()).collect().item() > 10
    nightly = published["n2"]["validation"]["partitions"]
    assert nightly["reused"] > nightly["validated"] > 0
