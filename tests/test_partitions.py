"""Per-day partitions: fingerprints, clamped bounds, the cache, and results equal to one big run."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.partitions.batches import BatchOutcome, merge_outcomes
from analysis.partitions.days import clamp, partition_fingerprints
from analysis.partitions.validate import validate_partitions
from analysis.suites.conditions import failing_rows, parse_condition
from analysis.suites.load import Expectation, Suite, load_suite
from analysis.suites.params import run_params
from analysis.validation.gx import GxBatchValidator
from analysis.validation.tables import validate_frame
from tests import validation_factories as f


class ReferenceValidator:
    """A polars stand-in for GX (the suites' own row rules): fast, and counts its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.rows = 0

    def __call__(
        self, frame: pl.DataFrame, expectations: Sequence[Expectation]
    ) -> list[BatchOutcome]:
        self.runs += 1
        self.rows += frame.height
        out = []
        for e in expectations:
            if e.type == "expect_column_values_to_be_unique":
                bad = int(
                    frame.select(pl.col("event_id").drop_nulls().is_duplicated().sum()).item()
                )
            elif e.type.startswith("expect_column_values_to_") and e.type.endswith(
                ("null", "set", "between")
            ):
                bad = int(frame.select(failing_rows(e).sum()).item())
            else:  # schema and table checks: GX observes a type, or the row count
                rows = frame.height if e.type.startswith("expect_table_row_count") else None
                out.append(BatchOutcome(e.key, True, observed=rows))
                continue
            looked_at = frame.height
            if e.condition:  # like GX: only the rows the condition selects
                column, value = parse_condition(e.condition)
                looked_at = int(frame.select((pl.col(column) == value).sum()).item())
            out.append(BatchOutcome(e.key, bad == 0, looked_at, bad))
        return out


def _suite(now: dt.datetime = f.NOW) -> Suite:
    return load_suite("events", run_params(f.experiment(), f.AS_OF, now))


def test_fingerprints_ignore_row_order_and_see_every_change() -> None:
    events = f.events()
    parts = partition_fingerprints(events)
    assert [p.label for p in parts] == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert sum(p.rows for p in parts) == events.height
    assert partition_fingerprints(events.sample(fraction=1.0, shuffle=True, seed=3)) == parts
    edited = f.set_rows(events, [100], value=7.0)  # a row of the second day
    changed = [
        a.label for a, b in zip(parts, partition_fingerprints(edited), strict=True) if a != b
    ]
    assert changed == ["2026-10-02"]
    no_ts = partition_fingerprints(f.set_rows(events, [0], ts=None))
    assert no_ts[0].label == "no-ts"
    assert no_ts[0].rows == 1


def test_bounds_no_row_of_the_day_can_break_are_dropped() -> None:
    suite = _suite()
    future = next(e for e in suite.expectations if e.reason == "ts_in_future")
    early = next(e for e in suite.expectations if e.reason == "ts_before_window")
    assert clamp(future, dt.date(2026, 10, 3)) is None  # every instant of the day <= now
    assert clamp(future, dt.date(2026, 10, 4)) == future  # now is inside that day
    assert clamp(early, dt.date(2026, 10, 3)) is None
    assert clamp(early, dt.date(2026, 9, 17)) is None  # starts exactly at the bound
    before = clamp(early, dt.date(2026, 9, 16))  # every row of the day is too early
    assert before is not None
    assert before.kwargs["min_value"] == dt.datetime(2026, 9, 17, tzinfo=dt.UTC)
    later = next(
        e for e in _suite(f.NOW + dt.timedelta(hours=5)).expectations if e.key == future.key
    )
    day_after = dt.date(2026, 10, 5)  # every row is in the future, for either now
    assert clamp(future, day_after) == clamp(later, day_after)
    assert clamp(early, None) is None  # no ts: a between check skips nulls
    other = next(e for e in suite.expectations if e.reason == "null_ts")
    assert clamp(other, dt.date(2026, 10, 3)) == other


def test_unchanged_partitions_are_reused(tmp_path: Path) -> None:
    v = ReferenceValidator()
    events = f.events()
    first = validate_partitions(events, _suite(), v, cache_dir=tmp_path)
    assert (first.validated, first.reused, v.runs) == (3, 0, 1)  # one batch for three days
    assert len(list(tmp_path.glob("*.json"))) == 3

    v = ReferenceValidator()
    second = validate_partitions(events, _suite(), v, cache_dir=tmp_path)
    assert (second.validated, second.reused, v.runs) == (0, 3, 0)
    assert second.outcomes == first.outcomes

    v = ReferenceValidator()
    edited = f.set_rows(events, [100], value=7.0)
    third = validate_partitions(edited, _suite(), v, cache_dir=tmp_path)
    assert (third.validated, third.reused, v.rows) == (1, 2, 72)
    assert len(list(tmp_path.glob("2026-10-02-*.json"))) == 1  # the stale day was replaced

    v = ReferenceValidator()
    fresh = validate_partitions(edited, _suite(), v, cache_dir=tmp_path, revalidate=True)
    assert (fresh.validated, fresh.reused) == (3, 0)


def test_a_later_now_revalidates_only_the_partition_whose_rows_it_falls_among(
    tmp_path: Path,
) -> None:
    today = (
        f.events()
        .head(4)
        .with_columns(
            pl.col("ts").dt.offset_by("3d"),
            pl.format("n{}", pl.int_range(pl.len())).alias("event_id"),
        )
    )
    events = pl.concat([f.events(), today])
    validate_partitions(events, _suite(), ReferenceValidator(), cache_dir=tmp_path)
    v = ReferenceValidator()
    later = validate_partitions(
        events, _suite(f.NOW + dt.timedelta(hours=1)), v, cache_dir=tmp_path
    )
    assert (later.validated, later.reused) == (0, 4)  # all of that day's rows were still ahead
    v = ReferenceValidator()
    among = today.get_column("ts").sort()[1] + dt.timedelta(seconds=1)  # among its rows
    again = validate_partitions(events, _suite(among), v, cache_dir=tmp_path)
    assert (again.validated, again.reused, v.rows) == (1, 3, 4)
    future = next(e for e in _suite(among).expectations if e.reason == "ts_in_future")
    assert again.outcomes[future.key].unexpected_count == 2


def test_an_unreadable_cache_file_is_validated_again(tmp_path: Path) -> None:
    validate_partitions(f.events(), _suite(), ReferenceValidator(), cache_dir=tmp_path)
    for path in tmp_path.glob("*.json"):
        path.write_text("{not json")
    again = validate_partitions(f.events(), _suite(), ReferenceValidator(), cache_dir=tmp_path)
    assert (again.validated, again.reused) == (3, 0)
    body = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert set(body) >= {"partition", "rows", "fingerprint", "outcomes"}


def _messy() -> pl.DataFrame:
    events = f.events()
    events = f.set_rows(events, [3], value=-1.0)  # task_completed, day 1
    events = f.set_rows(events, [150], value=0.0)  # feedback, day 3
    events = f.set_rows(events, [151], ts=None)
    same_day = events[[10, 11]]  # repeated on their own day
    other_day = events[[20]].with_columns(pl.col("ts").dt.offset_by("1d"))  # repeated a day later
    return pl.concat([events, same_day, other_day])


def test_a_partition_keeps_its_own_result_however_days_are_batched(tmp_path: Path) -> None:
    events = _messy()
    one = ReferenceValidator()
    together = validate_partitions(events, _suite(), one, cache_dir=tmp_path / "a")
    alone = validate_partitions(
        events, _suite(), ReferenceValidator(), cache_dir=tmp_path / "b", max_batch_rows=80
    )
    assert together.outcomes == alone.outcomes
    # one batch, then the failed expectations on each partition with a row that breaks them:
    # no-ts (a null ts) and 2026-10-01 (a repeated id, a negative value); not the other two
    assert one.runs == 1 + 2
    for path in (tmp_path / "a").glob("*.json"):
        assert (
            json.loads(path.read_text())["outcomes"]
            == json.loads((tmp_path / "b" / path.name).read_text())["outcomes"]
        )


def test_partitioned_gx_counts_equal_one_gx_run_over_the_whole_table(tmp_path: Path) -> None:
    """Cross-day duplicates included: the merged result is what GX says of the whole table."""
    events = _messy()
    full = _suite()
    # The row checks only: schema checks cannot differ, and each GX run costs.
    suite = Suite(full.table, full.row_level(), full.index_columns, full.digest)
    parted = validate_partitions(
        events, suite, GxBatchValidator("events", ["event_id"]), cache_dir=tmp_path
    )
    whole = validate_frame(suite, events)
    assert parted.validated == 4
    assert {k: (o.success, o.unexpected_count) for k, o in parted.outcomes.items()} == {
        k: (o.success, o.unexpected_count) for k, o in whole.items()
    }
    dup = next(
        parted.outcomes[e.key] for e in suite.expectations if e.reason == "duplicate_event_id"
    )
    assert dup.unexpected_count == 6  # 2 ids twice on their day, 1 id on two days


def test_an_empty_table_still_gets_its_table_checks() -> None:
    v = ReferenceValidator()
    result = validate_partitions(f.events().head(0), _suite(), v)
    assert (result.validated, result.reused, v.runs) == (0, 0, 1)
    assert result.outcomes


def test_outcomes_merge_counts_and_keep_the_first_examples() -> None:
    a = BatchOutcome("k", True, 10, 0, (), 10)
    b = BatchOutcome("k", False, 5, 2, ("x", "y"), 5)
    merged = merge_outcomes([[a], [b]], ["k"])["k"]
    assert merged == BatchOutcome("k", False, 15, 2, ("x", "y"), 15)
    assert BatchOutcome.from_json(merged.to_json()) == merged
    with pytest.raises(KeyError):
        merge_outcomes([[a]], ["other"])["other"]


def _landed_late_and_wrong() -> pl.DataFrame:
    """The messy events, and copies of a few rows years ahead and weeks before the window."""
    events = _messy()
    wrong = events.head(6).with_columns(
        pl.col("ts").dt.offset_by(pl.Series([f"{400 * (i + 1)}d" for i in range(6)])),
        pl.format("future{}", pl.int_range(pl.len())).alias("event_id"),
    )
    early = events.slice(30, 3).with_columns(
        pl.col("ts").dt.offset_by(pl.Series(["-30d", "-60d", "-90d"])),
        pl.format("early{}", pl.int_range(pl.len())).alias("event_id"),
    )
    repeated = wrong.head(1).with_columns(pl.col("ts").dt.offset_by("-1000d"))  # id of the future
    return pl.concat([events, wrong, early, repeated])


def _window() -> tuple[dt.date, dt.date]:
    from analysis.validation.experiment import partition_window

    return partition_window(f.experiment(), f.AS_OF, f.NOW)


def test_a_window_bounds_the_partitions_by_the_days_of_the_experiment() -> None:
    events = _landed_late_and_wrong()
    unbounded = partition_fingerprints(events)
    bounded = partition_fingerprints(events, window=_window())
    assert len(unbounded) == 3 + 1 + 6 + 4  # every wrong day is a partition of its own
    assert [p.label for p in bounded] == [
        "no-ts", "before", "2026-10-01", "2026-10-02", "2026-10-03", "after"
    ]  # fmt: skip
    assert sum(p.rows for p in bounded) == events.height
    after = bounded[-1]
    assert after.rows == 6
    ahead = events.filter(pl.col("ts").dt.date() > f.NOW.date()).get_column("ts")
    assert after.span == (ahead.min(), ahead.max())


def test_windowed_partitions_equal_one_gx_run_over_the_whole_table(tmp_path: Path) -> None:
    """Rows years ahead, weeks before, and an id repeated across the bounds: as GX on all rows."""
    events = _landed_late_and_wrong()
    full = _suite()
    suite = Suite(full.table, full.row_level(), full.index_columns, full.digest)
    parted = validate_partitions(
        events, suite, GxBatchValidator("events", ["event_id"]), cache_dir=tmp_path,
        window=_window(),
    )  # fmt: skip
    whole = validate_frame(suite, events)
    assert parted.validated == 6
    assert {k: (o.success, o.unexpected_count) for k, o in parted.outcomes.items()} == {
        k: (o.success, o.unexpected_count) for k, o in whole.items()
    }
    by_reason = {e.reason: parted.outcomes[e.key] for e in suite.expectations if e.reason}
    assert by_reason["ts_in_future"].unexpected_count == 6
    assert by_reason["ts_before_window"].unexpected_count == 3 + 1


def test_a_windowed_night_over_the_same_rows_validates_nothing(tmp_path: Path) -> None:
    """Tomorrow's now moves the window; every partition's rows, and so its result, stay."""
    events = _landed_late_and_wrong()
    window = _window()
    validate_partitions(events, _suite(), ReferenceValidator(), cache_dir=tmp_path, window=window)
    v = ReferenceValidator()
    tomorrow = f.NOW + dt.timedelta(days=1)
    later = validate_partitions(
        events, _suite(tomorrow), v, cache_dir=tmp_path,
        window=(window[0], tomorrow.date()),
    )  # fmt: skip
    assert (later.validated, later.reused, v.runs) == (0, 6, 0)


def test_batches_validated_in_worker_processes_give_the_serial_results(tmp_path: Path) -> None:
    """The run's process and a spawned worker share the batches: the same outcomes
    and cache files, and each process validated some of them.

    The polars stand-in for GX keeps the test fast (a worker that imports GX
    takes seconds to start); GX's own validator crosses to a worker by pickle.
    """
    events = _landed_late_and_wrong()
    kwargs: dict[str, Any] = {"window": _window(), "max_batch_rows": 60}
    alone, here = ReferenceValidator(), ReferenceValidator()
    serial = validate_partitions(events, _suite(), alone, cache_dir=tmp_path / "s", **kwargs)
    parallel = validate_partitions(
        events, _suite(), here, cache_dir=tmp_path / "p", workers=2, parallel_min_rows=0,
        **kwargs,
    )  # fmt: skip
    assert 0 < here.rows < alone.rows  # the rest went to the worker, which holds two at most
    assert parallel.outcomes == serial.outcomes
    assert (parallel.validated, parallel.gx_batches) == (serial.validated, serial.gx_batches)
    assert serial.validated == 6
    for path in (tmp_path / "s").glob("*.json"):
        assert (
            json.loads(path.read_text())["outcomes"]
            == json.loads((tmp_path / "p" / path.name).read_text())["outcomes"]
        )


def test_a_used_gx_validator_crosses_to_a_worker_without_its_context() -> None:
    import pickle

    events = _messy()
    suite = _suite()
    checks = suite.row_level()
    validator = GxBatchValidator("events", ["event_id"])
    here = validator(events, checks)
    there = pickle.loads(pickle.dumps(validator))
    assert there.table == "events"
    assert there.index_columns == ("event_id",)
    assert there(events, checks) == here


def test_the_number_of_validation_workers_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from analysis.config.base import ConfigError
    from analysis.settings import validation_workers

    monkeypatch.delenv("PROOF_VALIDATION_WORKERS", raising=False)
    assert validation_workers() == 1
    monkeypatch.setenv("PROOF_VALIDATION_WORKERS", "3")
    assert validation_workers() == 3
    for wrong in ("0", "two", "-1"):
        monkeypatch.setenv("PROOF_VALIDATION_WORKERS", wrong)
        with pytest.raises(ConfigError, match="PROOF_VALIDATION_WORKERS"):
            validation_workers()


def _with_a_unit_exposed_on_the_last_day(
    events: pl.DataFrame, assignments: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A new unit, assigned on 2026-10-03, whose events of the two days before join tonight."""
    mine = events.filter(pl.col("unit_id") == "u00").with_columns(
        pl.lit("new1").alias("unit_id"), ("n" + pl.col("event_id")).alias("event_id")
    )
    exposed = assignments.head(1).with_columns(
        pl.lit("new1").alias("unit_id"),
        pl.lit(dt.datetime(2026, 10, 3, 8, tzinfo=dt.UTC)).alias("assigned_at"),
    )
    return pl.concat([events, mine]), pl.concat([assignments, exposed])


def test_a_new_cohorts_earlier_events_change_only_the_later_partitions(tmp_path: Path) -> None:
    """Tonight's units bring their pre-period into past days: only `+later` is validated."""
    from analysis.partitions.days import exposure_days

    events, assignments = f.events(), f.assignments()
    validate_partitions(
        events, _suite(), ReferenceValidator(), cache_dir=tmp_path,
        exposures=exposure_days(assignments),
    )  # fmt: skip
    tonight, assigned = _with_a_unit_exposed_on_the_last_day(events, assignments)
    v = ReferenceValidator()
    night = validate_partitions(
        tonight, _suite(), v, cache_dir=tmp_path, exposures=exposure_days(assigned)
    )
    validated = {p.label for p in night.partitions} - {
        p.label for p in validate_partitions(events, _suite(), ReferenceValidator(),
                                             exposures=exposure_days(assignments)).partitions
    }  # fmt: skip
    assert validated == {"2026-10-01+later", "2026-10-02+later"}
    # and 2026-10-03, the day of its exposure (tonight, in production: a new day anyway)
    assert (night.validated, night.reused) == (3, 2)
    assert v.rows == (1 + 1 + f.UNITS + 1) * len(f.EVENTS_OF_A_TASK)


def test_partitions_cut_by_exposure_equal_one_gx_run_over_the_whole_table(
    tmp_path: Path,
) -> None:
    from analysis.partitions.days import exposure_days

    events, assigned = _with_a_unit_exposed_on_the_last_day(
        _landed_late_and_wrong(), f.assignments()
    )
    repeated = events.filter(pl.col("unit_id") == "new1").head(1)  # its id again, on day 3
    events = pl.concat([events, repeated.with_columns(pl.col("ts").dt.offset_by("2d"))])
    full = _suite()
    suite = Suite(full.table, full.row_level(), full.index_columns, full.digest)
    parted = validate_partitions(
        events, suite, GxBatchValidator("events", ["event_id"]), cache_dir=tmp_path,
        window=_window(), exposures=exposure_days(assigned),
    )  # fmt: skip
    assert "2026-10-01+later" in {p.label for p in parted.partitions}
    whole = validate_frame(suite, events)
    assert {k: (o.success, o.unexpected_count) for k, o in parted.outcomes.items()} == {
        k: (o.success, o.unexpected_count) for k, o in whole.items()
    }


def test_repeated_ids_shared_out_by_polars_are_what_gx_finds_on_each_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GX's count for the batch confirms polars' split; each partition's result is the one
    GX gives when run on that partition alone (the cache files agree, examples included)."""
    import analysis.partitions.validate as partitioned

    events = pl.concat([_messy(), _messy()[[100]]])  # 2026-10-02: a repeat, nothing else
    suite = _suite()
    shared = validate_partitions(
        events, suite, GxBatchValidator("events", ["event_id"]), cache_dir=tmp_path / "split"
    )
    monkeypatch.setattr(partitioned, "split_repeats", lambda *_: None)  # GX on each one
    alone = validate_partitions(
        events, suite, GxBatchValidator("events", ["event_id"]), cache_dir=tmp_path / "gx"
    )
    assert shared.outcomes == alone.outcomes
    assert (shared.gx_batches, alone.gx_batches) == (1 + 2, 1 + 3)  # 2026-10-02 not run again
    for path in (tmp_path / "gx").glob("*.json"):
        assert (
            json.loads(path.read_text())["outcomes"]
            == json.loads((tmp_path / "split" / path.name).read_text())["outcomes"]
        )


def test_partition_columns_are_chunked_as_the_events_are() -> None:
    """Columns chunked unlike the rest make polars copy the frame whole on each later step."""
    from analysis.partitions.days import exposure_days, keyed

    events, assignments = f.events(), f.assignments()
    half = events.height // 2
    chunked = pl.concat([events.slice(0, half), events.slice(half)], rechunk=False)
    assert chunked.n_chunks("all") == [2] * chunked.width
    for exposures in (None, exposure_days(assignments)):
        frame = keyed(chunked, exposures=exposures)
        assert frame.n_chunks("all") == [2] * frame.width
        assert frame.equals(keyed(events.rechunk(), exposures=exposures))


def test_picking_some_partitions_gives_their_rows_the_dateless_ones_too() -> None:
    from analysis.partitions.days import KEYS, exposure_days, fingerprints_of, keyed
    from analysis.partitions.validate import _rows_of

    events, assignments = _with_a_unit_exposed_on_the_last_day(f.events(), f.assignments())
    undated = events.head(3).with_columns(pl.lit(None).alias("ts"))
    events = pl.concat([events, undated], how="vertical_relaxed")
    frame = keyed(events, exposures=exposure_days(assignments))
    partitions = fingerprints_of(frame, None)
    assert any(p.day is None for p in partitions)
    assert any(p.later for p in partitions)
    for picked in (partitions[::2], partitions[1::2], [p for p in partitions if p.day is None]):
        rows = _rows_of(frame, picked)
        for p in picked:
            expected = frame.filter(
                pl.col(KEYS[0]).eq_missing(p.day) & (pl.col(KEYS[1]) == p.later)
            ).drop(*KEYS)
            assert rows[p.day, p.later].equals(expected), p.label


def test_assignments_repeated_across_days_are_not_run_through_gx_day_by_day(
    tmp_path: Path,
) -> None:
    """The compound uniqueness of (experiment, unit) on assignment days equals one GX run over
    the whole table; GX runs again only on the days where a pair repeats within the day."""
    assignments = f.assignments(units=12)
    day = dt.timedelta(days=1)
    nothing = [pl.lit(None, pl.String).alias(c) for c in ("experiment_id", "unit_id")]
    repeated = pl.concat(
        [
            assignments,
            assignments[[0]].with_columns(pl.col("assigned_at") + day),  # u00 on a later day
            assignments[[1]].with_columns(pl.col("assigned_at") + 2 * day),  # u01 too
            assignments[[2]],  # u02 twice on its own day
            assignments[[3]].with_columns(pl.lit(None).alias("experiment_id")),  # half missing
            assignments[[3]].with_columns(pl.lit(None).alias("experiment_id")),
            assignments[[4]].with_columns(nothing),  # every part missing, twice
            assignments[[4]].with_columns(nothing),
        ]
    )
    full = load_suite("assignments", run_params(f.experiment(), f.AS_OF, f.NOW))
    suite = Suite(full.table, full.row_level(), full.index_columns, full.digest)
    unique = next(e for e in suite.expectations if e.type == "expect_compound_columns_to_be_unique")
    whole = validate_frame(suite, repeated)
    counted = GxBatchValidator("assignments", suite.index_columns)
    parted = validate_partitions(
        repeated, suite, counted, cache_dir=tmp_path, ts="assigned_at", max_batch_rows=10_000
    )
    assert len(parted.partitions) == 3
    assert {k: (o.success, o.unexpected_count) for k, o in parted.outcomes.items()} == {
        k: (o.success, o.unexpected_count) for k, o in whole.items()
    }
    # u00 and u01 twice each, u02 twice, u03 twice (a missing part is a value);
    # rows missing every part are left out, as GX leaves them
    assert parted.outcomes[unique.key].unexpected_count == 8
    # one run over the batch, and again only the first day (u02 and u03 repeat there)
    assert parted.gx_batches == 2


def test_repeated_ids_the_caller_found_give_what_validation_finds_itself(
    tmp_path: Path,
) -> None:
    """check_experiment hashes event ids once for the quarantine and the validation."""
    from analysis.keys import maybe_repeated

    events = _messy()
    suite = _suite()
    itself = validate_partitions(events, suite, ReferenceValidator(), cache_dir=tmp_path / "a")
    given = validate_partitions(
        events, suite, ReferenceValidator(), cache_dir=tmp_path / "b",
        repeats={"event_id": maybe_repeated(events.get_column("event_id"))},
    )  # fmt: skip
    assert given.outcomes == itself.outcomes
    unique = next(e for e in suite.expectations if e.reason == "duplicate_event_id")
    assert given.outcomes[unique.key].unexpected_count == 6
