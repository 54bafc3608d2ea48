"""Validation and quarantine inside DuckDB give what the polars path gives.

The same planted data as the PostgreSQL twin (tests/test_validation_sql.py),
written to a DuckDB file under the source's own column names. GX's SQL engine
on DuckDB once returned empty metrics (so every check silently passed or
failed); these tests prove it now catches every planted error with the exact
counts of the polars path, and that the split read back from the database
(``kept_rows``) equals ``quarantine.split``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.config.experiments import Metric
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource
from analysis.devtools.simulate import simulate
from analysis.engines import Checked, DatabaseEngine, RunOptions
from analysis.quarantine import QuarantineResult, collect_tables
from analysis.sources.errors import SourceError
from analysis.sources.read import read_experiment
from analysis.sql.aggregate_connect import connection
from analysis.sql.database import Database, database
from analysis.sql.gx import check_experiment_sql, validate_unit_metrics_sql
from analysis.sql.gx_context import gx_session
from analysis.sql.quarantine import SqlQuarantine, kept_rows
from analysis.validation.tables import validate_unit_metrics
from analysis.validation_report import ValidationReport, format_summary
from tests.pg_factories import (
    assert_finds_planted_errors,
    assert_measured_like,
    assert_pushed_down_like,
    assert_sufficient_statistics,
    planted,
    polars_check,
    polars_measured,
    published_run,
    with_percentile,
)

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
EXPERIMENT = CONFIG.experiment("smart-compose")
AS_OF = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 21, 6, tzinfo=dt.UTC)
#: contract name -> the source's own column name
COLUMNS = {"unit_id": "user_id", "ts": "occurred_at"}


def _write_duckdb(path: Path, tables: dict[str, pl.DataFrame]) -> None:
    con = duckdb.connect(str(path))
    for name, frame in tables.items():
        con.register("frame", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> DuckDBSource:
    data = simulate(list(CONFIG.experiments.values()), 150, AS_OF, seed=11)
    tables = planted(data, EXPERIMENT.id, NOW + dt.timedelta(days=3), critical=True)
    path = tmp_path_factory.mktemp("vduck") / "source.duckdb"
    _write_duckdb(path, {t: f.rename(COLUMNS, strict=False) for t, f in tables.items()})
    return DuckDBSource(kind="duckdb", path=path, columns=COLUMNS)


@pytest.fixture(scope="module")
def polars_path(source: DuckDBSource) -> tuple[QuarantineResult, ValidationReport]:
    raw = collect_tables(read_experiment("duck", source, EXPERIMENT.id))
    return polars_check(raw, EXPERIMENT, AS_OF, NOW)


@pytest.fixture(scope="module")
def duck_path(source: DuckDBSource) -> tuple[SqlQuarantine, ValidationReport]:
    return check_experiment_sql(Database.open("duck", source), EXPERIMENT, AS_OF, now=NOW)


def test_gx_on_duckdb_finds_every_planted_error_as_the_polars_path(
    polars_path: tuple[QuarantineResult, ValidationReport],
    duck_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    _, expected = polars_path
    _, got = duck_path
    assert_finds_planted_errors(expected, got)
    compound = next(
        o for o in got.outcomes if o.expectation == "expect_compound_columns_to_be_unique"
    )
    assert compound.examples  # rows, named as the polars path names them
    assert all(e.startswith("unit_id=") for e in compound.examples), compound.examples
    assert not got.success
    assert "validation FAILED" in format_summary(got.summary(), EXPERIMENT.id)


def test_type_checks_read_duckdb_catalog_types(
    duck_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    _, got = duck_path
    types = [o for o in got.outcomes if o.expectation == "expect_column_values_to_be_of_type"]
    assert types
    assert all(o.success for o in types)
    observed = {o.column: o.observed for o in types}
    assert observed["ts"] == "TIMESTAMP WITH TIME ZONE"


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def test_kept_rows_are_the_split_of_the_polars_path(
    source: DuckDBSource,
    polars_path: tuple[QuarantineResult, ValidationReport],
    duck_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    expected, _ = polars_path
    held, _ = duck_path
    got = kept_rows(Database.open("duck", source), EXPERIMENT, AS_OF, held, now=NOW)
    assert got.counts == {t: dict(c) for t, c in expected.counts.items()}
    assert got.rows_in == dict(expected.rows_in)
    assert got.rows_used == expected.rows_used
    assert got.crossover_units == expected.crossover_units > 0
    assert got.unassigned_events == expected.unassigned_events
    assert_frame_equal(_sorted(got.assignments), _sorted(expected.assignments))
    assert_frame_equal(_sorted(got.events), _sorted(expected.events))
    for table in ("assignments", "events"):
        assert_frame_equal(_sorted(got.quarantined[table]), _sorted(expected.quarantined[table]))
    inputs, want = got.partial_inputs(), expected.partial_inputs()
    assert_frame_equal(
        _sorted(inputs.events.collect()), _sorted(want.events.collect()), check_row_order=False
    )


@pytest.mark.parametrize("percentile", [None, 0.95], ids=["plain", "winsorised"])
def test_every_section_is_measured_inside_duckdb_as_the_polars_path(
    source: DuckDBSource,
    polars_path: tuple[QuarantineResult, ValidationReport],
    duck_path: tuple[SqlQuarantine, ValidationReport],
    percentile: float | None,
) -> None:
    """The database engine on the DuckDB file and the polars engine on the split, section
    by section (the PostgreSQL twin is in tests/test_validation_sql.py), plain and winsorised."""
    experiment = with_percentile(EXPERIMENT, percentile)
    held, _ = polars_path
    metrics = CONFIG.metrics_of(experiment)
    want = polars_measured(held, experiment, metrics, AS_OF, NOW)
    in_file, report = duck_path
    checked = Checked(report, in_file.quarantined, in_file, NOW)
    got = DatabaseEngine("duck", source, RunOptions()).measure(checked, experiment, metrics, AS_OF)
    assert want.unit_validation is not None
    assert want.unit_validation.success
    assert_measured_like(got, replace(want, cleaning=held.cleaning(want.cleaning)))
    assert got.computed_in is not None
    assert got.computed_in.dialect == "duckdb"
    assert_sufficient_statistics(got.computed_in.rows_returned, experiment, AS_OF)


def test_a_missing_file_or_table_is_named(source: DuckDBSource, tmp_path: Path) -> None:
    gone = source.model_copy(update={"path": tmp_path / "nothing.duckdb"})
    with pytest.raises(SourceError, match=r"'duck'.*nothing\.duckdb not found"):
        check_experiment_sql(Database.open("duck", gone), EXPERIMENT, AS_OF, now=NOW)
    missing = source.model_copy(update={"events": "no_such_events"})
    with pytest.raises(SourceError, match=r"'no_such_events' \(the events table\) does not exist"):
        check_experiment_sql(Database.open("duck", missing), EXPERIMENT, AS_OF, now=NOW)


def test_memory_limit_holds_for_every_connection_proof_opens(
    source: DuckDBSource, duck_path: tuple[SqlQuarantine, ValidationReport]
) -> None:
    """Proof's own connections and GX's engine (one configuration, or DuckDB refuses
    the file) get the limit, and the checks still run under it."""
    from analysis.sources.connect import connect_duckdb
    from analysis.sql.database import database

    limited = source.model_copy(update={"memory_limit": "512MB"})
    setting = "SELECT current_setting('memory_limit') AS m"
    con = connect_duckdb("duck", limited)
    try:
        assert con.execute(setting).fetchall() == [("488.2 MiB",)]
    finally:
        con.close()
    db = database("duck", limited)
    assert db.fetch(setting).item() == "488.2 MiB"
    with gx_session(db) as gx, gx.rows.get_engine().connect() as gx_con:
        assert gx_con.exec_driver_sql(setting).scalar() == "488.2 MiB"
    held, report = check_experiment_sql(Database.open("duck", limited), EXPERIMENT, AS_OF, now=NOW)
    assert held.counts == duck_path[0].counts
    assert [o.success for o in report.outcomes] == [o.success for o in duck_path[1].outcomes]


def test_every_connection_to_a_file_opens_alike_while_a_run_holds_one(
    source: DuckDBSource,
) -> None:
    """A push-down run holds its connection from the check to the end of the measure;
    meanwhile the nightly's other experiments open the same file (DuckDB refuses a
    second configuration of a file open in the process), GX's engines included."""
    limited = source.model_copy(update={"memory_limit": "512MB"})
    with connection("duck", limited, None) as held:
        db = Database.open("duck", limited)
        assert db.fetch("SELECT 1 AS one").item() == 1
        with gx_session(db) as gx, gx.rows.get_engine().connect() as gx_con:
            assert gx_con.exec_driver_sql("SELECT 2").scalar() == 2
        with connection("duck", limited, None) as other:
            assert other.execute("SELECT 3 AS three").item() == 3
        assert held.execute("SELECT 4 AS four").item() == 4


