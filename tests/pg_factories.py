"""Shared by the tests that run inside a database: planted bad rows, loading frames,
and the polars path they are compared with.

The planted rows break one rule each (the comment names the quarantine reason);
``critical=True`` adds the rows that fail a critical expectation (null ids,
null timestamps), which stop a run.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from analysis.config.experiments import Experiment
from analysis.devtools.simulate import SimulatedData
from analysis.quarantine import QuarantineResult, split
from analysis.validation.experiment import validate_experiment
from analysis.validation_report import ValidationReport

#: The local PostgreSQL every machine of this kind runs (trust auth; .ci/run starts it).
PG_URI = "postgresql://postgres@127.0.0.1:5432/test"
OLD = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
EARLY = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


def planted(
    data: SimulatedData, experiment_id: str, future: dt.datetime, *, critical: bool
) -> dict[str, pl.DataFrame]:
    """The simulated tables with bad rows added to ``experiment_id``'s."""
    a, e = data.assignments, data.events
    ours = a.filter(pl.col("experiment_id") == experiment_id)
    first, second, third = (ours.row(i, named=True) for i in range(3))
    variants = ours.get_column("variant").unique().sort().to_list()
    other = next(v for v in variants if v != second["variant"])
    later = dt.timedelta(hours=2)
    bad_a = [
        first | {"unit_id": "x-beta", "variant": "beta"},  # unknown_variant
        first | {"unit_id": "x-early", "assigned_at": EARLY},  # assigned_out_of_range
        second | {"variant": other, "assigned_at": second["assigned_at"] + later},  # crossover
        third | {"assigned_at": third["assigned_at"] + later},  # duplicate_assignment
    ]
    units = ours.get_column("unit_id").unique().sort()
    mine = e.filter(pl.col("unit_id").is_in(units.implode())).sort("event_id")
    row = mine.row(0, named=True)
    bad_e = [
        row | {"event_id": "x-future", "ts": future},  # ts_in_future
        row | {"event_id": "x-old", "ts": OLD},  # ts_before_window
        row | {"event_id": "x-tc", "event": "task_completed", "value": -5.0},  # value range
        row | {"event_id": "x-ts", "event": "trust_survey", "value": 9.0},  # value range
        row | {"event_id": "x-beta-1", "unit_id": "x-beta"},  # unit_assignment_quarantined
    ]
    if critical:
        bad_a.insert(0, first | {"unit_id": None})  # null_unit_id
        bad_e += [
            row | {"event_id": "x-fb", "event": "feedback", "value": 0.0},  # not in set
            row | {"event_id": None},  # null_event_id
            row | {"event_id": "x-nots", "ts": None},  # null_ts
        ]
    copies = mine.slice(10, 4)  # duplicate_event_id: exact copies
    retry = mine.slice(20, 1).with_columns(pl.col("ts") + dt.timedelta(seconds=5))
    return {
        "assignments": pl.concat([a, pl.DataFrame(bad_a, schema=a.schema)]),
        "events": pl.concat([e, pl.DataFrame(bad_e, schema=e.schema), copies, retry]),
    }


