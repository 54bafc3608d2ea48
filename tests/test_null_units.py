"""Null keys: a few bad rows warn and the run goes on; events without a unit are counted.

Point 9: a few null ``unit_id``s among many assignment rows are quarantined
with a warning; above ``validation.max_null_key_share`` of the rows the run
stops, naming table, column, rule and count (the ``critical_share`` rule of
``unknown_variant``, not a second copy of it).

Point 10: events whose ``unit_id`` is null cannot be joined to any
assignment, so reading "the events of the experiment's units" dropped them
unseen. The events without a unit whose ``ts`` falls in the experiment's
period (start minus the pre-period, to the end of the analysis date) are
read, counted by a warning and quarantined as ``null_unit_id``.

Every case runs the read as the flow does it (its engine, :func:`analysis.engines.engine_for`), then
the checks; the in-database paths are checked against the same counts.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import duckdb
import polars as pl
import pytest

from analysis import schema
from analysis.config.experiments import Experiment, ValidationOptions
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource, FileSource, SqlSource
from analysis.engines import Checked, RunOptions, engine_for
from analysis.engines.polars_measure import measure
from analysis.quarantine import QuarantineResult
from analysis.report.publish import write_quarantine
from analysis.sql.database import Database
from analysis.sql.gx import check_experiment_sql
from analysis.suites.load import load_suite
from analysis.suites.params import run_params
from analysis.validation.tables import validate_tables
from analysis.validation_report import CriticalValidationError, ExpectationOutcome
from tests import validation_factories as f
from tests.pg_factories import PG_URI, copy_into, throwaway_schema

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
METRICS = [CONFIG.metrics[m] for m in ("task_completion_rate", "time_on_task")]
SOURCE = "warehouse"
ENV = "PROOF_TEST_NULL_UNITS_URI"
#: the issue's numbers: 5 null unit_ids in 50,055 assignment rows
CLEAN_UNITS = 50_050
NULL_UNITS = 5

AnySource = DuckDBSource | FileSource | SqlSource
MakeSource = Callable[[str, dict[str, pl.DataFrame]], AnySource]


def _write_duckdb(path: Path, tables: dict[str, pl.DataFrame]) -> DuckDBSource:
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone='UTC'")
        for name, frame in tables.items():
            con.register("frame", frame.to_arrow())
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    return DuckDBSource(kind="duckdb", path=path)


def _write_parquet(directory: Path, tables: dict[str, pl.DataFrame]) -> FileSource:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(directory / f"{name}.parquet")
    return FileSource(
        kind="parquet",
        assignments=str(directory / "assignments.parquet"),
        events=str(directory / "events.parquet"),
    )


@pytest.fixture
def make_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeSource]:
    """Write the tables to a source of a kind: a DuckDB file, parquet files or PostgreSQL."""
    with ExitStack() as stack:

        def make(kind: str, tables: dict[str, pl.DataFrame]) -> AnySource:
            if kind == "duckdb":
                return _write_duckdb(tmp_path / "w.duckdb", tables)
            if kind == "parquet":
                return _write_parquet(tmp_path / "files", tables)
            con, name = stack.enter_context(throwaway_schema("proof_nullunits"))
            for table, frame in tables.items():
                copy_into(con, f"{name}.{table}", frame)
            monkeypatch.setenv(ENV, PG_URI)
            return SqlSource(
                kind="sql", uri_env=ENV, assignments=f"{name}.assignments", events=f"{name}.events"
            )

        yield make


def _check(
    source: AnySource, experiment: Experiment
) -> tuple[Mapping[str, int], Checked[QuarantineResult]]:
    """Read, split and validate as a run does (its engine); raises CriticalValidationError.

    Returns the rows read per table, and what the checks found.
    """
    engine = engine_for(SOURCE, source, RunOptions(now=f.NOW))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = engine.check(experiment, f.AS_OF)
    held = checked.kept
    for table in ("assignments", "events"):  # nothing is lost
        assert held.rows_in[table] == held.rows_used[table] + held.rows_quarantined[table]
        assert held.rows_quarantined[table] == sum(held.counts[table].values())
    return held.rows_in, checked


def _failed(checked: Checked[QuarantineResult], table: str, reason: str) -> ExpectationOutcome:
    return next(
        o
        for o in checked.report.outcomes
        if not o.success and o.table == table and o.reason == reason
    )


# --------------------------------------------------------------------------- point 9


def _assignments_with_null_units(clean: int = CLEAN_UNITS, nulls: int = NULL_UNITS) -> pl.DataFrame:
    # assigned during the first day, whatever the number of units
    a = f.assignments(clean).with_columns(
        (pl.lit(f.T0) + pl.duration(seconds=pl.int_range(pl.len()) % 36_000))
        .cast(schema.UTC_MICROS)
        .alias("assigned_at")
    )
    stray = f.assignments(nulls).with_columns(pl.lit(None, dtype=pl.String).alias("unit_id"))
    return pl.concat([a, stray])


def test_a_few_null_unit_ids_in_assignments_warn_and_the_run_goes_on(
    make_source: MakeSource,
) -> None:
    tables = {"assignments": _assignments_with_null_units(), "events": f.events()}
    source = make_source("duckdb", tables)
    experiment = f.experiment()
    _, checked = _check(source, experiment)  # no CriticalValidationError

    outcome = _failed(checked, "assignments", "null_unit_id")
    assert outcome.severity == "warning"
    assert (outcome.unexpected_count, outcome.element_count) == (5, 50_055)
    assert outcome.column == "unit_id"
    assert "0.001" in (outcome.explain or "")  # says where the run would stop
    assert checked.report.success
    assert checked.kept.counts["assignments"] == {"null_unit_id": 5}
    assert checked.kept.counts["events"] == {}
    quarantined = checked.kept.quarantined["assignments"]
    assert quarantined.get_column("unit_id").null_count() == 5
    assert set(quarantined.get_column("reason")) == {"null_unit_id"}
    # the statistics run on the used rows
    measurement = measure(checked.kept.tables(), experiment, METRICS, f.AS_OF)
    assert sum(measurement.cleaning.units.values()) == CLEAN_UNITS
    assert sum(measurement.cleaning.units.values()) == checked.kept.analysed_units(f.AS_OF)


def test_null_unit_ids_above_the_share_stop_the_run_naming_table_column_rule_and_count(
    make_source: MakeSource,
) -> None:
    tables = {"assignments": _assignments_with_null_units(), "events": f.events()}
    source = make_source("duckdb", tables)
    strict = f.experiment(max_null_key_share=0.00005)  # 5 of 50,055 is 0.0001
    with pytest.raises(CriticalValidationError) as info:
        _check(source, strict)
    message = str(info.value)
    assert (
        "table 'assignments', column 'unit_id': expect_column_values_to_not_be_null failed "
        "(5 of 50,055 rows), rule null_unit_id" in message
    )
    assert "above a share of 5e-05 of the rows the run stops" in message


def test_the_default_share_stops_a_run_with_many_null_keys() -> None:
    # 5 of 1,005 rows (0.5 %) is above the default 0.1 %
    assert ValidationOptions().max_null_key_share == 0.001
    a = _assignments_with_null_units(1_000)
    report = validate_tables(
        {"assignments": a}, experiment=f.experiment(), as_of=f.AS_OF, now=f.NOW
    )
    outcome = next(o for o in report.outcomes if o.reason == "null_unit_id")
    assert (outcome.severity, outcome.unexpected_count, outcome.element_count) == (
        "critical",
        5,
        1_005,
    )
    assert not report.success


@pytest.mark.parametrize(
    ("table", "column", "rows"),
    [
        ("assignments", "experiment_id", [3]),
        ("assignments", "variant", [3]),
        ("assignments", "assigned_at", [3]),
        ("events", "event_id", [7]),
        ("events", "ts", [7]),
        ("events", "event", [7]),
    ],
)
def test_every_null_key_follows_the_one_share_rule(
    table: str, column: str, rows: list[int]
) -> None:
    frame = f.tables()[table]
    frame = f.set_rows(frame, rows, **{column: None})
    share = len(rows) / frame.height

    def severity(limit: float) -> str:
        report = validate_tables(
            {table: frame},
            experiment=f.experiment(max_null_key_share=limit),
            as_of=f.AS_OF,
            now=f.NOW,
        )
        outcome = next(o for o in report.outcomes if o.reason == f"null_{column}")
        assert outcome.unexpected_count == len(rows)
        return outcome.severity

    assert severity(share) == "warning"  # at the share: quarantined and warned
    assert severity(share * 0.99) == "critical"  # above it: the run stops


def test_the_null_key_rules_take_their_share_from_the_config() -> None:
    params = run_params(f.experiment(max_null_key_share=0.02), f.AS_OF, f.NOW)
    for table in ("assignments", "events"):
        suite = load_suite(table, params)
        for e in suite.row_level():
            if e.type == "expect_column_values_to_not_be_null" and e.reason != (
                "null_unit_id" if table == "events" else None
            ):
                assert (e.severity, e.critical_share) == ("warning", 0.02), e.key


# --------------------------------------------------------------------------- point 10


def _unitless(ts: list[dt.datetime | None], prefix: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": [f"{prefix}{i}" for i in range(len(ts))],
            "unit_id": [None] * len(ts),
            "ts": ts,
            "event": ["task_started"] * len(ts),
            "value": [None] * len(ts),
            "task_id": [f"tn{i}" for i in range(len(ts))],
            "label": [None] * len(ts),
        },
        schema=schema.EVENTS,
    )


SINCE = dt.datetime(2026, 9, 17, tzinfo=dt.UTC)  # start minus 14 days of pre-period
UNTIL = dt.datetime(2026, 10, 4, tzinfo=dt.UTC)  # the end of the analysis date
#: from the first instant of the pre-period to the last hours of the analysis date
IN_PERIOD_TS = [SINCE, *(f.T0 + dt.timedelta(hours=3 * i) for i in range(-40, 21))]
IN_PERIOD = len(IN_PERIOD_TS)


def _events_with_null_units() -> pl.DataFrame:
    assert min(IN_PERIOD_TS) == SINCE
    assert max(IN_PERIOD_TS) < UNTIL
    before = [dt.datetime(2026, 9, 1, tzinfo=dt.UTC), SINCE - dt.timedelta(microseconds=1)]
    after = [UNTIL, UNTIL + dt.timedelta(hours=3)]  # before the run's now: the next night's
    return pl.concat(
        [
            f.events(),
            _unitless(list(IN_PERIOD_TS), "n"),  # the experiment's period
            _unitless(before, "b"),  # before its pre-period
            _unitless(after, "a"),  # after the analysis date
            _unitless([None], "x"),  # no unit and no time: no period holds it
        ]
    )


@pytest.mark.parametrize("kind", ["duckdb", "parquet", "sql"])
def test_events_without_a_unit_are_counted_and_quarantined(
    make_source: MakeSource, kind: str, tmp_path: Path
) -> None:
    tables = {"assignments": f.assignments(), "events": _events_with_null_units()}
    source = make_source(kind, tables)
    rows_in, checked = _check(source, f.experiment())  # a warning, not a stop

    assert rows_in["events"] == f.events().height + IN_PERIOD
    outcome = _failed(checked, "events", "null_unit_id")
    assert outcome.severity == "warning"
    assert (outcome.unexpected_count, outcome.element_count) == (IN_PERIOD, rows_in["events"])
    assert outcome.column == "unit_id"
    assert checked.report.success
    held = checked.kept
    assert held.counts["events"] == {"null_unit_id": IN_PERIOD}
    assert held.unassigned_events == 0
    # not also counted as "events of units no assignment names"
    share = next(
        o for o in checked.report.outcomes if o.expectation.endswith("share_to_be_at_most")
    )
    assert (share.success, share.unexpected_count) == (True, 0)
    assert share.element_count == f.events().height
    # in the quarantine file, with a reason, like other quarantined rows
    written = pl.read_parquet(write_quarantine(tmp_path / "run", held.quarantined)["events"])
    assert written.height == IN_PERIOD
    assert written.get_column("unit_id").null_count() == IN_PERIOD
    assert set(written.get_column("reason")) == {"null_unit_id"}
    assert set(written.get_column("event_id")) == {f"n{i}" for i in range(IN_PERIOD)}


@pytest.mark.parametrize("kind", ["duckdb", "sql"])
def test_events_without_a_unit_inside_the_database(make_source: MakeSource, kind: str) -> None:
    tables = {"assignments": f.assignments(), "events": _events_with_null_units()}
    source = make_source(kind, tables)
    if isinstance(source, DuckDBSource):
        source = source.model_copy(update={"validate_in_database": True})
    experiment = f.experiment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        held, report = check_experiment_sql(
            Database.open(SOURCE, source), experiment, f.AS_OF, now=f.NOW
        )
    assert held.counts["events"] == {"null_unit_id": IN_PERIOD}
    assert held.rows_in["events"] == f.events().height + IN_PERIOD
    assert held.rows["events"].get_column("unit_id").null_count() == IN_PERIOD
    outcome = next(o for o in report.outcomes if o.reason == "null_unit_id" and o.table == "events")
    assert (outcome.success, outcome.severity, outcome.unexpected_count) == (
        False,
        "warning",
        IN_PERIOD,
    )
    assert report.success


def test_the_period_of_an_experiment() -> None:
    from analysis.suites.params import experiment_period

    since, until = experiment_period(f.experiment(), f.AS_OF)
    assert (since, until) == (SINCE, UNTIL)
