"""Validation and quarantine inside PostgreSQL give what the polars path gives.

Simulated data of both demo experiments (so the experiment filter matters),
with bad rows planted in smart-compose, is loaded into a throwaway schema
under the source's own column names (``user_id``, ``occurred_at``). The SQL
path (``analysis.sql``) is compared with the polars path over the
same rows read by ``analysis.sources.read.read_experiment``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analysis.aggregates import Moments
from analysis.config.load import load_config
from analysis.config.sources import SqlSource
from analysis.devtools.simulate import simulate
from analysis.engines import Checked, DatabaseEngine, RunOptions
from analysis.engines.polars_measure import measure
from analysis.quarantine import QuarantineResult, collect_tables
from analysis.sources.errors import SourceError
from analysis.sources.read import read_experiment
from analysis.sql.aggregate import measure_in_database
from analysis.sql.database import DIALECT, Database, sqlalchemy_url
from analysis.sql.gx import check_experiment_sql, validate_sql
from analysis.sql.quarantine import SqlQuarantine
from analysis.sql.rules import failing_predicate, passing_predicate
from analysis.suites.load import Expectation, load_suite
from analysis.suites.params import run_params
from analysis.validation_report import ValidationReport, format_summary
from tests.pg_factories import (
    PG_URI,
    assert_measured_like,
    assert_same_outcomes,
    assert_same_quantiles,
    assert_same_quarantine,
    assert_sufficient_statistics,
    copy_into,
    pg_type,
    planted,
    polars_check,
    polars_measured,
    throwaway_schema,
    with_percentile,
)

psycopg = pytest.importorskip("psycopg")

ENV = "PROOF_TEST_VSQL_URI"
CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
EXPERIMENT = CONFIG.experiment("smart-compose")
AS_OF = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 21, 6, tzinfo=dt.UTC)
#: contract name -> the source's own column name
COLUMNS = {"unit_id": "user_id", "ts": "occurred_at"}


def _planted() -> dict[str, pl.DataFrame]:
    """Both experiments simulated, bad rows (critical ones too) planted in smart-compose's."""
    data = simulate(list(CONFIG.experiments.values()), 150, AS_OF, seed=11)
    return planted(data, EXPERIMENT.id, NOW + dt.timedelta(days=3), critical=True)


def _pg_type(column: str, dtype: pl.DataType) -> str:
    if column == "user_id":
        return "varchar(40)"  # a length: the type check must still accept it
    return pg_type(column, dtype)


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    data = _planted()
    with throwaway_schema("proof_vsql") as (con, name):
        for table in ("assignments", "events"):
            frame = data[table].rename(COLUMNS, strict=False)
            copy_into(con, f"{name}.{table}", frame, _pg_type)
        yield name


@pytest.fixture(scope="module")
def source(pg_schema: str) -> Iterator[SqlSource]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, PG_URI)
        yield SqlSource(
            kind="sql",
            uri_env=ENV,
            assignments=f"{pg_schema}.assignments",
            events=f"{pg_schema}.events",
            columns=COLUMNS,
        )


@pytest.fixture(scope="module")
def raw(source: SqlSource) -> dict[str, pl.DataFrame]:
    """The same rows as the polars path reads them."""
    return collect_tables(read_experiment("pg", source, EXPERIMENT.id))


@pytest.fixture(scope="module")
def polars_path(raw: dict[str, pl.DataFrame]) -> tuple[QuarantineResult, ValidationReport]:
    return polars_check(raw, EXPERIMENT, AS_OF, NOW)


@pytest.fixture(scope="module")
def sql_path(source: SqlSource) -> tuple[SqlQuarantine, ValidationReport]:
    return check_experiment_sql(Database.open("pg", source), EXPERIMENT, AS_OF, now=NOW)


def test_planted_rows_are_in_the_data(
    polars_path: tuple[QuarantineResult, ValidationReport],
) -> None:
    held, _ = polars_path
    for reason in (
        "null_unit_id", "unknown_variant", "assigned_out_of_range", "crossover",
        "duplicate_assignment",
    ):  # fmt: skip
        assert held.counts["assignments"].get(reason), reason
    for reason in (
        "null_event_id", "null_ts", "ts_in_future", "ts_before_window", "value_out_of_range",
        "duplicate_event_id", "unit_assignment_quarantined", "unit_crossed_over",
    ):  # fmt: skip
        assert held.counts["events"].get(reason), reason


