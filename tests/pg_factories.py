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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl

from analysis.config import Experiment
from analysis.quarantine import QuarantineResult, split
from analysis.simulate import SimulatedData
from analysis.validation import ValidationReport, validate_experiment

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


def assert_pushed_down_like(got: dict[str, Any], want: dict[str, Any], dialect: str) -> None:
    """A push-down run's results.json against the polars path's on the same rows.

    Every section push-down computes agrees (floats to 1e-9 relative); the
    quarantine and the validation outcome are the same (push-down does not
    check the per-unit metric table); the sections it leaves out are named.
    """
    from analysis.pushdown import NOT_AVAILABLE
    from tests.test_flows import _assert_close

    assert got["comparisons"]
    assert want["over_time"]  # the polars path has the sections push-down leaves out
    left_out = {"run_id", "generated_at", "validation", "pushdown", *NOT_AVAILABLE}
    _assert_close(
        {k: v for k, v in got.items() if k not in left_out},
        {k: v for k, v in want.items() if k not in left_out},
    )
    assert got["validation"]["quarantine"] == want["validation"]["quarantine"]
    assert got["validation"]["success"] is want["validation"]["success"] is True

    def failed(results: dict[str, Any]) -> set[tuple[str, str, str | None]]:
        return {
            (f["table"], f["expectation"], f.get("column"))
            for f in results["validation"]["failed_expectations"]
            if f["table"] != "unit_metrics"
        }

    assert failed(got) == failed(want)
    assert got["pushdown"]["computed_in"] == "database"
    assert got["pushdown"]["dialect"] == dialect
    assert set(got["pushdown"]["not_available"]) == set(NOT_AVAILABLE)
    assert "pushdown" not in want
