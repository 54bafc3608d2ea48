"""Every source kind returns the same contract-typed tables; bad tables fail clearly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis import schema
from analysis.config.sources import DuckDBSource, FileSource, SqlSource
from analysis.sources.errors import SourceError, SourceSchemaError
from analysis.sources.read import Tables, read_experiment
from tests.pg_factories import PG_URI, throwaway_schema

T0 = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)


def _assignments() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "experiment_id": ["exp", "exp", "exp", "other"],
            "unit_id": ["u1", "u2", "u3", "u9"],
            "variant": ["control", "ai", "ai", "control"],
            "assigned_at": [T0, T0, T0 + dt.timedelta(hours=1), T0],
            "platform": ["web", "ios", "web", "android"],
        },
        schema_overrides={"assigned_at": schema.UTC_MICROS},
    )


def _events() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5"],
            "unit_id": ["u1", "u2", "u2", "u3", "u9"],
            "ts": [T0 + dt.timedelta(minutes=i) for i in range(5)],
            "event": ["task_started", "task_started", "task_completed", "ai_shown", "retry"],
            "value": [None, None, 120.5, None, None],
            "task_id": ["t1", "t2", "t2", None, "t9"],
        },
        schema_overrides={"ts": schema.UTC_MICROS, "value": pl.Float64},
    )


def _collect(tables: Tables) -> tuple[pl.DataFrame, pl.DataFrame]:
    a = tables.assignments.collect().sort("unit_id")
    e = tables.events.collect().sort("event_id")
    return a, e


def _expected() -> tuple[pl.DataFrame, pl.DataFrame]:
    a = _assignments().filter(pl.col("experiment_id") == "exp").sort("unit_id")
    e = _events().filter(pl.col("unit_id") != "u9").sort("event_id")
    # the sources have no label column: it is optional, and read as null
    return a, e.with_columns(pl.lit(None, dtype=pl.String).alias("label"))


def _write_duckdb(path: Path, assignments: pl.DataFrame, events: pl.DataFrame) -> None:
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone='UTC'")
    con.register("a_df", assignments.to_arrow())
    con.register("e_df", events.to_arrow())
    con.execute("CREATE TABLE assignments AS SELECT * FROM a_df")
    con.execute("CREATE TABLE events AS SELECT * FROM e_df")
    con.close()


@pytest.mark.parametrize("whole", [False, True], ids=["streamed", "fetched-at-once"])
def test_duckdb_source(tmp_path: Path, whole: bool) -> None:
    path = tmp_path / "w.duckdb"
    _write_duckdb(path, _assignments(), _events())
    tables = read_experiment("w", DuckDBSource(kind="duckdb", path=path), "exp", whole=whole)
    a, e = _collect(tables)
    exp_a, exp_e = _expected()
    assert_frame_equal(a, exp_a)
    assert_frame_equal(e, exp_e)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_file_sources_with_globs(tmp_path: Path, kind: str) -> None:
    (tmp_path / "events").mkdir()
    events = _events()
    if kind == "parquet":
        _assignments().write_parquet(tmp_path / "assignments.parquet")
        events[:2].write_parquet(tmp_path / "events" / "part-0.parquet")
        events[2:].write_parquet(tmp_path / "events" / "part-1.parquet")
    else:
        _assignments().write_csv(tmp_path / "assignments.csv")
        events[:2].write_csv(tmp_path / "events" / "part-0.csv")
        events[2:].write_csv(tmp_path / "events" / "part-1.csv")
    source = FileSource(
        kind=kind,  # type: ignore[arg-type]
        assignments=str(tmp_path / f"assignments.{kind}"),
        events=str(tmp_path / "events" / f"*.{kind}"),
    )
    a, e = _collect(read_experiment("files", source, "exp"))
    exp_a, exp_e = _expected()
    assert_frame_equal(a, exp_a)
    assert_frame_equal(e, exp_e)


def test_column_mapping(tmp_path: Path) -> None:
    _assignments().rename({"unit_id": "user_id"}).write_parquet(tmp_path / "a.parquet")
    _events().rename({"unit_id": "user_id", "ts": "occurred_at"}).write_parquet(
        tmp_path / "e.parquet"
    )
    source = FileSource(
        kind="parquet",
        assignments=str(tmp_path / "a.parquet"),
        events=str(tmp_path / "e.parquet"),
        columns={"unit_id": "user_id", "ts": "occurred_at"},
    )
    a, e = _collect(read_experiment("files", source, "exp"))
    exp_a, exp_e = _expected()
    assert_frame_equal(a, exp_a)
    assert_frame_equal(e, exp_e)


def test_safe_conversions(tmp_path: Path) -> None:
    """Integer values become floats, other zones become UTC, ns become us."""
    events = _events().with_columns(
        pl.col("ts").dt.convert_time_zone("Europe/Paris").dt.cast_time_unit("ns"),
        pl.Series("value", [None, None, 120, None, None], dtype=pl.Int32),
    )
    _assignments().write_parquet(tmp_path / "a.parquet")
    events.write_parquet(tmp_path / "e.parquet")
    source = FileSource(
        kind="parquet", assignments=str(tmp_path / "a.parquet"), events=str(tmp_path / "e.parquet")
    )
    _, e = _collect(read_experiment("files", source, "exp"))
    _, exp_e = _expected()
    assert_frame_equal(e, exp_e.with_columns(pl.col("value").round(0)))


@pytest.mark.parametrize(
    ("mutate", "column", "found"),
    [
        (lambda e: e.drop("event"), "event", "no such column"),
        (lambda e: e.with_columns(pl.col("ts").dt.replace_time_zone(None)), "ts", "naive"),
        (lambda e: e.with_columns(pl.col("value").cast(pl.String)), "value", "String"),
        (lambda e: e.with_columns(pl.col("ts").dt.date()), "ts", "Date"),
    ],
)
def test_schema_errors_name_table_column_expected_found(
    tmp_path: Path, mutate: object, column: str, found: str
) -> None:
    _assignments().write_parquet(tmp_path / "a.parquet")
    mutate(_events()).write_parquet(tmp_path / "e.parquet")  # type: ignore[operator]
    source = FileSource(
        kind="parquet", assignments=str(tmp_path / "a.parquet"), events=str(tmp_path / "e.parquet")
    )
    with pytest.raises(SourceSchemaError) as info:
        _collect(read_experiment("files", source, "exp"))
    err = info.value
    assert (err.source, err.table, err.column) == ("files", "events", column)
    assert found in err.found
    assert "events" in str(err)
    assert column in str(err)


def test_missing_files_and_database(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="proof simulate"):
        read_experiment("w", DuckDBSource(kind="duckdb", path=tmp_path / "none.duckdb"), "exp")
    source = FileSource(kind="parquet", assignments=str(tmp_path / "*.parquet"), events="x")
    with pytest.raises(SourceError, match="no parquet file matches"):
        read_experiment("files", source, "exp")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with throwaway_schema("proof_test") as (con, name):
        con.execute(
            f"CREATE TABLE {name}.assignments (experiment_id text, user_id text, variant text,"
            " assigned_at timestamptz, platform text)"
        )
        con.execute(
            f"CREATE TABLE {name}.events (event_id text, user_id text, ts timestamptz,"
            " event text, value double precision, task_id text)"
        )
        with con.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {name}.assignments VALUES (%s, %s, %s, %s, %s)",
                _assignments().rows(),
            )
            cur.executemany(
                f"INSERT INTO {name}.events VALUES (%s, %s, %s, %s, %s, %s)", _events().rows()
            )
        yield name


def test_sql_source_postgres(pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROOF_TEST_PG_URI", PG_URI)
    source = SqlSource(
        kind="sql",
        uri_env="PROOF_TEST_PG_URI",
        assignments=f"{pg_schema}.assignments",
        events=f"{pg_schema}.events",
        columns={"unit_id": "user_id"},
    )
    a, e = _collect(read_experiment("postgres", source, "exp"))
    exp_a, exp_e = _expected()
    assert_frame_equal(a, exp_a)
    assert_frame_equal(e, exp_e)


def test_sql_source_needs_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROOF_TEST_UNSET_URI", raising=False)
    source = SqlSource(kind="sql", uri_env="PROOF_TEST_UNSET_URI", assignments="a", events="e")
    with pytest.raises(SourceError, match="PROOF_TEST_UNSET_URI is not set"):
        read_experiment("postgres", source, "exp")


def test_sql_errors_do_not_leak_credentials(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_uri = "postgresql://postgres:s3cret-pass@127.0.0.1:5432/test"
    monkeypatch.setenv("PROOF_TEST_PG_URI", secret_uri)
    source = SqlSource(
        kind="sql", uri_env="PROOF_TEST_PG_URI", assignments="no_such.table", events="x.y"
    )
    with pytest.raises(SourceError) as info:
        read_experiment("postgres", source, "exp")
    assert "s3cret-pass" not in str(info.value)
    assert "postgres" in str(info.value)