def test_sql_validation_gives_the_polars_outcomes(
    polars_path: tuple[QuarantineResult, ValidationReport],
    sql_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    _, expected = polars_path
    _, got = sql_path
    assert_same_outcomes(expected, got)
    assert not got.success  # null keys are critical, in both
    assert got.quarantine == expected.quarantine
    failed = {o.key for o in got.outcomes if not o.success}
    assert failed == {o.key for o in expected.outcomes if not o.success}
    text = format_summary(got.summary(), EXPERIMENT.id)
    assert "validation FAILED" in text
    assert "quarantined from events" in text


def test_sql_examples_name_the_row(sql_path: tuple[SqlQuarantine, ValidationReport]) -> None:
    _, got = sql_path
    nulls = next(o for o in got.outcomes if o.reason == "null_ts")
    assert nulls.examples == ("event_id=x-nots, ts=null",)
    future = next(o for o in got.outcomes if o.reason == "ts_in_future")
    assert future.examples[0].startswith("event_id=x-future, ts=2026-11-24")


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def test_sql_quarantine_gives_the_rows_and_reasons_of_split(
    polars_path: tuple[QuarantineResult, ValidationReport],
    sql_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    expected, _ = polars_path
    got, _ = sql_path
    assert_same_quarantine(got, expected)


def test_passing_predicate_pushes_the_row_rules_down(
    source: SqlSource, polars_path: tuple[QuarantineResult, ValidationReport]
) -> None:
    held, _ = polars_path
    params = run_params(EXPERIMENT, AS_OF, NOW)
    suite = load_suite("events", params)
    row_reasons = {str(e.reason) for e in suite.row_level()} - {"duplicate_event_id"}
    expected = held.rows_in["events"] - sum(
        n for r, n in held.counts["events"].items() if r in row_reasons
    )
    where = passing_predicate(suite, COLUMNS, table="e").sql(dialect=DIALECT)
    assert '"e"."user_id"' in where  # contract names mapped to the source's own
    assert '"e"."occurred_at"' in where
    assert "unit_id" not in where
    query = (
        f"SELECT count(*) FROM {source.events} AS e WHERE e.user_id IN (SELECT user_id FROM"
        f" {source.assignments} WHERE experiment_id = %s) AND {where}"
    )
    with psycopg.connect(PG_URI) as con:
        row = con.execute(query, (EXPERIMENT.id,)).fetchone()
    assert row is not None
    assert row[0] == expected


def test_literals_and_names_are_built_not_pasted() -> None:
    rule = Expectation(
        "events.x",
        "events",
        "expect_column_values_to_be_between",
        {"column": 'va"lue', "min_value": 0, "row_condition": 'event=="it\'s; DROP TABLE x"'},
        {"reason": "value_out_of_range", "row_level": True},
    )
    sql = failing_predicate(rule, {"event": "ev ent"}).sql(dialect=DIALECT)
    assert "'it''s; DROP TABLE x'" in sql
    assert '"va""lue"' in sql
    assert '"ev ent"' in sql


def test_sqlalchemy_url() -> None:
    assert sqlalchemy_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert sqlalchemy_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert sqlalchemy_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    with pytest.raises(ValueError, match="PostgreSQL"):
        sqlalchemy_url("mysql://h/db")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("postgresql://postgres:s3cret-pass@127.0.0.1:1/test", "cannot reach the database at"),
        ("postgresql://postgres:s3cret-pass@127.0.0.1:5432/no_such_db", "cannot connect"),
        ("mysql://root:s3cret-pass@127.0.0.1:5432/test", "supports PostgreSQL"),
    ],
)
def test_a_bad_database_is_named_without_its_password(
    uri: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROOF_TEST_VSQL_BAD", uri)
    src = SqlSource(kind="sql", uri_env="PROOF_TEST_VSQL_BAD", assignments="a", events="e")
    with pytest.raises(SourceError) as info:
        validate_sql(Database.open("analytics-pg", src), EXPERIMENT, AS_OF, now=NOW)
    text = str(info.value)
    assert "'analytics-pg'" in text
    assert message in text
    assert "s3cret-pass" not in text


def test_a_missing_table_or_variable_is_named(
    source: SqlSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = source.model_copy(update={"events": "no_such_schema.events"})
    with pytest.raises(SourceError, match=r"'no_such_schema.events' \(the events table\)"):
        validate_sql(Database.open("pg", missing), EXPERIMENT, AS_OF, now=NOW)
    monkeypatch.delenv(ENV)
    with pytest.raises(SourceError, match=f"{ENV} is not set"):
        validate_sql(Database.open("pg", source), EXPERIMENT, AS_OF, now=NOW)


def test_without_temporary_tables_the_outcomes_are_the_same(
    source: SqlSource, sql_path: tuple[SqlQuarantine, ValidationReport]
) -> None:
    _, with_temp = sql_path
    plain = validate_sql(Database.open("pg", source), EXPERIMENT, AS_OF, now=NOW, temp_table=False)
    assert [(o.key, o.success, o.unexpected_count) for o in plain.outcomes] == [
        (o.key, o.success, o.unexpected_count) for o in with_temp.outcomes
    ]


# --------------------------------------------------------------------------- push-down


def _close_moments(got: Moments, want: Moments, what: str) -> None:
    assert got.n == want.n, f"{what}: n {got.n} != {want.n}"
    for name in ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy"):
        a, b = getattr(got, name), getattr(want, name)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), f"{what}.{name}: {a} != {b}"


def test_the_kept_rows_aggregate_inside_the_database_as_the_polars_path(
    source: SqlSource,
    polars_path: tuple[QuarantineResult, ValidationReport],
    sql_path: tuple[SqlQuarantine, ValidationReport],
) -> None:
    """The polars path measures the used rows of split; push-down those of used_rows()."""
    held, _ = polars_path
    metrics = CONFIG.metrics_of(EXPERIMENT)
    want = measure(held.tables(), EXPERIMENT, metrics, AS_OF, unique_events=True)
    in_database, report = sql_path
    checked = Checked(report, in_database.quarantined, in_database, NOW)
    got = DatabaseEngine("pg", source, RunOptions()).measure(checked, EXPERIMENT, metrics, AS_OF)
    assert got.computed_in is not None
    assert got.computed_in.dialect == DIALECT
    assert got.cleaning == held.cleaning(want.cleaning)
    assert got.cleaning.duplicates_dropped > 0
    assert got.cleaning.crossovers_excluded > 0
    assert got.data.moments.keys() == want.data.moments.keys()
    for metric, by_variant in want.data.moments.items():
        assert got.data.moments[metric].keys() == by_variant.keys(), metric
        for variant, m in by_variant.items():
            _close_moments(got.data.moments[metric][variant], m, f"{metric}/{variant}")
    assert want.data.joint
    assert got.data.joint.keys() == want.data.joint.keys()
    for metric, by_variant in want.data.joint.items():
        for variant, joint in by_variant.items():
            mine = got.data.joint[metric][variant]
            assert mine.n == joint.n, metric
            assert np.allclose(mine.means, joint.means, rtol=1e-9, atol=1e-9), metric
            assert np.allclose(mine.comoments, joint.comoments, rtol=1e-9, atol=1e-9), metric
    assert got.segments.keys() == want.segments.keys() == set(EXPERIMENT.segments)
    for dim, by_metric in want.segments.items():
        for metric, by_value in by_metric.items():
            assert list(got.segments[dim][metric]) == list(by_value), (dim, metric)
            for value, by_variant in by_value.items():
                for variant, m in by_variant.items():
                    _close_moments(got.segments[dim][metric][value][variant], m, f"{dim}={value}")
    assert_same_quantiles(got.data.quantiles, want.data.quantiles)
    # the planted rows are not in the aggregation: without the quarantine, the numbers differ
    raw = measure_in_database("pg", source, EXPERIMENT, metrics, AS_OF)
    assert raw.cleaning.units != got.cleaning.units or raw.data.moments != got.data.moments


@pytest.mark.parametrize("percentile", [None, 0.95], ids=["plain", "winsorised"])
def test_every_section_is_measured_inside_the_database_as_the_polars_path(
    source: SqlSource,
    polars_path: tuple[QuarantineResult, ValidationReport],
    sql_path: tuple[SqlQuarantine, ValidationReport],
    percentile: float | None,
) -> None:
    """Both engines' measurements of the kept rows, section by section: moments, CUPED,
    segments, quantile samples, both timelines, the funnel and the histograms; winsorised,
    the caps are pooled quantiles per event (ratio numerators that add up values, in the
    window and the pre-period) and per unit (mean metrics), computed in SQL."""
    experiment = with_percentile(EXPERIMENT, percentile)
    held, _ = polars_path
    metrics = CONFIG.metrics_of(experiment)
    want = polars_measured(held, experiment, metrics, AS_OF, NOW)
    if percentile is not None:  # the caps bite: the statistics differ from the plain ones
        plain = measure(held.tables(), EXPERIMENT, metrics, AS_OF, unique_events=True)
        assert want.data.moments["time_on_task"] != plain.data.moments["time_on_task"]
        assert (
            want.data.moments["support_tickets_per_user"]
            != (plain.data.moments["support_tickets_per_user"])
        )
    in_database, report = sql_path
    checked = Checked(report, in_database.quarantined, in_database, NOW)
    got = DatabaseEngine("pg", source, RunOptions()).measure(checked, experiment, metrics, AS_OF)
    assert want.unit_validation is not None
    assert want.unit_validation.success
    assert_measured_like(got, replace(want, cleaning=held.cleaning(want.cleaning)))
    assert got.computed_in is not None
    assert_sufficient_statistics(got.computed_in.rows_returned, experiment, AS_OF)
