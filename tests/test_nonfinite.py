"""NaN and ±inf values: quarantined with a reason, counted alike everywhere, never in a statistic.

Issue 14 ("Nothing blocked, nothing lost"), item 4. GX's pandas engine reads a
NaN as a missing value, so its range rules skipped the NaN rows the
quarantine set aside (417 against 8,713), and ``+inf`` latencies passed every
rule (``ai_latency >= 0``) and turned the p95 latency guardrail into null.

Planted here: NaN, +inf and -inf values of ``ai_latency`` and
``task_completed`` events, and a NaN of an event without a value rule. Each
path — polars with GX over pandas, GX and the quarantine inside DuckDB, and
inside PostgreSQL — must quarantine exactly those rows as
``non_finite_value``, report the same count from GX, keep rows in = used +
quarantined, and compute the p95 latency from the finite values.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest

from analysis import schema
from analysis.comparisons import compare_all
from analysis.config.experiments import Experiment
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource, SqlSource
from analysis.engines.polars_measure import measure
from analysis.quarantine import QuarantineResult, split
from analysis.sql.database import Database
from analysis.sql.gx import check_experiment_sql
from analysis.sql.quarantine import kept_rows
from analysis.suites.conditions import failing_rows
from analysis.suites.load import load_suite
from analysis.suites.params import run_params
from analysis.validation.experiment import check_experiment, validate_experiment
from analysis.validation_report import CriticalValidationError, ExpectationOutcome, ValidationReport
from tests import validation_factories as f
from tests.pg_factories import PG_URI, assert_same_outcomes, copy_into, throwaway_schema

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
METRICS = [CONFIG.metrics[m] for m in ("task_completion_rate", "time_on_task", "ai_latency_p95")]
SOURCE = "warehouse"
ENV = "PROOF_TEST_NONFINITE_URI"
REASON = "non_finite_value"
NAN, INF = float("nan"), float("inf")
#: event_id -> (event, planted value)
PLANTED: dict[str, tuple[str, float]] = {
    "l-nan": ("ai_latency", NAN),
    "l-inf": ("ai_latency", INF),
    "l-neginf": ("ai_latency", -INF),
    "tc-nan": ("task_completed", NAN),
    "tc-inf": ("task_completed", INF),
    "tc-neginf": ("task_completed", -INF),
    "ts-nan": ("task_started", NAN),  # an event without a value rule
}
OUT_OF_RANGE = "tc-negative"  # a finite value out of range: still value_out_of_range


def _experiment(**validation: Any) -> Experiment:
    spec = f.experiment(**validation).model_dump()
    spec["metrics"] = {
        "primary": "task_completion_rate",
        "secondary": ["time_on_task"],
        "guardrails": ["ai_latency_p95"],
    }
    return Experiment.model_validate(spec)


#: 7 bad rows of 296: a share above the default max_null_key_share (0.001)
EXPERIMENT = _experiment(max_null_key_share=0.05)


def _events() -> pl.DataFrame:
    """The factory's events, one ai_latency and one ai_cost per task, and the planted rows."""
    clean = f.events()
    tasks = clean.filter(pl.col("event") == "ai_shown")
    latency, cost = (
        tasks.with_columns(
            pl.format(f"{prefix}{{}}", pl.int_range(pl.len())).alias("event_id"),
            pl.lit(event).alias("event"),
            (first + step * pl.int_range(pl.len())).alias("value"),
            pl.col("ts") + dt.timedelta(seconds=5),
        )
        for prefix, event, first, step in (("l", "ai_latency", 100.0, 10.0),
                                           ("c", "ai_cost", 0.001, 0.0001))
    )  # fmt: skip
    # every planted row is an event of u01 (an "ai" unit), on the first day
    like = tasks.filter(pl.col("unit_id") == "u01").head(1).row(0, named=True)
    bad = [
        like | {"event_id": k, "event": event, "value": value}
        for k, (event, value) in {
            **PLANTED,
            OUT_OF_RANGE: ("task_completed", -5.0),
        }.items()
    ]
    return pl.concat([clean, latency, cost, pl.DataFrame(bad, schema=schema.EVENTS)])


def _tables() -> dict[str, pl.DataFrame]:
    return {"assignments": f.assignments(), "events": _events()}


def _outcome(
    report: ValidationReport, reason: str, condition: str | None = None
) -> ExpectationOutcome:
    return next(
        o
        for o in report.outcomes
        if o.table == "events" and o.reason == reason and o.condition == condition
    )


def _assert_quarantined(
    counts: dict[str, dict[str, int]] | Any, rows: pl.DataFrame, report: ValidationReport
) -> None:
    """Exactly the planted rows, with the reason; GX and results.json count the same."""
    assert dict(counts["events"]) == {REASON: len(PLANTED), "value_out_of_range": 1}
    held = rows.filter(pl.col("reason") == REASON).sort("event_id")
    assert set(held.get_column("event_id")) == set(PLANTED)
    for event_id, event, value in held.select("event_id", "event", "value").iter_rows():
        want_event, want = PLANTED[event_id]
        assert event == want_event
        assert (math.isnan(value) and math.isnan(want)) or value == want, event_id
    outcome = _outcome(report, REASON)
    assert (outcome.success, outcome.severity) == (False, "warning")
    assert outcome.column == "value"
    assert outcome.unexpected_count == len(PLANTED)
    assert outcome.element_count == _events().height
    summary = report.summary()
    assert summary["quarantine"]["events"][REASON] == outcome.unexpected_count
    failed = [x for x in summary["failed_expectations"] if x["reason"] == REASON]
    assert [x["unexpected_count"] for x in failed] == [len(PLANTED)]
    assert set(failed[0]["examples"]) <= {
        f"event_id={k}, value={'nan' if math.isnan(v) else v}" for k, (_, v) in PLANTED.items()
    }
    # the range rule of task_completed judges finite values: only the -5
    task_range = _outcome(report, "value_out_of_range", 'event=="task_completed"')
    assert task_range.unexpected_count == 1
    assert summary["quarantine"]["events"]["value_out_of_range"] == 1
    assert report.success


