"""Broken inputs from real sources: each gives a clear error, or a warning and exact counts.

Every case runs the analysis side of a run as the flow does it — read the
source, split off the quarantine, validate, measure the used rows — and checks
the documented outcome (docs/validation.md). None may crash with a traceback
from deep inside a library, and none may lose a row.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest

from analysis.config.experiments import Experiment
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource, FileSource, SqlSource
from analysis.engines.polars_measure import measure
from analysis.measurement import Cleaning
from analysis.quarantine import QuarantineResult, collect_tables
from analysis.sources.coverage import event_coverage
from analysis.sources.errors import SourceError, SourceSchemaError
from analysis.sources.read import read_experiment
from analysis.suites.params import experiment_period
from analysis.validation.experiment import check_experiment
from analysis.validation_report import (
    CriticalValidationError,
    ExpectationOutcome,
    ValidationReport,
    format_summary,
)
from tests import validation_factories as f
from tests.pg_factories import duckdb_file

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
METRICS = [CONFIG.metrics[m] for m in ("task_completion_rate", "time_on_task", "trust_score")]
SOURCE = "warehouse"


@dataclass
class Run:
    quarantine: QuarantineResult
    report: ValidationReport

    def warning(self, reason_or_type: str) -> ExpectationOutcome:
        return next(
            o for o in self.report.warnings() if reason_or_type in (o.reason, o.expectation)
        )


def _run(source: DuckDBSource | FileSource, experiment: Experiment | None = None) -> Run:
    """The analysis side of a run; raises CriticalValidationError like the flow."""
    experiment = experiment or f.experiment()
    period = experiment_period(experiment, f.AS_OF)  # as the flow reads
    raw = collect_tables(read_experiment(SOURCE, source, experiment.id, null_units=period))
    since = dt.datetime.combine(f.START - dt.timedelta(days=14), dt.time(), dt.UTC)
    coverage = event_coverage(SOURCE, source, since, f.NOW)
    checked = check_experiment(raw, experiment, f.AS_OF, now=f.NOW, coverage=coverage)
    quarantine, report = checked.quarantine, checked.report
    if not report.success:
        raise CriticalValidationError(report.summary())
    for table in ("assignments", "events"):  # nothing is lost
        assert quarantine.rows_in[table] == raw[table].height
        assert raw[table].height == (
            quarantine.rows_used[table] + quarantine.rows_quarantined[table]
        )
    measurement = measure(quarantine.tables(), experiment, METRICS, f.AS_OF)
    assert sum(measurement.cleaning.units.values()) == quarantine.analysed_units(f.AS_OF)
    assert format_summary(report.summary())
    return Run(quarantine, report)


# --------------------------------------------------------------------------- clear errors


def test_a_missing_table_is_named_with_the_tables_there(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.register("a", f.assignments().to_arrow())
        con.execute("CREATE TABLE assignments AS SELECT * FROM a")
    with pytest.raises(SourceError) as info:
        read_experiment(SOURCE, DuckDBSource(kind="duckdb", path=path), "exp")
    message = str(info.value)
    assert "table 'events' (the events table) does not exist" in message
    assert "tables there: assignments" in message


@pytest.mark.parametrize(
    ("break_events", "column", "says"),
    [
        (lambda e: e.drop("unit_id"), "unit_id", "no such column; has: event_id, ts"),
        (lambda e: e.with_columns(pl.col("value").cast(pl.String)), "value", "found String"),
        (
            lambda e: e.with_columns(pl.col("ts").dt.replace_time_zone(None)),
            "ts",
            "timezone-naive timestamps",
        ),
    ],
    ids=["missing-column", "wrong-type", "timezone-naive"],
)
def test_schema_problems_name_table_column_expected_and_found(
    tmp_path: Path, break_events: Callable[[pl.DataFrame], pl.DataFrame], column: str, says: str
) -> None:
    source = duckdb_file(tmp_path / "w.duckdb", f.assignments(), break_events(f.events()))
    with pytest.raises(SourceSchemaError) as info:
        _run(source)
    assert (info.value.source, info.value.table, info.value.column) == (SOURCE, "events", column)
    assert says in str(info.value)


def test_an_empty_csv_file_says_so(tmp_path: Path) -> None:
    f.assignments().write_csv(tmp_path / "a.csv")
    (tmp_path / "e.csv").write_text("")
    source = FileSource(
        kind="csv", assignments=str(tmp_path / "a.csv"), events=str(tmp_path / "e.csv")
    )
    with pytest.raises(SourceError, match=r"the events file .*e\.csv is empty"):
        _run(source)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_fails_fast_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _closed_port()
    monkeypatch.setenv("PROOF_TEST_DOWN_URI", f"postgresql://proof:s3cret@127.0.0.1:{port}/db")
    source = SqlSource(kind="sql", uri_env="PROOF_TEST_DOWN_URI", assignments="a", events="e")
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        read_experiment("postgres", source, "exp")
    assert time.monotonic() - started < 5  # the driver alone retries for ~30 s
    message = str(info.value)
    assert f"source 'postgres': cannot reach the database at 127.0.0.1:{port}" in message
    assert "refused" in message.lower()
    assert "s3cret" not in message
    assert "proof:" not in message


@pytest.mark.parametrize("other_experiments", [False, True], ids=["empty-table", "not-started"])
def test_an_experiment_without_assignments_stops_with_a_clear_message(
    tmp_path: Path, other_experiments: bool
) -> None:
    assignments = f.assignments().head(0)
    if other_experiments:
        assignments = f.assignments().with_columns(pl.lit("other").alias("experiment_id"))
    source = duckdb_file(tmp_path / "w.duckdb", assignments, f.events())
    with pytest.raises(CriticalValidationError) as info:
        _run(source)
    message = str(info.value)
    assert (
        "table 'assignments', column None: expect_table_row_count_to_be_between failed" in message
    )
    assert "(found 0)" in message
    assert "experiment exp has no assignments yet" in message


def test_null_keys_stop_the_run_and_say_where(tmp_path: Path) -> None:
    events = f.set_rows(f.events(), [5, 6, 7], event_id=None)
    with pytest.raises(CriticalValidationError) as info:
        _run(duckdb_file(tmp_path / "w.duckdb", f.assignments(), events))
    assert (
        "table 'events', column 'event_id': expect_column_values_to_not_be_null failed "
        "(3 of 216 rows), rule null_event_id" in str(info.value)
    )


def test_many_unknown_variants_mean_a_wrong_config_and_stop_the_run(tmp_path: Path) -> None:
    assignments = f.set_rows(f.assignments(), [1, 3, 5], variant="treatment")
    with pytest.raises(CriticalValidationError) as info:
        _run(duckdb_file(tmp_path / "w.duckdb", assignments, f.events()))
    message = str(info.value)
    assert "table 'assignments', column 'variant': expect_column_values_to_be_in_set" in message
    assert "(3 of 12 rows), rule unknown_variant; e.g. unit_id=u01, variant=treatment" in message


# --------------------------------------------------------------------------- warnings and counts


def test_a_few_unknown_variants_are_quarantined_with_a_warning(tmp_path: Path) -> None:
    assignments = f.set_rows(f.assignments(), [1], variant="treatment")
    experiment = f.experiment(max_unknown_variant_share=0.1)
    run = _run(duckdb_file(tmp_path / "w.duckdb", assignments, f.events()), experiment)
    assert run.warning("unknown_variant").unexpected_count == 1
    assert run.quarantine.counts["assignments"] == {"unknown_variant": 1}
    assert run.quarantine.counts["events"] == {"unit_assignment_quarantined": 18}


def test_duplicated_event_ids_keep_one_copy(tmp_path: Path) -> None:
    events = f.events()
    events = pl.concat([events, events[[0, 1, 2]], events[[0]]])
    run = _run(duckdb_file(tmp_path / "w.duckdb", f.assignments(), events))
    assert run.warning("duplicate_event_id").unexpected_count == 7  # GX: every copy
    assert run.quarantine.counts["events"] == {"duplicate_event_id": 4}
    assert run.quarantine.cleaning(Cleaning(0, 0, 0, {})).duplicates_dropped == 4


def test_crossovers_are_excluded_and_counted(tmp_path: Path) -> None:
    crossed = f.assignments()[[0, 2]].with_columns(pl.lit("ai").alias("variant"))
    assignments = pl.concat([f.assignments(), crossed])
    run = _run(duckdb_file(tmp_path / "w.duckdb", assignments, f.events()))
    assert run.warning("crossover").unexpected_count == 4
    assert run.quarantine.counts == {
        "assignments": {"crossover": 4},
        "events": {"unit_crossed_over": 36},
    }
    assert run.quarantine.crossover_units == 2


def test_out_of_range_values_are_quarantined(tmp_path: Path) -> None:
    events = f.events()
    events = f.set_rows(events, f.rows_of(events, "task_completed")[:2], value=200_000.0)
    events = f.set_rows(events, f.rows_of(events, "trust_survey")[:3], value=0.0)
    run = _run(duckdb_file(tmp_path / "w.duckdb", f.assignments(), events))
    bad = {o.condition: o.unexpected_count for o in run.report.warnings()}
    assert bad == {'event=="task_completed"': 2, 'event=="trust_survey"': 3}
    assert run.quarantine.counts["events"] == {"value_out_of_range": 5}


def test_future_timestamps_are_quarantined(tmp_path: Path) -> None:
    events = f.set_rows(f.events(), [0, 1], ts=dt.datetime(2026, 12, 24, tzinfo=dt.UTC))
    run = _run(duckdb_file(tmp_path / "w.duckdb", f.assignments(), events))
    assert run.warning("ts_in_future").unexpected_count == 2
    assert run.quarantine.counts["events"] == {"ts_in_future": 2}


def test_events_of_unassigned_units_are_counted_not_quarantined(tmp_path: Path) -> None:
    events = f.events()
    strangers = events.head(24).with_columns(
        pl.format("stranger-{}", pl.int_range(pl.len())).alias("unit_id"),
        pl.format("s{}", pl.int_range(pl.len())).alias("event_id"),
    )  # 24 of 240 events: 10 %
    run = _run(duckdb_file(tmp_path / "w.duckdb", f.assignments(), pl.concat([events, strangers])))
    share = run.warning("expect_unassigned_event_share_to_be_at_most")
    assert (share.unexpected_count, share.element_count) == (24, 240)
    assert share.observed == pytest.approx(0.1)
    assert share.examples[0] == "unit_id=stranger-0"
    assert run.quarantine.counts["events"] == {}  # they never reach the experiment's tables


def test_an_experiment_without_events_yet_warns(tmp_path: Path) -> None:
    run = _run(duckdb_file(tmp_path / "w.duckdb", f.assignments(), f.events().head(0)))
    outcome = run.warning("expect_table_row_count_to_be_between")
    assert outcome.table == "events"
    assert outcome.explain == "no events yet for the units of exp"


def test_a_missing_sql_table_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
    except OSError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    monkeypatch.setenv("PROOF_TEST_PG_URI", "postgresql://postgres:pw@127.0.0.1:5432/test")
    source = SqlSource(
        kind="sql", uri_env="PROOF_TEST_PG_URI", assignments="nowhere.assignments", events="e"
    )
    with pytest.raises(SourceError) as info:
        read_experiment("postgres", source, "exp")
    message = str(info.value)
    assert "cannot read table 'nowhere.assignments' (the assignments table)" in message
    assert "pw@" not in message
