"""The spark source: the database engine runs inside Apache Spark and gives the polars results.

A real Spark session with two local workers (``local[2]``), the same engine
as a cluster's, over parquet files under the source's own column names (the
events split over two files and read through a glob). The quarantine, GX
(through GX's Spark engine) and every section of the measurement run in
Spark, and are compared with the polars path over the same rows; a whole
``proof run`` on Spark publishes the results.json of the default path, and so
does one with a Spark Connect master, against a Spark Connect server started
from the locked pyspark (no Java is needed in ``proof``'s process then).

Spark needs Java 17: ``make`` installs Debian's where it can (``make java``);
where there is none, these tests are skipped and say why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.config.base import ConfigError
from analysis.config.load import load_config, load_sources
from analysis.config.sources import FileSource, SparkSource
from analysis.devtools.simulate import simulate
from analysis.engines import Checked, DatabaseEngine, RunOptions, engine_for
from analysis.quarantine import QuarantineResult, collect_tables
from analysis.sources.errors import SourceError
from analysis.sources.read import read_experiment
from analysis.sql.database import Database, database
from analysis.sql.gx import check_experiment_sql
from analysis.sql.quarantine import SqlQuarantine
from analysis.sql.spark import _hide, java_missing, open_spark, shared_ctes
from analysis.validation_report import ValidationReport
from tests.pg_factories import (
    assert_finds_planted_errors,
    assert_measured_like,
    assert_pushed_down_like,
    assert_same_quarantine,
    assert_sufficient_statistics,
    planted,
    polars_check,
    polars_measured,
    published_run,
    with_percentile,
)

pytestmark = pytest.mark.skipif(java_missing() is not None, reason=str(java_missing()))

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
EXPERIMENT = CONFIG.experiment("smart-compose")
AS_OF = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 21, 6, tzinfo=dt.UTC)
#: contract name -> the source's own column name
COLUMNS = {"unit_id": "user_id", "ts": "occurred_at"}


def _write_parquet(folder: Path, tables: dict[str, pl.DataFrame]) -> tuple[str, str]:
    """The tables as parquet under ``folder``: assignments in one file, events in two."""
    folder.mkdir(parents=True, exist_ok=True)
    tables["assignments"].write_parquet(folder / "assignments.parquet")
    (folder / "events").mkdir()
    events = tables["events"]
    half = events.height // 2
    events.slice(0, half).write_parquet(folder / "events" / "part-0.parquet")
    events.slice(half).write_parquet(folder / "events" / "part-1.parquet")
    return str(folder / "assignments.parquet"), str(folder / "events" / "*.parquet")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    data = simulate(list(CONFIG.experiments.values()), 150, AS_OF, seed=11)
    tables = planted(data, EXPERIMENT.id, NOW + dt.timedelta(days=3), critical=True)
    renamed = {t: f.rename(COLUMNS, strict=False) for t, f in tables.items()}
    return _write_parquet(tmp_path_factory.mktemp("spark") / "lake", renamed)


@pytest.fixture(scope="module")
def source(files: tuple[str, str]) -> SparkSource:
    assignments, events = files
    return SparkSource(kind="spark", assignments=assignments, events=events, columns=COLUMNS)


@pytest.fixture(scope="module")
def polars_path(files: tuple[str, str]) -> tuple[QuarantineResult, ValidationReport]:
    assignments, events = files
    on_files = FileSource(kind="parquet", assignments=assignments, events=events, columns=COLUMNS)
    raw = collect_tables(read_experiment("lake", on_files, EXPERIMENT.id))
    return polars_check(raw, EXPERIMENT, AS_OF, NOW)


@pytest.fixture(scope="module")
def spark_path(source: SparkSource) -> Iterator[tuple[SqlQuarantine, ValidationReport]]:
    """The quarantine and GX inside Spark, on one session held for the module."""
    con = open_spark("lake", source)
    try:
        yield check_experiment_sql(Database.open("lake", source, con), EXPERIMENT, AS_OF, now=NOW)
    finally:
        con.close()


def test_a_spark_source_runs_on_the_database_engine(source: SparkSource) -> None:
    engine = engine_for("lake", source)
    assert isinstance(engine, DatabaseEngine)
    assert engine.name == "database (spark)"


def test_gx_on_spark_finds_every_planted_error_as_the_polars_path(
    polars_path: tuple[QuarantineResult, ValidationReport],
    spark_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    _, want = polars_path
    _, got = spark_path
    assert_finds_planted_errors(want, got)
    types = [o for o in got.outcomes if o.expectation == "expect_column_values_to_be_of_type"]
    assert types
    assert all(o.success for o in types)
    assert {o.column: o.observed for o in types}["ts"] == "TIMESTAMP"
    assert not got.success


def test_the_quarantine_in_spark_is_the_split_of_the_polars_path(
    polars_path: tuple[QuarantineResult, ValidationReport],
    spark_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    want, _ = polars_path
    got, _ = spark_path
    assert_same_quarantine(got, want)
    assert want.crossover_units > 0
    assert all(got.rows[table].height > 0 for table in ("assignments", "events"))


def test_every_section_is_measured_inside_spark_as_the_polars_path(
    source: SparkSource,
    polars_path: tuple[QuarantineResult, ValidationReport],
    spark_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    """Moments, segments, quantile summaries, both timelines, the funnel, the histograms
    and the per-unit checks: the database engine on Spark and the polars engine on the
    split, winsorised (its caps and quantiles on top of every plain query). The plain
    measurement is compared through the whole run below (smart-compose does not
    winsorise), and section by section on DuckDB and PostgreSQL."""
    experiment = with_percentile(EXPERIMENT, 0.95)
    held, _ = polars_path
    metrics = CONFIG.metrics_of(experiment)
    want = polars_measured(held, experiment, metrics, AS_OF, NOW)
    # The module's quarantine (winsorising does not change which rows it keeps); the
    # measure closes its session, which no later test reads (closing again is harmless).
    in_spark, report = spark_path
    checked = Checked(report, in_spark.quarantined, in_spark, NOW)
    got = DatabaseEngine("lake", source, RunOptions()).measure(checked, experiment, metrics, AS_OF)
    assert want.unit_validation is not None
    assert_measured_like(got, replace(want, cleaning=held.cleaning(want.cleaning)))
    assert got.computed_in is not None
    assert got.computed_in.dialect == "spark"
    assert_sufficient_statistics(got.computed_in.rows_returned, experiment, AS_OF)


def test_a_missing_path_or_table_is_named(source: SparkSource, tmp_path: Path) -> None:
    gone = source.model_copy(update={"events": str(tmp_path / "none" / "*.parquet")})
    with pytest.raises(SourceError, match=r"source 'lake': cannot read the events files"):
        open_spark("lake", gone)
    no_table = source.model_copy(update={"assignments": "warehouse.nothing_here"})
    con = open_spark("lake", no_table)
    try:
        with pytest.raises(SourceError, match=r"table 'warehouse.nothing_here' \(the assignments"):
            Database.open("lake", no_table, con)
    finally:
        con.close()


def test_a_master_with_credentials_is_read_from_the_environment_and_never_shown(
    source: SparkSource,
    spark_path: tuple[SqlQuarantine, ValidationReport],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "spark://proof:s3cr3t@spark.example.com:7077"
    monkeypatch.setenv("PROOF_TEST_SPARK_MASTER", secret)
    hidden = source.model_copy(update={"master_env": "PROOF_TEST_SPARK_MASTER"})
    db = database("lake", hidden)
    assert db.uri == secret
    assert secret not in repr(db)
    # This process runs Spark on local[2]: the other master is refused, and not named.
    with pytest.raises(SourceError, match="another master") as refused:
        open_spark("lake", hidden)
    assert "s3cr3t" not in str(refused.value)
    # What Spark or py4j say about a master is redacted of it, and of any token in it.
    told = f"cannot reach {secret}; retrying spark.example.com with token=s3cr3t"
    assert "s3cr3t" not in _hide(told, secret)
    # A Spark Connect server that does not answer is named (host and port), fast, and
    # its token is not: the client alone would retry for minutes.
    connect = "sc://127.0.0.1:9/;token=s3cr3t"  # nothing listens on the discard port
    with pytest.raises(SourceError, match=r"cannot reach the database at 127\.0\.0\.1:9 ") as no:
        open_spark("lake", source.model_copy(update={"master": connect}))
    assert "s3cr3t" not in str(no.value)
    monkeypatch.delenv("PROOF_TEST_SPARK_MASTER")
    with pytest.raises(SourceError, match="PROOF_TEST_SPARK_MASTER is not set"):
        database("lake", hidden)


def test_sources_yaml_reads_a_spark_source(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  lake:\n"
        "    kind: spark\n"
        "    assignments: data/assignments.parquet\n"
        "    events: data/events/*.parquet\n"
        "    conf: {spark.executor.memory: 2g}\n"
        "  catalog:\n"
        "    kind: spark\n"
        "    master_env: SPARK_MASTER_URL\n"
        "    assignments: lake.assignments\n"
        "    events: lake.events\n"
    )
    sources = load_sources(tmp_path / "sources.yaml")
    lake, catalog = sources["lake"], sources["catalog"]
    assert isinstance(lake, SparkSource)
    assert isinstance(catalog, SparkSource)
    assert lake.master == "local[2]"
    assert lake.assignments == str(tmp_path / "data" / "assignments.parquet")
    assert lake.relations() == {
        "assignments": "proof_source_assignments",
        "events": "proof_source_events",
    }
    assert catalog.relations() == {"assignments": "lake.assignments", "events": "lake.events"}
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  lake:\n    kind: spark\n    master: local[2]\n    master_env: X\n"
        "    assignments: a.parquet\n    events: e.parquet\n"
    )
    with pytest.raises(ConfigError, match="master or master_env"):
        load_sources(tmp_path / "sources.yaml")


def test_shared_ctes_are_those_read_more_than_once() -> None:
    import sqlglot

    tree = sqlglot.parse_one(
        "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a), c AS (SELECT x FROM b "
        "UNION ALL SELECT x FROM b) SELECT * FROM c",
        dialect="spark",
    )
    assert [c.alias for c in shared_ctes(tree)] == ["b"]


@pytest.fixture(scope="module")
def connect_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on a free local port: the locked pyspark's own server
    (``SparkConnectServer``, ``local[2]``), as a cluster or Databricks would serve one."""
    import os
    import socket
    import subprocess
    import time

    import pyspark

    home = Path(pyspark.__file__).parent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("connect") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(home / "bin" / "spark-submit"), "--master", "local[2]",
                "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                "--conf", f"spark.connect.grpc.binding.port={port}",
                "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                "--conf", "spark.ui.enabled=false",
                "--conf", "spark.sql.shuffle.partitions=4",
            ],
            env={**os.environ, "SPARK_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(60)


@pytest.fixture(scope="module")
def published(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory, connect_master: str
) -> dict[str, dict[str, Any]]:
    """`proof run` over the same parquet files, on the default path and on a Spark
    Connect server.

    Warnings-only bad rows are planted, so every run goes through to the report.
    """
    from tests.conftest import make_config_dir

    root = tmp_path_factory.mktemp("spark-runs")
    config_dir = make_config_dir(root, kind="parquet")
    data = simulate(list(CONFIG.experiments.values()), 600, AS_OF, seed=7)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    tables = planted(data, EXPERIMENT.id, future, critical=False)
    files = root / "data" / "files"
    files.mkdir(parents=True)
    tables["assignments"].write_parquet(files / "assignments.parquet")
    (files / "events").mkdir()
    tables["events"].write_parquet(files / "events" / "part-0.parquet")
    sources = config_dir / "sources.yaml"
    runs = {
        "default": sources.read_text(),
        # A Connect server reads paths as it sees them: absolute ones.
        "connect": (
            f"sources:\n  warehouse:\n    kind: spark\n    master: '{connect_master}'\n"
            f"    assignments: {files / 'assignments.parquet'}\n"
            f"    events: {files / 'events'}/*.parquet\n"
        ),
    }
    found: dict[str, dict[str, Any]] = {}
    for name, text in runs.items():
        sources.write_text(text)
        found[name], output = published_run(
            config_dir, root / f"out-{name}", name, EXPERIMENT.id, AS_OF
        )
        found[name]["log"] = {"text": output}
    return found


def test_a_run_over_spark_connect_publishes_the_results_of_the_default_path(
    published: dict[str, dict[str, Any]],
) -> None:
    """A whole ``proof run`` with a Spark Connect master (``sc://``, a server on
    ``local[2]``): every section of results.json, the quarantine counts and files, the
    validation outcome by outcome, the same as the polars engine's on the same files.

    The session in Proof's process (``local[2]``) runs the same SQL, GX and quarantine,
    compared section by section above; only how the session is opened differs."""
    got, want = dict(published["connect"]), dict(published["default"])
    log = got.pop("log")["text"]
    want.pop("log")
    assert "aggregated inside the database (spark)" in log
    quarantine = got["validation"]["quarantine"]
    assert quarantine == want["validation"]["quarantine"]
    assert quarantine["events"]["duplicate_event_id"] >= 1
    assert_pushed_down_like(got, want, "spark")


def test_a_local_session_shuffles_into_two_partitions_per_core() -> None:
    """Spark's 200 shuffle partitions suit a cluster; on local[N], 2N (conf: overrides)."""
    from analysis.sql.spark import _defaults

    assert _defaults("local[2]") == {"spark.sql.shuffle.partitions": "4"}
    assert _defaults("local[8,3]") == {"spark.sql.shuffle.partitions": "16"}
    assert _defaults("local") == {"spark.sql.shuffle.partitions": "2"}
    assert _defaults("spark://host:7077") == {}


def test_proof_check_asks_spark_what_it_asks_the_files(
    files: tuple[str, str], source: SparkSource
) -> None:
    """`proof check` on a spark source: the same findings as over the same files in memory,
    from three queries inside Spark."""
    from analysis.sources.check import check_against_data

    assignments, events = files
    on_files = FileSource(kind="parquet", assignments=assignments, events=events, columns=COLUMNS)
    metrics = CONFIG.metrics_of(EXPERIMENT)
    want = check_against_data("lake", on_files, EXPERIMENT, metrics, AS_OF)
    got = check_against_data("lake", source, EXPERIMENT, metrics, AS_OF)
    assert got == want
    assert any("arms the config does not name" in f.text for f in got)  # the planted 'beta'