def _assert_p95_from_finite_values(used: QuarantineResult, experiment: Experiment) -> None:
    """No non-finite value reaches a statistic: the p95 guardrail is the finite values' p95."""
    events = used.events
    assert events.filter(~pl.col("value").is_finite()).height == 0  # nulls aside
    for table in ("assignments", "events"):
        assert used.rows_in[table] == used.rows_used[table] + used.rows_quarantined[table]
    measurement = measure(used.tables(), experiment, METRICS, f.AS_OF, unique_events=True)
    _, descriptions = compare_all(experiment, METRICS, measurement.data, f.AS_OF)
    p95 = next(d for d in descriptions if d.metric.name == "ai_latency_p95" and d.variant == "ai")
    ai_units = f.assignments().filter(pl.col("variant") == "ai").get_column("unit_id")
    finite = _events().filter(
        (pl.col("event") == "ai_latency")
        & pl.col("unit_id").is_in(ai_units.implode())
        & pl.col("value").is_finite()
    )
    assert p95.value is not None
    assert p95.value == pytest.approx(float(np.quantile(finite.get_column("value"), 0.95)))


# --------------------------------------------------------------------------- polars + GX/pandas


def test_non_finite_values_are_quarantined_and_counted_alike() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = check_experiment(_tables(), EXPERIMENT, f.AS_OF, now=f.NOW)
    held = checked.quarantine
    _assert_quarantined(held.counts, held.quarantined["events"], checked.report)
    _assert_p95_from_finite_values(held, EXPERIMENT)


def test_gx_counts_every_row_rule_as_the_quarantine_translates_it() -> None:
    """GX over pandas (where NaN reads as null) agrees with the polars rules, rule by rule."""
    data = _tables()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = validate_experiment(data, EXPERIMENT, f.AS_OF, now=f.NOW)
    found = {o.key: o for o in report.outcomes}
    params = run_params(EXPERIMENT, f.AS_OF, f.NOW)
    rules = [e for e in load_suite("events", params).row_level() if e.column != "event_id"]
    for e in rules:
        expected = data["events"].select(failing_rows(e).sum()).item()
        assert found[e.key].unexpected_count == expected, e.key


def test_non_finite_values_follow_the_null_key_share_rule() -> None:
    """Above ``max_null_key_share`` of the rows (default 0.001) the run stops, naming the rule."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = check_experiment(_tables(), _experiment(), f.AS_OF, now=f.NOW)
    outcome = _outcome(checked.report, REASON)
    assert (outcome.severity, outcome.unexpected_count) == ("critical", len(PLANTED))
    message = str(CriticalValidationError(checked.report.summary()))
    assert f"failed ({len(PLANTED)} of {_events().height} rows), rule {REASON}" in message


def test_every_float_column_of_the_contract_has_a_non_finite_rule() -> None:
    params = run_params(EXPERIMENT, f.AS_OF, f.NOW)
    for table, columns in schema.TABLES.items():
        suite = load_suite(table, params)
        floats = {c for c, t in columns.items() if t.is_float()}
        caught = {e.column for e in suite.row_level() if e.reason == REASON}
        assert caught == floats, table


# --------------------------------------------------------------------------- inside the database


@pytest.fixture(params=["duckdb", "sql"])
def in_database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DuckDBSource | SqlSource]:
    tables = _tables()
    if request.param == "duckdb":
        path = tmp_path / "w.duckdb"
        with duckdb.connect(str(path)) as con:
            con.execute("SET TimeZone='UTC'")
            for name, frame in tables.items():
                con.register("frame", frame.to_arrow())
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
                con.unregister("frame")
        yield DuckDBSource(kind="duckdb", path=path, validate_in_database=True)
        return
    with throwaway_schema("proof_nonfinite") as (con, name):
        for table, frame in tables.items():
            copy_into(con, f"{name}.{table}", frame)
        monkeypatch.setenv(ENV, PG_URI)
        yield SqlSource(
            kind="sql", uri_env=ENV, assignments=f"{name}.assignments", events=f"{name}.events"
        )


def test_non_finite_values_inside_the_database(in_database: DuckDBSource | SqlSource) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        db = Database.open(SOURCE, in_database)
        held, report = check_experiment_sql(db, EXPERIMENT, f.AS_OF, now=f.NOW)
        polars_held = split(_tables(), EXPERIMENT, f.AS_OF, now=f.NOW)
        polars_report = validate_experiment(
            _tables(), EXPERIMENT, f.AS_OF, now=f.NOW, quarantine=polars_held.counts
        )
    _assert_quarantined(held.counts, held.rows["events"], report)
    assert held.rows_in["events"] == _events().height
    assert_same_outcomes(polars_report, report)  # every rule, count and element count
    used = kept_rows(db, EXPERIMENT, f.AS_OF, held, now=f.NOW)
    _assert_p95_from_finite_values(used, EXPERIMENT)
