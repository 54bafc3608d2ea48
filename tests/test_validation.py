"""The suites: they load, fill in, pass on clean data, fail on each kind of bad row, and report."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis import metrics as metrics_mod
from analysis.config.load import load_config
from analysis.measurement import Window
from analysis.quarantine import split
from analysis.sources.coverage import EventCoverage
from analysis.suites.conditions import failing_rows
from analysis.suites.load import DEFAULT_SUITE_DIR, MissingParameterError, Suite, load_suite
from analysis.suites.params import run_params
from analysis.validation.experiment import validate_experiment
from analysis.validation.gx import GxBatchValidator
from analysis.validation.tables import validate_frame, validate_tables, validate_unit_metrics
from analysis.validation_report import CriticalValidationError, ValidationReport, format_summary
from tests import validation_factories as f
from tests.test_quarantine import _dirty

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
METRICS = CONFIG.metrics_of(CONFIG.experiment("smart-compose"))
#: One metric of each kind the unit table holds: each column adds GX expectations.
UNIT_METRICS = [
    CONFIG.metrics[m]
    for m in ("task_completion_rate", "tasks_completed_per_user", "users_completing_a_task")
]
SUMMARY_KEYS = {
    "success", "expectations_evaluated", "passed", "failed", "failed_expectations", "rows",
    "quarantine", "partitions",
}  # fmt: skip
FAILURE_KEYS = {"table", "expectation", "column", "severity", "unexpected_count", "examples"}
_UNIQUENESS = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}


def _params() -> dict[str, Any]:
    return run_params(f.experiment(), f.AS_OF, f.NOW, metrics=METRICS, assigned_units=10)


@pytest.mark.parametrize("table", ["assignments", "events", "unit_metrics"])
def test_every_suite_loads_into_gx_and_says_what_a_failure_means(table: str) -> None:
    suite = load_suite(table, _params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GX's import-time deprecation noise
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        for e in suite.gx():
            ExpectationConfiguration(**e.gx_config())
    assert len({e.key for e in suite.expectations}) == len(suite.expectations)
    for e in suite.expectations:
        assert e.meta.get("severity") in {"critical", "warning"}, e.key
        if e.row_level:
            assert e.reason, e.key
            if e.type not in _UNIQUENESS:
                failing_rows(e)  # every per-row rule has its polars translation
    assert suite.index_columns


def test_suite_files_are_not_rewritten_by_a_run() -> None:
    before = {p.name: p.read_bytes() for p in DEFAULT_SUITE_DIR.glob("*.json")}
    validate_tables(f.tables(), experiment=f.experiment(), as_of=f.AS_OF, now=f.NOW)
    assert {p.name: p.read_bytes() for p in DEFAULT_SUITE_DIR.glob("*.json")} == before


def test_placeholders_are_filled_from_the_run(tmp_path: Path) -> None:
    spec = {
        "name": "t",
        "expectations": [
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "variant", "value_set": {"$param": "variants"}},
             "meta": {"severity": "warning", "explain": "arms of {experiment_id}"}},
            {"type": "expect_column_values_to_be_between",
             "kwargs": {"$each": "ranges", "column": "value"}, "meta": {"severity": "critical"}},
            {"type": "expect_column_values_to_not_be_null",
             "kwargs": {"column": {"$param": "missing"}}, "meta": {"severity": "critical"}},
        ],
    }  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(spec))
    params = {"variants": ["a", "b"], "experiment_id": "x", "ranges": [{"min_value": 0}, {}]}
    with pytest.raises(MissingParameterError, match="'missing'"):
        load_suite("t", params, tmp_path)
    suite = load_suite("t", params, tmp_path, strict=False)
    assert [e.key for e in suite.expectations] == ["t.0", "t.1.0", "t.1.1"]
    assert suite.expectations[0].kwargs["value_set"] == ["a", "b"]
    assert suite.expectations[0].explain == "arms of x"
    assert suite.expectations[1].kwargs == {"column": "value", "min_value": 0}


def test_value_rules_come_from_the_config() -> None:
    experiment = f.experiment(
        task_completed_max_seconds=600, value_ranges={"feedback": {"min": -1, "max": 1}}
    )
    params = run_params(experiment, f.AS_OF, f.NOW)
    ranges = {r["row_condition"]: r for r in params["value_ranges"]}
    assert ranges['event=="task_completed"']["max_value"] == 600
    assert ranges['event=="feedback"']["min_value"] == -1
    assert 'event=="feedback"' not in {r["row_condition"] for r in params["value_sets"]}
    assert {r["row_condition"] for r in params["value_sets"]} == {'event=="trust_survey"'}


def test_clean_tables_pass_every_expectation(tmp_path: Path) -> None:
    report = validate_experiment(f.tables(), f.experiment(), f.AS_OF, now=f.NOW, cache_dir=tmp_path)
    summary = report.summary()
    assert set(summary) >= SUMMARY_KEYS
    assert summary["success"] is True
    assert summary["failed_expectations"] == []
    assert summary["passed"] == summary["expectations_evaluated"] > 30
    assert summary["rows"] == {"assignments": f.UNITS, "events": f.events().height}
    assert summary["partitions"] == {"validated": 3 + 1, "reused": 0}  # events, assignments
    assert "validation passed" in format_summary(summary, "exp")


@pytest.fixture(scope="module")
def dirty_report() -> ValidationReport:
    data = _dirty()
    counts = split(data, f.experiment(), f.AS_OF, now=f.NOW).counts
    return validate_experiment(data, f.experiment(), f.AS_OF, now=f.NOW, quarantine=counts)


def _failed(report: ValidationReport) -> dict[tuple[str, str, str | None, str | None], Any]:
    return {(o.table, o.expectation, o.column, o.condition): o for o in report.outcomes}


def test_each_rule_fails_on_its_own_rows(dirty_report: ValidationReport) -> None:
    """GX's counts match the quarantine's polars rules, row for row."""
    data = _dirty()
    params = run_params(f.experiment(), f.AS_OF, f.NOW)
    found = {o.key: o for o in dirty_report.outcomes}
    checked = 0
    for table in ("assignments", "events"):
        for e in load_suite(table, params).row_level():
            if e.type in _UNIQUENESS:
                continue
            expected = data[table].select(failing_rows(e).sum()).item()
            assert found[e.key].unexpected_count == expected, e.key
            assert found[e.key].success == (expected == 0), e.key
            checked += expected > 0
    assert checked >= 10
    outcome = _failed(dirty_report)
    dup = outcome["events", "expect_column_values_to_be_unique", "event_id", None]
    assert dup.unexpected_count == 6  # GX counts both copies of each of the 3 repeated ids
    assert dup.severity == "warning"
    units = outcome[
        "assignments", "expect_compound_columns_to_be_unique", "experiment_id,unit_id", None
    ]
    assert units.unexpected_count == 4  # u02 (crossover) and u03 (repeat), two rows each


def test_failures_name_table_column_rule_count_and_examples(
    dirty_report: ValidationReport,
) -> None:
    summary = dirty_report.summary()
    assert summary["success"] is False  # null keys are critical
    assert summary["failed"] == len(summary["failed_expectations"])
    assert summary["passed"] + summary["failed"] == summary["expectations_evaluated"]
    for failure in summary["failed_expectations"]:
        assert set(failure) >= FAILURE_KEYS
    by_reason = {x["reason"]: x for x in summary["failed_expectations"] if x["reason"]}
    future = by_reason["ts_in_future"]
    assert future["table"] == "events"
    assert future["column"] == "ts"
    assert future["unexpected_count"] == 1
    assert future["examples"] == ["event_id=e00030, ts=2026-10-05T00:00:00+00:00"]
    assert summary["quarantine"]["events"]["duplicate_event_id"] == 3
    with pytest.raises(CriticalValidationError) as info:
        raise CriticalValidationError(summary)
    message = str(info.value)
    assert "table 'events', column 'ts': expect_column_values_to_not_be_null failed" in message
    assert "(1 of 221 rows), rule null_ts; e.g. event_id=e00025, ts=null" in message
    text = format_summary(summary, "exp")
    assert text.startswith("exp: validation FAILED")
    assert "CRITICAL: table 'assignments', column 'variant'" in text
    assert "quarantined from events: 32 rows" not in text  # counts are exact, not guessed
    assert "duplicate_event_id 3" in text


def test_a_few_unknown_variants_warn_and_many_stop_the_run() -> None:
    a = pl.concat([f.assignments(), f.set_rows(f.assignments().head(1), [0], variant="beta")])
    a = a.with_columns(pl.format("x{}", pl.int_range(pl.len())).alias("unit_id"))

    def unknown(share: float) -> Any:
        report = validate_tables(
            {"assignments": a},
            experiment=f.experiment(max_unknown_variant_share=share),
            as_of=f.AS_OF,
            now=f.NOW,
        )
        return next(o for o in report.outcomes if o.reason == "unknown_variant")

    assert unknown(0.5).severity == "warning"  # 1 of 13 rows
    critical = unknown(0.05)
    assert (critical.severity, critical.unexpected_count) == ("critical", 1)


def test_share_of_events_from_unassigned_units(tmp_path: Path) -> None:
    def share(coverage: EventCoverage | None, bound: float) -> Any:
        report = validate_experiment(
            f.tables(),
            f.experiment(max_unassigned_event_share=bound),
            f.AS_OF,
            now=f.NOW,
            coverage=coverage,
            cache_dir=tmp_path,
        )
        return next(o for o in report.outcomes if o.expectation.startswith("expect_unassigned"))

    coverage = EventCoverage(events=1000, unassigned=100, examples=("zz", "zy"))
    too_many = share(coverage, 0.05)
    assert not too_many.success
    assert too_many.severity == "warning"
    assert (too_many.unexpected_count, too_many.element_count) == (100, 1000)
    assert too_many.examples == ("unit_id=zz", "unit_id=zy")
    assert share(None, 0.0).success  # from the tables themselves: every unit is assigned


def test_validate_tables_without_an_experiment_runs_the_fixed_checks() -> None:
    tables = {"assignments": f.assignments().lazy(), "events": f.events().lazy()}
    report = validate_tables(tables)
    summary = report.summary()
    assert summary["success"] is True
    assert summary["rows"] == {"assignments": f.UNITS, "events": f.events().height}
    kinds = {o.expectation for o in report.outcomes}
    assert "expect_column_values_to_be_in_set" not in kinds  # needs the configured variants


def test_hash_chunks_give_the_same_counts_as_one_batch() -> None:
    events = _dirty()["events"]
    full = load_suite("events", run_params(f.experiment(), f.AS_OF, f.NOW))
    keep = [e for e in full.gx() if e.row_level or e.type.startswith("expect_table_row_count")]
    suite = Suite(full.table, tuple(keep), full.index_columns, full.digest)
    whole = validate_frame(suite, events)
    chunked = validate_frame(suite, events, max_batch_rows=120)  # two chunks
    assert {k: (o.unexpected_count, o.success, o.observed) for k, o in chunked.items()} == {
        k: (o.unexpected_count, o.success, o.observed) for k, o in whole.items()
    }


def _unit_table() -> tuple[pl.DataFrame, int]:
    result = split(f.tables(), f.experiment(), f.AS_OF, now=f.NOW)
    window = Window(f.AS_OF, None, 14)
    units = metrics_mod.clean_assignments(result.tables().assignments, window)
    table = metrics_mod.unit_table(units, result.tables().events, UNIT_METRICS, window).collect()
    return table, result.analysed_units(f.AS_OF)


def test_unit_metric_table_passes_and_fails() -> None:
    table, units = _unit_table()
    good = validate_unit_metrics(
        table, f.experiment(), UNIT_METRICS, units, as_of=f.AS_OF, now=f.NOW
    )
    assert good.success, good.summary()["failed_expectations"]
    assert good.summary()["rows"] == {"unit_metrics": units}

    broken = table.slice(1).with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(-1.0)
        .otherwise(pl.col("task_completion_rate__num"))
        .alias("task_completion_rate__num"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(None)
        .otherwise(pl.col("tasks_completed_per_user"))
        .alias("tasks_completed_per_user"),
        pl.lit(2.0).alias("users_completing_a_task"),
    )
    bad = validate_unit_metrics(
        broken, f.experiment(), UNIT_METRICS, units, as_of=f.AS_OF, now=f.NOW
    )
    found = {(o.expectation, o.column): o for o in bad.critical()}
    assert found["expect_table_row_count_to_equal", None].observed == units - 1
    assert (
        found["expect_column_values_to_be_between", "task_completion_rate__num"].unexpected_count
        == 1
    )
    assert (
        found["expect_column_values_to_not_be_null", "tasks_completed_per_user"].unexpected_count
        == 1
    )
    assert (
        found["expect_column_values_to_be_between", "users_completing_a_task"].unexpected_count
        == units - 1
    )
    merged = good.merge(bad)
    assert len(merged.outcomes) == len(good.outcomes) + len(bad.outcomes)
    assert not merged.success


def test_report_merge_keeps_every_count() -> None:
    a = ValidationReport((), {"assignments": 3}, {"events": {"x": 1}}, {"validated": 2})
    b = ValidationReport((), {"unit_metrics": 2}, {"events": {"y": 2}}, {"reused": 1})
    summary = a.merge(b).summary()
    assert summary["rows"] == {"assignments": 3, "unit_metrics": 2}
    assert summary["quarantine"] == {"events": {"x": 1, "y": 2}}
    assert summary["partitions"] == {"validated": 2, "reused": 1}
    assert a.with_quarantine({"t": {"r": 5}}).summary()["quarantine"] == {"t": {"r": 5}}


def test_timestamps_in_the_summary_are_text() -> None:
    report = validate_tables(
        {"events": f.set_rows(f.events(), [0], ts=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))},
        experiment=f.experiment(),
        as_of=f.AS_OF,
        now=f.NOW,
    )
    json.dumps(report.summary(), allow_nan=False)


def test_a_rerun_over_unchanged_data_runs_no_gx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _dirty()
    first = validate_experiment(data, f.experiment(), f.AS_OF, now=f.NOW, cache_dir=tmp_path)
    calls: list[int] = []
    original = GxBatchValidator.__call__

    def counting(self: GxBatchValidator, *args: Any) -> Any:
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(GxBatchValidator, "__call__", counting)
    later = f.NOW + dt.timedelta(hours=1)  # tomorrow's run: the same data, a later now
    again = validate_experiment(data, f.experiment(), f.AS_OF, now=later, cache_dir=tmp_path)
    assert calls == []
    assert again.summary()["partitions"] == {"validated": 0, "reused": 6 + 3}  # events, assignments
    assert again.outcomes == first.outcomes
    fresh = validate_experiment(
        data, f.experiment(), f.AS_OF, now=f.NOW, cache_dir=tmp_path, revalidate=True
    )
    assert calls
    assert fresh.summary()["partitions"] == {"validated": 6 + 3, "reused": 0}


def test_schema_checks_fail_on_a_missing_column_and_a_wrong_type() -> None:
    """Sources refuse such tables first; the suites would catch them too."""
    events = f.events().drop("task_id").with_columns(pl.col("value").cast(pl.String))
    report = validate_tables(
        {"events": events}, experiment=f.experiment(), as_of=f.AS_OF, now=f.NOW
    )
    failed = {(o.expectation, o.column): o for o in report.critical()}
    assert ("expect_column_to_exist", "task_id") in failed
    assert failed["expect_column_values_to_be_of_type", "value"].observed == "str"