# --------------------------------------------------------------------------- through the flow


#: the source's option per run: validated inside DuckDB, the default path, pushed down
RUNS = {
    "inside": "    validate_in_database: true\n",
    "default": "",
    "pushdown": "    pushdown: true\n    memory_limit: 1GB\n",
}


@pytest.fixture(scope="module")
def published(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """`proof run` over one DuckDB file with each option of :data:`RUNS`.

    Warnings-only bad rows are planted, so every run goes through to the
    report. Each run's results.json, with its quarantine files under
    ``quarantine/<table>`` and examples and the type check's observed type
    dropped (the rows a failed rule names, and pandas' or the catalog's type,
    may differ; the rules and counts must not).
    """
    from tests.conftest import make_config_dir

    root = tmp_path_factory.mktemp("duck-runs")
    config_dir = make_config_dir(root, kind="duckdb")
    data = simulate(list(CONFIG.experiments.values()), 2_000, AS_OF, seed=7)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    tables = planted(data, EXPERIMENT.id, future, critical=False)
    (root / "data").mkdir()
    _write_duckdb(root / "data" / "warehouse.duckdb", tables)
    sources = config_dir / "sources.yaml"
    default = sources.read_text()
    found: dict[str, dict[str, Any]] = {}
    for name, option in RUNS.items():
        sources.write_text(default + option)
        results, _ = published_run(config_dir, root / f"out-{name}", name, EXPERIMENT.id, AS_OF)
        for failure in results["validation"]["failed_expectations"]:
            failure.pop("examples", None)
        for outcome in results["validation"]["expectations"]:
            outcome.pop("examples", None)
            if outcome["expectation"] == "expect_column_values_to_be_of_type":
                outcome.pop("observed")
        found[name] = results
    return found


def test_a_run_validated_inside_duckdb_publishes_the_results_of_the_default_path(
    published: dict[str, dict[str, Any]],
) -> None:
    """`validate_in_database: true` and the default path: the same results and files."""
    from tests.test_flows import _assert_close

    got, want = published["inside"], published["default"]
    quarantine = got["validation"]["quarantine"]
    assert quarantine["events"]["duplicate_event_id"] >= 1
    assert quarantine["assignments"]["crossover"] >= 1
    assert got["over_time"]  # the whole polars analysis ran on the kept rows
    assert got["funnel"]
    _assert_close(got, want)


def test_a_duckdb_run_pushed_down_publishes_the_statistics_of_the_default_path(
    published: dict[str, dict[str, Any]],
) -> None:
    """`pushdown: true` on a DuckDB file (with a memory limit): the same statistics,
    quarantine files and validation outcome; the sections push-down leaves out are named."""
    got, want = published["pushdown"], published["default"]
    assert_pushed_down_like(got, want, "duckdb")  # quarantine/<table> files included


def test_unit_metric_checks_inside_duckdb_fail_as_the_polars_checks(
    source: DuckDBSource, tmp_path: Path
) -> None:
    """A broken per-unit metric table (a unit twice, a null unit, an unknown arm, a
    proportion of 2, a negative count, a missing value, one row short): GX inside the
    database reports every broken rule with the polars engine's counts."""
    metrics = CONFIG.metrics_of(EXPERIMENT)
    unit_check = partial(
        validate_unit_metrics, experiment=EXPERIMENT, metrics=metrics, as_of=AS_OF, now=NOW
    )
    # the engine's own table of the kept rows, read back, whole and then broken on purpose
    query = _unit_metrics_sql(source, metrics)
    with duckdb.connect(str(source.path), read_only=True) as con:
        table = con.sql(query).pl()
    n = table.height
    assert unit_check(table, assigned_units=n).success
    proportion = next(m.name for m in metrics if m.kind == "proportion")
    count = next(c for c in table.columns if c.endswith("__den") and not c.endswith("__pre"))
    broken = pl.concat([table, table.head(1)]).with_row_index("i")
    broken = broken.with_columns(
        pl.when(pl.col("i") == 1).then(None).otherwise(pl.col("unit_id")).alias("unit_id"),
        pl.when(pl.col("i") == 2).then(pl.lit("v9")).otherwise(pl.col("variant")).alias("variant"),
        pl.when(pl.col("i") == 3).then(2.0).otherwise(pl.col(proportion)).alias(proportion),
        pl.when(pl.col("i") == 4).then(-1.0).otherwise(pl.col(count)).alias(count),
        pl.when(pl.col("i") == 5).then(None).otherwise(pl.col(count)).alias(f"{count}__pre"),
    ).drop("i")
    path = tmp_path / "units.duckdb"
    _write_duckdb(path, {"units": broken})
    db = database("units", DuckDBSource(kind="duckdb", path=path))
    got = validate_unit_metrics_sql(
        db, "SELECT * FROM units", EXPERIMENT, metrics, n - 1, as_of=AS_OF, now=NOW
    )
    want = unit_check(broken, assigned_units=n - 1)
    failed = {(o.expectation, o.column) for o in want.outcomes if not o.success}
    assert failed == {
        ("expect_table_row_count_to_equal", None),
        ("expect_column_values_to_not_be_null", "unit_id"),
        ("expect_column_values_to_be_unique", "unit_id"),
        ("expect_column_values_to_be_in_set", "variant"),
        ("expect_column_values_to_be_between", proportion),
        ("expect_column_values_to_be_between", count),
        ("expect_column_values_to_not_be_null", f"{count}__pre"),
    }
    assert _outcomes(got) == _outcomes(want)
    assert got.rows == want.rows == {"unit_metrics": n + 1}
    assert not got.success

    # As a run checks it: a temporary table of the aggregation's connection, which GX
    # can read only on that connection, lent to it.
    with connection("units", DuckDBSource(kind="duckdb", path=path), None) as con:
        assert con.keep is not None
        assert con.share is not None
        kept = con.keep("proof_unit_rows", "SELECT * FROM units").sql(dialect="duckdb")
        on_run = replace(db, connection=con)
        shared = validate_unit_metrics_sql(
            on_run, kept, EXPERIMENT, metrics, n - 1, as_of=AS_OF, now=NOW
        )
        assert con.execute("SELECT count(*) FROM proof_unit_rows").item() == n + 1  # still open
    assert _outcomes(shared) == _outcomes(want)


def _outcomes(report: ValidationReport) -> list[tuple[object, ...]]:
    return [
        (o.expectation, o.column, o.success, o.unexpected_count, o.element_count)
        for o in report.outcomes
    ]


def _unit_metrics_sql(source: DuckDBSource, metrics: list[Metric]) -> str:
    """The database engine's per-unit metric table of the rows the quarantine keeps."""
    from analysis.sql.aggregate_checks import unit_metrics_query
    from analysis.sql.aggregate_plan import make_scope
    from analysis.sql.quarantine import used_rows

    bases = used_rows(Database.open("duck", source), EXPERIMENT, AS_OF, now=NOW)
    tables = {"assignments": "assignments", "events": "events"}
    scope = make_scope(EXPERIMENT, AS_OF, "duckdb", tables, COLUMNS, [], True, bases, True)
    return unit_metrics_query(scope, metrics).sql(dialect="duckdb")