def pg_type(column: str, dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz"
    return "double precision" if dtype.is_numeric() else "text"


def copy_into(
    con: Any,
    table: str,
    frame: pl.DataFrame,
    types: Callable[[str, pl.DataType], str] = pg_type,
) -> None:
    """CREATE TABLE from the frame's columns, COPY its rows in, and ANALYZE it."""
    columns = ", ".join(f'"{c}" {types(c, t)}' for c, t in frame.schema.items())
    con.execute(f"CREATE TABLE {table} ({columns})")
    buffer = io.BytesIO()
    frame.write_csv(buffer, null_value="\\N", datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z")
    with (
        con.cursor() as cur,
        cur.copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER, NULL '\\N')") as copy,
    ):
        copy.write(buffer.getvalue())
    con.execute(f"ANALYZE {table}")


def duckdb_file(path: Path, assignments: pl.DataFrame, events: pl.DataFrame) -> Any:
    """A DuckDB file of the two tables (in UTC) and the ``duckdb`` source that reads it."""
    import duckdb

    from analysis.config.sources import DuckDBSource

    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone='UTC'")
        for name, frame in (("assignments", assignments), ("events", events)):
            con.register("frame", frame.to_arrow())
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
    return DuckDBSource(kind="duckdb", path=path)


@contextmanager
def throwaway_schema(prefix: str) -> Iterator[tuple[Any, str]]:
    """A new schema with a unique name and an autocommit connection; dropped on exit."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URI, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
        try:
            yield con, name
        finally:
            con.execute(f"DROP SCHEMA {name} CASCADE")


def polars_check(
    raw: dict[str, pl.DataFrame], experiment: Experiment, as_of: dt.date, now: dt.datetime
) -> tuple[QuarantineResult, ValidationReport]:
    """What the polars path finds in ``raw``: the split, then GX over pandas with its counts."""
    import warnings

    held = split(raw, experiment, as_of, now=now)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = validate_experiment(raw, experiment, as_of, now=now, quarantine=held.counts)
    return held, report


def published_run(
    config_dir: Path, out: Path, run_id: str, experiment_id: str, as_of: dt.date
) -> tuple[dict[str, Any], str]:
    """`proof run` in a subprocess: its results.json (run stamps dropped) with the rows of
    its quarantine files (sorted) under ``quarantine/<table>``, and the run's output."""
    import json

    from tests.test_flows import _run, _without_run_stamps

    ran = _run(
        "--config-dir", str(config_dir), "--out", str(out), "--run-id", run_id,
        "-e", experiment_id, "--as-of", as_of.isoformat(),
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    run_dir = out / experiment_id / run_id
    found = _without_run_stamps(json.loads((run_dir / "results.json").read_text()))
    for table in ("assignments", "events"):
        frame = pl.read_parquet(run_dir / "quarantine" / f"{table}.parquet")
        found[f"quarantine/{table}"] = frame.sort(frame.columns, nulls_last=True).to_dicts()
    return found, ran.output


def with_percentile(experiment: Experiment, percentile: float | None) -> Experiment:
    """``experiment`` winsorised at ``percentile`` (None: not winsorised)."""
    update = {"winsorize_percentile": percentile}
    return experiment.model_copy(
        update={"statistics": experiment.statistics.model_copy(update=update)}
    )


def polars_measured(
    held: QuarantineResult,
    experiment: Experiment,
    metrics: Any,
    as_of: dt.date,
    now: dt.datetime,
) -> Any:
    """The polars engine's measurement of the split ``held``, the per-unit checks included."""
    from functools import partial

    from analysis.engines.polars_measure import measure
    from analysis.validation.tables import validate_unit_metrics

    unit_check = partial(
        validate_unit_metrics, experiment=experiment, metrics=metrics,
        assigned_units=held.analysed_units(as_of), as_of=as_of, now=now,
    )  # fmt: skip
    return measure(held.tables(), experiment, metrics, as_of, unit_check, unique_events=True)


def assert_sufficient_statistics(
    rows: dict[str, int] | Any, experiment: Experiment, as_of: dt.date
) -> None:
    """What a database engine sent back: rows per arm and day, week or bin, never per unit
    nor per event (a quantile's queries: two rows per arm at most)."""
    from analysis.failures import MAX_DISTINCT
    from analysis.sql.quantile_summaries import QUANTILE_QUERIES
    from analysis.unsure import DIMENSIONS

    plan = {"cleaning", "moments", "daily", "weekly", "descriptives", "task_flow", "unsure"}
    assert set(rows) == plan | set(QUANTILE_QUERIES) | {"failure_labels", "failures"}
    assert 0 < rows["task_flow"] <= len(experiment.variants)
    buckets = sum(len(edges) - 1 for _, _, edges in DIMENSIONS)
    assert 0 < rows["unsure"] <= len(experiment.variants) * buckets
    assert all(0 < rows[name] <= 2 * (len(experiment.variants) + 1) for name in QUANTILE_QUERIES)
    assert 0 < rows["failure_labels"] <= MAX_DISTINCT + 1
    assert 0 < rows["failures"] <= len(experiment.variants)
    assert rows["daily"] <= 2 * len(experiment.variants) * ((as_of - experiment.start).days + 1)
    assert rows["descriptives"] <= len(experiment.variants) * (5 + 7 + 30) + 1


def assert_finds_planted_errors(want: ValidationReport, got: ValidationReport) -> None:
    """GX inside a database against the polars path on :func:`planted` rows (critical):
    every outcome alike, and each planted error found with its real count."""
    assert_same_outcomes(want, got)
    failed = {o.reason for o in got.outcomes if not o.success}
    # one planted row each: GX's counts are real, not an empty result read as a pass
    assert {"null_ts", "null_event_id", "ts_in_future", "value_out_of_range"} <= failed
    assert next(o for o in got.outcomes if o.reason == "null_ts").unexpected_count == 1


def assert_same_quarantine(got: Any, want: QuarantineResult) -> None:
    """A database's quarantine (``SqlQuarantine``) against ``quarantine.split``'s: the
    counts per reason, rows in, crossovers and every quarantined row with its reason."""
    from polars.testing import assert_frame_equal

    def ordered(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.sort(frame.columns, nulls_last=True)

    assert got.counts == {t: dict(c) for t, c in want.counts.items()}
    assert dict(got.rows_in) == dict(want.rows_in)
    assert got.crossover_units == want.crossover_units
    for table in ("assignments", "events"):
        assert_frame_equal(ordered(got.rows[table]), ordered(want.quarantined[table]))


def assert_same_outcomes(want: ValidationReport, got: ValidationReport) -> None:
    """Every expectation, in order: the same verdict, severity and counts, and no error."""
    assert [o.key for o in got.outcomes] == [o.key for o in want.outcomes]
    for expected, have in zip(want.outcomes, got.outcomes, strict=True):
        assert have.error is None, (have.key, have.error)
        assert (have.success, have.severity) == (expected.success, expected.severity), have.key
        assert have.unexpected_count == expected.unexpected_count, have.key
        if expected.unexpected_count is not None:
            assert have.element_count == expected.element_count, have.key
        assert (have.table, have.expectation, have.column, have.condition, have.reason) == (
            expected.table, expected.expectation, expected.column, expected.condition,
            expected.reason,
        ), have.key  # fmt: skip
    assert got.rows == want.rows


#: results.json sections push-down computes as SQL aggregates; none may be empty in these tests.
COMPUTED_SECTIONS = (
    "comparisons", "segments", "over_time", "exposure_trend", "funnel", "distributions",
)  # fmt: skip


def _comparable_validation(validation: dict[str, Any]) -> dict[str, Any]:
    """The validation record without what differs by design.

    Not compared: the example rows and a type check's observed type (pandas'
    or the catalog's name), the partition counts (push-down keeps no
    validation cache).
    """
    records = [
        {k: v for k, v in record.items() if k not in ("examples", "observed")}
        for record in validation["expectations"]
    ]
    failed = [
        {k: v for k, v in record.items() if k not in ("examples", "observed")}
        for record in validation["failed_expectations"]
    ]
    return {
        **{k: v for k, v in validation.items() if k != "partitions"},
        "expectations": records,
        "failed_expectations": failed,
    }


def assert_pushed_down_like(got: dict[str, Any], want: dict[str, Any], dialect: str) -> None:
    """A push-down run's results.json against the polars path's on the same rows.

    Every section agrees (floats to 1e-9 relative): the statistics, segments,
    both timelines, the funnel and the histograms (each non-empty, so that
    the comparison says something), every other key, and the validation —
    outcome by outcome, the per-unit metric checks included (they ran inside
    the database); ``pushdown`` names no missing section.
    """
    from analysis.engines.database import NOT_AVAILABLE
    from tests.test_flows import _assert_close

    assert not NOT_AVAILABLE
    for section in COMPUTED_SECTIONS:
        assert want[section], section
    assert got.keys() - {"pushdown"} == want.keys()
    for key in want.keys() - {"run_id", "generated_at", "validation"}:
        _assert_close(got[key], want[key], key)
    assert got["validation"]["success"] is want["validation"]["success"] is True
    assert any(e["table"] == "unit_metrics" for e in want["validation"]["expectations"])
    _assert_close(
        _comparable_validation(got["validation"]),
        _comparable_validation(want["validation"]),
        "validation",
    )
    pushdown = got["pushdown"]
    assert pushdown["computed_in"] == "database"
    assert pushdown["dialect"] == dialect
    assert pushdown["not_available"] == []
    # only sufficient statistics came back: a few rows per query, none per unit
    assert set(pushdown["rows_returned"]) >= {
        "cleaning",
        "moments",
        "daily",
        "weekly",
        "descriptives",
    }
    assert "pushdown" not in want


def _assert_moments_close(got: Any, want: Any, what: str) -> None:
    import math

    assert got.n == want.n, f"{what}: n {got.n} != {want.n}"
    for name in ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy"):
        a, b = getattr(got, name), getattr(want, name)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), f"{what}.{name}: {a} != {b}"


def _assert_nested_moments(got: Any, want: Any, what: str) -> None:
    """``{key: ... {key: Moments}}`` with the same keys in the same order, moments close."""
    from analysis.aggregates import Moments

    if isinstance(want, Moments):
        _assert_moments_close(got, want, what)
        return
    assert set(got) == set(want), f"{what}: {sorted(got)} != {sorted(want)}"
    for key, value in want.items():
        _assert_nested_moments(got[key], value, f"{what}/{key}")


def _unit_outcomes(report: Any) -> list[tuple[Any, ...]]:
    """The per-unit checks' outcomes, as both engines must agree on them (not the examples)."""
    assert report.outcomes, "no per-unit check ran"
    return [
        (o.table, o.expectation, o.column, o.severity, o.success, o.unexpected_count,
         o.element_count)
        for o in report.outcomes
    ]  # fmt: skip


def assert_measured_like(got: Any, want: Any) -> None:
    """Two engines' :class:`~analysis.measurement.Measurement` of the same rows, section by section.

    ``got`` is the database engine's, ``want`` the polars engine's (its
    cleaning already that of the quarantine split). Floats agree to 1e-9
    relative, counts and histogram bins exactly; every section the polars
    engine fills is filled (none is empty here), the database engine leaves no
    section out, and where ``want`` ran the per-unit checks, ``got``'s found the same.
    """

    from analysis.engines.database import NOT_AVAILABLE

    assert got.computed_in is not None
    assert got.computed_in.not_available == tuple(NOT_AVAILABLE) == ()
    if want.unit_validation is not None:
        assert got.unit_validation is not None
        assert _unit_outcomes(got.unit_validation) == _unit_outcomes(want.unit_validation)
    assert got.cleaning == want.cleaning
    for section in ("moments", "joint", "quantiles"):
        assert getattr(want.data, section), section
    _assert_nested_moments(got.data.moments, want.data.moments, "moments")
    _assert_same_joint(got.data.joint, want.data.joint)
    # The decay sums exist for a holdout only: where the polars engine has them, equal.
    _assert_same_joint(got.decay, want.decay)
    assert want.segments
    _assert_nested_moments(got.segments, want.segments, "segments")
    for dim, by_metric in want.segments.items():  # segment values in the same (sorted) order
        for metric, by_value in by_metric.items():
            assert list(got.segments[dim][metric]) == list(by_value), (dim, metric)
    assert_same_quantiles(got.data.quantiles, want.data.quantiles)
    assert want.failures is not None
    assert got.failures is not None
    assert want.failures.labels, "no failure label to compare"
    assert got.failures.labels == want.failures.labels
    assert got.failures.distinct == want.failures.distinct
    _assert_nested_moments(got.failures.moments, want.failures.moments, "failures")
    assert want.flow is not None
    assert got.flow is not None
    assert any(m.n for by_arm in want.flow.moments.values() for m in by_arm.values())
    _assert_nested_moments(got.flow.moments, want.flow.moments, "flow")
    assert want.unsure is not None
    assert got.unsure is not None
    assert want.unsure.moments.get("latency"), "no single-output task to compare"
    _assert_nested_moments(got.unsure.moments, want.unsure.moments, "unsure")
    assert want.daily
    _assert_nested_moments(got.daily, want.daily, "daily")
    assert want.weekly
    assert all(want.weekly.values())
    _assert_nested_moments(got.weekly, want.weekly, "weekly")
    assert want.funnel
    assert any(n for steps in want.funnel.values() for _, n in steps)
    assert got.funnel == want.funnel
    assert want.trust
    assert any(any(counts) for counts in want.trust.values())
    assert got.trust == want.trust
    assert want.time_on_task is not None
    assert got.time_on_task is not None
    assert got.time_on_task.counts == want.time_on_task.counts
    # the bounds are polars' quantiles to the last bit, so the bins hold the same values
    assert got.time_on_task.edges == want.time_on_task.edges


def _assert_same_joint(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """``{metric: {variant: JointMoments}}`` equal: counts exactly, floats to 1e-9."""
    import numpy as np

    assert got.keys() == want.keys()
    for metric, by_variant in want.items():
        assert got[metric].keys() == by_variant.keys(), metric
        for variant, joint in by_variant.items():
            mine = got[metric][variant]
            assert mine.n == joint.n, metric
            assert np.allclose(mine.means, joint.means, rtol=1e-9, atol=1e-9), metric
            assert np.allclose(mine.comoments, joint.comoments, rtol=1e-9, atol=1e-9), metric


def assert_same_quantiles(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """Quantile summaries alike to the last bit, arm by arm (NaN bounds where an arm has
    fewer than two units); both engines' arithmetic between the order statistics is one."""
    import dataclasses
    import math

    assert want
    assert got.keys() == want.keys()
    for metric, by_arm in want.items():
        assert got[metric].keys() == by_arm.keys(), metric
        for arm, summary in by_arm.items():
            mine = got[metric][arm]
            for name, value in dataclasses.asdict(summary).items():
                theirs = dataclasses.asdict(mine)[name]
                same = theirs == value or (
                    isinstance(value, float) and math.isnan(value) and math.isnan(theirs)
                )
                assert same, (metric, arm, name, theirs, value)
