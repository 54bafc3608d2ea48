"""Quarantine, not deletion: every rule's rows and counts, the invariant, determinism, the files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analysis import schema
from analysis.measurement import Cleaning
from analysis.quarantine import QuarantineResult, split
from analysis.report.publish import write_quarantine
from tests import validation_factories as f

EVENT_ROW = 6  # events per unit and day in the factory
DAY_ROWS = f.UNITS * EVENT_ROW


def _row(unit: int, day: int, k: int) -> int:
    return day * DAY_ROWS + unit * EVENT_ROW + k


def _dirty() -> dict[str, pl.DataFrame]:
    a = f.assignments()
    a = f.set_rows(a, [0], variant=None)  # u00: null variant
    a = f.set_rows(a, [1], assigned_at=dt.datetime(2026, 9, 20, tzinfo=dt.UTC))  # u01: too early
    extra = pl.DataFrame(
        {
            "experiment_id": ["exp"] * 4,
            "unit_id": ["u02", "u03", "u20", "u21"],
            "variant": ["ai", "ai", "beta", "control"],  # crossover, repeat, unknown, late
            "assigned_at": [
                f.T0 + dt.timedelta(hours=5),
                f.T0 + dt.timedelta(hours=6),
                f.T0,
                dt.datetime(2026, 10, 4, 1, tzinfo=dt.UTC),  # after as_of, before now
            ],
            "platform": ["web"] * 4,
        },
        schema=a.schema,
    )
    a = pl.concat([a, extra])

    e = f.events()
    e = f.set_rows(e, [_row(4, 0, 0)], event_id=None)
    e = f.set_rows(e, [_row(4, 0, 1)], ts=None)
    e = f.set_rows(e, [_row(5, 0, 0)], ts=dt.datetime(2026, 10, 5, tzinfo=dt.UTC))
    e = f.set_rows(e, [_row(5, 0, 1)], ts=dt.datetime(2026, 9, 1, tzinfo=dt.UTC))
    e = f.set_rows(e, [_row(6, 0, 3)], value=-5.0)  # task_completed
    e = f.set_rows(e, [_row(6, 0, 5)], value=9.0)  # trust_survey
    e = f.set_rows(e, [_row(7, 0, 4)], value=0.0)  # feedback
    e = f.set_rows(e, [_row(7, 0, 2)], value=1.5)  # ai_edited
    copies = e[[_row(8, 0, 2), _row(8, 0, 3), _row(8, 0, 4)]]
    orphans = e[[_row(9, 1, 0), _row(9, 1, 1)]].with_columns(
        pl.lit("zz").alias("unit_id"), pl.Series("event_id", ["o1", "o2"])
    )
    return {"assignments": a, "events": pl.concat([e, copies, orphans])}


UNIT_EVENTS = 3 * EVENT_ROW  # events of one unit in the factory

EXPECTED = {
    "assignments": {
        "null_variant": 1,
        "assigned_out_of_range": 1,
        "crossover": 2,
        "duplicate_assignment": 1,
        "unknown_variant": 1,
    },
    "events": {
        "null_event_id": 1,
        "null_ts": 1,
        "ts_in_future": 1,
        "ts_before_window": 1,
        "value_out_of_range": 4,
        "duplicate_event_id": 3,
        "unit_crossed_over": UNIT_EVENTS,  # u02
        "unit_assignment_quarantined": 2 * UNIT_EVENTS,  # u00 (null variant), u01 (too early)
    },
}


@pytest.fixture(scope="module")
def result() -> QuarantineResult:
    return split(_dirty(), f.experiment(), f.AS_OF, now=f.NOW)


def test_every_rule_is_counted_exactly(result: QuarantineResult) -> None:
    assert {t: dict(c) for t, c in result.counts.items()} == {
        t: dict(sorted(c.items())) for t, c in EXPECTED.items()
    }
    assert result.crossover_units == 1
    assert result.unassigned_events == 2  # kept: not part of any experiment, only counted


def test_rows_in_equal_rows_used_plus_quarantined(result: QuarantineResult) -> None:
    dirty = _dirty()
    for table in ("assignments", "events"):
        assert result.rows_in[table] == dirty[table].height
        assert result.rows_in[table] == result.rows_used[table] + result.rows_quarantined[table]
        assert result.rows_quarantined[table] == sum(result.counts[table].values())


def test_quarantined_rows_keep_every_column_and_a_reason(result: QuarantineResult) -> None:
    dirty = _dirty()
    for table in ("assignments", "events"):
        out = result.quarantined[table]
        assert out.columns == [*dirty[table].columns, "reason"]
        assert out.schema["reason"] == pl.String
        assert out.get_column("reason").null_count() == 0
        back = pl.concat([getattr(result, table), out.drop("reason")])
        assert_frame_equal(_sorted(back), _sorted(dirty[table]))


def test_the_used_rows_are_the_analysable_ones(result: QuarantineResult) -> None:
    used_units = set(result.assignments.get_column("unit_id"))
    assert not {"u00", "u01", "u02", "u20"} & used_units
    assert result.assignments.filter(pl.col("unit_id") == "u03").height == 1
    assert result.assignments.filter(pl.col("unit_id") == "u03").item(0, "assigned_at") == f.T0 + (
        dt.timedelta(minutes=3)
    )  # the first assignment is kept
    assert "u21" in used_units  # assigned after the analysis date: valid, left out by windows
    assert result.analysed_units(f.AS_OF) == f.UNITS - 3
    assert result.events.get_column("event_id").is_unique().all()
    assert result.events.get_column("unit_id").is_in(["u00", "u01", "u02"]).sum() == 0


def test_cleaning_counts_come_from_the_raw_rows(result: QuarantineResult) -> None:
    measured = Cleaning(events=1, duplicates_dropped=0, crossovers_excluded=0, units={"ai": 4})
    adjusted = result.cleaning(measured)
    assert adjusted.events == result.rows_in["events"]
    assert adjusted.duplicates_dropped == 3
    assert adjusted.crossovers_excluded == 1
    assert adjusted.units == {"ai": 4}
    assert result.summary()["rows_quarantined"] == result.rows_quarantined


def test_the_kept_duplicate_does_not_depend_on_row_order() -> None:
    e = f.events().head(2)
    later = e.head(1).with_columns(
        pl.col("ts") + dt.timedelta(seconds=1), pl.lit(99.0).alias("value")
    )
    for frame in (pl.concat([e, later]), pl.concat([later, e])):
        result = split(
            {"assignments": f.assignments(), "events": frame}, f.experiment(), f.AS_OF, now=f.NOW
        )
        kept = result.events.filter(pl.col("event_id") == e.item(0, "event_id"))
        assert kept.item(0, "ts") == e.item(0, "ts")  # the earliest copy
        assert result.counts["events"] == {"duplicate_event_id": 1}


def test_unknown_variant_units_and_empty_tables() -> None:
    empty = {"assignments": f.assignments().head(0), "events": f.events().head(0)}
    result = split(empty, f.experiment(), f.AS_OF, now=f.NOW)
    assert result.rows_in == {"assignments": 0, "events": 0}
    assert result.counts == {"assignments": {}, "events": {}}


def test_write_quarantine_writes_every_table_atomically(
    result: QuarantineResult, tmp_path: Path
) -> None:
    written = write_quarantine(tmp_path / "run", result.quarantined)
    assert set(written) == {"assignments", "events"}
    for table, path in written.items():
        assert path == tmp_path / "run" / "quarantine" / f"{table}.parquet"
        assert_frame_equal(pl.read_parquet(path), result.quarantined[table])
    assert not list((tmp_path / "run" / "quarantine").glob(".*"))
    clean = split(f.tables(), f.experiment(), f.AS_OF, now=f.NOW)
    # replaces, and writes empty files
    again = write_quarantine(tmp_path / "run", clean.quarantined)
    assert pl.read_parquet(again["events"]).height == 0
    assert "reason" in pl.read_parquet(again["events"]).columns


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


# --------------------------------------------------------------------------- property


_TS = [
    f.T0,
    f.T0 + dt.timedelta(days=1),
    f.T0 + dt.timedelta(days=1),
    dt.datetime(2026, 10, 9, tzinfo=dt.UTC),  # future
    dt.datetime(2026, 8, 1, tzinfo=dt.UTC),  # before the window
    None,
]
_EVENTS = ["task_started", "task_completed", "feedback", "trust_survey", "ai_edited", None]
_VALUES = [None, -1.0, 0.5, 1.0, 3.0, 9.0]


@st.composite
def _tables(draw: st.DrawFn) -> dict[str, pl.DataFrame]:
    units = st.sampled_from(["u0", "u1", "u2", "u3", None])
    variant = st.sampled_from(["control", "ai", "beta", None])
    a_rows = draw(st.lists(st.tuples(units, variant, st.sampled_from(_TS[:5])), max_size=8))
    e_rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["e0", "e1", "e2", "e3", None]),
                st.sampled_from(["u0", "u1", "u2", "u3", "u9", None]),
                st.sampled_from(_TS),
                st.sampled_from(_EVENTS),
                st.sampled_from(_VALUES),
            ),
            max_size=14,
        )
    )
    assignments = pl.DataFrame(
        {
            "experiment_id": ["exp"] * len(a_rows),
            "unit_id": [r[0] for r in a_rows],
            "variant": [r[1] for r in a_rows],
            "assigned_at": [r[2] for r in a_rows],
        },
        schema=schema.ASSIGNMENTS,
    )
    events: dict[str, list[Any]] = {c: [] for c in schema.EVENTS}
    for event_id, unit, ts, name, value in e_rows:
        for c, v in zip(schema.EVENTS, (event_id, unit, ts, name, value, None, None), strict=True):
            events[c].append(v)
    return {"assignments": assignments, "events": pl.DataFrame(events, schema=schema.EVENTS)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_tables(), seed=st.integers(0, 2**16))
def test_nothing_is_lost_and_row_order_does_not_matter(
    data: dict[str, pl.DataFrame], seed: int
) -> None:
    experiment = f.experiment()
    result = split(data, experiment, f.AS_OF, now=f.NOW)
    shuffled = {t: frame.sample(fraction=1.0, shuffle=True, seed=seed) for t, frame in data.items()}
    again = split(shuffled, experiment, f.AS_OF, now=f.NOW)
    for table, frame in data.items():
        used, out = getattr(result, table), result.quarantined[table]
        assert result.rows_in[table] == frame.height == used.height + out.height
        assert_frame_equal(_sorted(pl.concat([used, out.drop("reason")])), _sorted(frame))
        assert_frame_equal(_sorted(getattr(again, table)), _sorted(used))
        assert_frame_equal(_sorted(again.quarantined[table]), _sorted(out))
    assert (
        result.events.filter(pl.col("event_id").is_not_null())
        .get_column("event_id")
        .is_unique()
        .all()
    )


def test_an_input_column_named_reason_is_kept() -> None:
    a = f.assignments().with_columns(pl.lit("promo").alias("reason"))
    a = f.set_rows(a, [0], variant="beta")
    result = split({"assignments": a, "events": f.events()}, f.experiment(), f.AS_OF, now=f.NOW)
    out = result.quarantined["assignments"]
    assert out.columns == [*a.columns, "quarantine_reason"]
    assert out.row(0, named=True) == {
        **a.row(0, named=True),
        "quarantine_reason": "unknown_variant",
    }
    assert result.assignments.get_column("reason").to_list() == ["promo"] * (f.UNITS - 1)
    assert result.counts["assignments"] == {"unknown_variant": 1}


@given(st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_maybe_repeated_marks_every_repeated_value(values: list[str | None]) -> None:
    """The fast mask (sorted hashes) holds every row is_duplicated marks; without a
    hash collision (none among short texts) it is exactly is_duplicated."""
    from analysis.keys import maybe_repeated

    series = pl.Series("k", values, dtype=pl.String)
    assert maybe_repeated(series).to_list() == series.is_duplicated().to_list()


def test_a_hash_collision_is_not_taken_for_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows kept by a colliding hash alone are not quarantined: the rank is over the key."""
    import analysis.quarantine

    def collide(values: pl.Series) -> pl.Series:  # as if every hash collided
        return pl.Series(values.name, [True] * values.len())

    monkeypatch.setattr(analysis.quarantine, "maybe_repeated", collide)
    tables = f.tables()
    plain = split(tables, f.experiment(), f.AS_OF, now=f.NOW)
    assert plain.counts["events"].get("duplicate_event_id", 0) == 0
    assert plain.counts["assignments"].get("duplicate_assignment", 0) == 0
    copy = tables["events"].head(1)
    doubled = {**tables, "events": pl.concat([tables["events"], copy])}
    held = split(doubled, f.experiment(), f.AS_OF, now=f.NOW)
    assert held.counts["events"]["duplicate_event_id"] == 1


def test_a_fingerprint_is_the_count_and_the_sums_of_the_hash_and_of_its_splitmix64_mix() -> None:
    """Checked against splitmix64's finalizer written out in Python integers (mod 2^64)."""
    from analysis.keys import fingerprint_sums, row_hash

    def splitmix(x: int) -> int:
        mask = (1 << 64) - 1
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & mask
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & mask
        return x ^ (x >> 31)

    rows = pl.DataFrame({"a": ["x", "y", None, "x"], "b": [1.0, 2.5, 3.0, None]})
    hashes = rows.select(row_hash("a", "b")).to_series().to_list()
    found = rows.select(row_hash("a", "b")).select(fingerprint_sums()).row(0)
    assert found == (4, sum(hashes) % 2**64, sum(splitmix(h) for h in hashes) % 2**64)
    shuffled = rows.reverse().select(row_hash("a", "b")).select(fingerprint_sums()).row(0)
    assert shuffled == found
    edited = rows.with_columns(pl.when(pl.col("b") == 2.5).then(2.25).otherwise("b").alias("b"))
    changed = edited.select(row_hash("a", "b")).select(fingerprint_sums()).row(0)
    assert changed[0] == found[0]
    assert changed[1] != found[1]
    assert changed[2] != found[2]
