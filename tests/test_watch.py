"""Source fingerprints, new-data detection and the watch state file (analysis.watch)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analysis.config.sources import DuckDBSource, FileSource, SqlSource
from analysis.sources.errors import SourceError
from analysis.watch import (
    Fingerprint,
    Landed,
    Seen,
    data_version,
    detect,
    duckdb_fingerprint,
    files_fingerprint,
    landed_as_of,
    load_state,
    partition_days,
    save_state,
    source_fingerprint,
    sql_fingerprint,
)
from tests.pg_factories import PG_URI, throwaway_schema

NOW = dt.datetime(2026, 11, 26, 9, 15, tzinfo=dt.UTC)
TODAY = NOW.date()


def _touch(path: Path, body: bytes = b"x", mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


# --------------------------------------------------------------------------- files


def test_partition_days_reads_hive_and_plain_names() -> None:
    paths = [
        "/d/events/date=2026-11-19/part-0.parquet",
        "/d/events/date=2026-11-20/part-0.parquet",
        "/d/events/date=2026-11-20/part-1.parquet",
        "/d/events-2026-11-18.csv",
        "/d/events/2026-02-30.parquet",  # not a date: ignored
        "/d/events/120261121.parquet",  # digits run on: not a day
    ]
    assert partition_days(paths) == (
        dt.date(2026, 11, 18),
        dt.date(2026, 11, 19),
        dt.date(2026, 11, 20),
    )


def test_files_fingerprint_changes_with_names_sizes_and_times(tmp_path: Path) -> None:
    pattern = str(tmp_path / "events" / "*.parquet")
    _touch(tmp_path / "events" / "a.parquet", b"abc", mtime_ns=1_000_000_000)
    first = files_fingerprint([pattern])
    assert files_fingerprint([pattern]) == first  # nothing changed: same digest
    assert first.detail == {"files": 1, "bytes": 3}

    _touch(tmp_path / "events" / "a.parquet", b"abc", mtime_ns=2_000_000_000)
    touched = files_fingerprint([pattern])
    assert touched.digest != first.digest

    _touch(tmp_path / "events" / "a.parquet", b"abcd", mtime_ns=2_000_000_000)
    grown = files_fingerprint([pattern])
    assert grown.digest != touched.digest

    _touch(tmp_path / "events" / "b.parquet", b"abcd", mtime_ns=2_000_000_000)
    assert files_fingerprint([pattern]).digest != grown.digest
    assert files_fingerprint([pattern]).max_ts is None


def test_files_fingerprint_refuses_remote_paths() -> None:
    with pytest.raises(SourceError, match="remote files"):
        files_fingerprint(["s3://bucket/events/*.parquet"])


def test_file_source_fingerprint_covers_both_tables(tmp_path: Path) -> None:
    source = FileSource(
        kind="parquet",
        assignments=str(tmp_path / "assignments.parquet"),
        events=str(tmp_path / "events" / "date=*" / "*.parquet"),
    )
    _touch(tmp_path / "assignments.parquet")
    _touch(tmp_path / "events" / "date=2026-11-20" / "p.parquet")
    fp = source_fingerprint(source)
    assert fp.days == (dt.date(2026, 11, 20),)
    assert fp.detail == {"files": 2, "bytes": 2}


# --------------------------------------------------------------------------- databases


def _duckdb(path: Path, events: int, last: str = "2026-11-20 23:00:00+00") -> DuckDBSource:
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone='UTC'")
        con.execute(
            "CREATE OR REPLACE TABLE assignments AS SELECT 'e' AS experiment_id, "
            "'u' || i AS unit_id, TIMESTAMPTZ '2026-11-01 00:00:00+00' AS assigned_at "
            "FROM range(3) t(i)"
        )
        con.execute(
            f"CREATE OR REPLACE TABLE events AS SELECT 'u1' AS unit_id, "
            f"TIMESTAMPTZ '{last}' - i * INTERVAL 1 MINUTE AS ts FROM range({events}) t(i)"
        )
    return DuckDBSource(kind="duckdb", path=path)


def test_duckdb_fingerprint_counts_rows_and_finds_the_newest_event(tmp_path: Path) -> None:
    source = _duckdb(tmp_path / "w.duckdb", events=5)
    fp = duckdb_fingerprint(source)
    assert fp.max_ts == dt.datetime(2026, 11, 20, 23, tzinfo=dt.UTC)
    assert fp.detail is not None
    assert fp.detail["events"]["rows"] == 5
    assert fp.detail["assignments"]["rows"] == 3
    assert duckdb_fingerprint(source) == fp

    more = duckdb_fingerprint(_duckdb(tmp_path / "w.duckdb", events=6))
    assert more.digest != fp.digest  # a late row, same max(ts): the count tells
    later = duckdb_fingerprint(_duckdb(tmp_path / "w.duckdb", 6, "2026-11-21 01:00:00+00"))
    assert later.max_ts == dt.datetime(2026, 11, 21, 1, tzinfo=dt.UTC)


def test_duckdb_fingerprint_maps_columns_and_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE a (assigned TIMESTAMPTZ)")
        con.execute("CREATE TABLE e (happened_at TIMESTAMPTZ)")
    mapped = DuckDBSource(
        kind="duckdb", path=path, assignments="a", events="e",
        columns={"assigned_at": "assigned", "ts": "happened_at"},
    )  # fmt: skip
    assert duckdb_fingerprint(mapped).max_ts is None  # empty tables
    unmapped = DuckDBSource(kind="duckdb", path=path, assignments="a", events="e")
    with pytest.raises(SourceError, match="assigned_at"):
        duckdb_fingerprint(unmapped)
    with pytest.raises(SourceError, match="not found"):
        duckdb_fingerprint(DuckDBSource(kind="duckdb", path=tmp_path / "missing.duckdb"))
    with pytest.raises(SourceError, match="not valid"):
        duckdb_fingerprint(DuckDBSource(kind="duckdb", path=path, events="e; DROP TABLE a"))


@pytest.fixture
def pg_tables() -> Iterator[str]:
    with throwaway_schema("proof_watch") as (con, name):
        con.execute(f"CREATE TABLE {name}.assignments (user_id text, assigned_at timestamptz)")
        con.execute(f"CREATE TABLE {name}.events (user_id text, ts timestamptz)")
        con.execute(f"INSERT INTO {name}.assignments VALUES ('u1', '2026-11-01T00:00:00Z')")
        con.execute(f"INSERT INTO {name}.events VALUES ('u1', '2026-11-20T10:00:00Z')")
        yield name


def test_sql_fingerprint_uses_max_ts(pg_tables: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("PROOF_TEST_WATCH_URI", PG_URI)
    source = SqlSource(
        kind="sql", uri_env="PROOF_TEST_WATCH_URI",
        assignments=f"{pg_tables}.assignments", events=f"{pg_tables}.events",
    )  # fmt: skip
    first = sql_fingerprint(source)
    assert first.max_ts == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    with psycopg.connect(PG_URI, autocommit=True) as con:
        con.execute(f"INSERT INTO {pg_tables}.events VALUES ('u1', '2026-11-21T08:00:00Z')")
    second = sql_fingerprint(source)
    assert second.digest != first.digest
    assert second.max_ts == dt.datetime(2026, 11, 21, 8, tzinfo=dt.UTC)


def test_sql_fingerprint_needs_its_uri_and_never_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = SqlSource(kind="sql", uri_env="PROOF_TEST_WATCH_UNSET", assignments="a", events="e")
    monkeypatch.delenv("PROOF_TEST_WATCH_UNSET", raising=False)
    with pytest.raises(SourceError, match="PROOF_TEST_WATCH_UNSET is not set"):
        sql_fingerprint(source)
    secret = "postgresql://postgres:s3cret@127.0.0.1:5432/test"
    monkeypatch.setenv("PROOF_TEST_WATCH_UNSET", secret)
    with pytest.raises(SourceError) as info:
        sql_fingerprint(source.model_copy(update={"events": "no_such.table"}))
    assert "s3cret" not in str(info.value)


# --------------------------------------------------------------------------- detection


def _seen(digest: str, max_ts: dt.datetime | None = None, days: tuple[dt.date, ...] = ()) -> Seen:
    return Seen("warehouse", digest, max_ts, days, NOW - dt.timedelta(minutes=15))


def test_first_look_sets_a_baseline_and_reports_nothing() -> None:
    landed, state = detect({}, {"exp": ("warehouse", Fingerprint("d1"))}, NOW)
    assert landed == []
    assert state == {"exp": Seen("warehouse", "d1", None, (), NOW)}


def test_unchanged_data_reports_nothing() -> None:
    before = {"exp": _seen("d1")}
    landed, state = detect(before, {"exp": ("warehouse", Fingerprint("d1"))}, NOW)
    assert landed == []
    assert state["exp"].checked_at == NOW


def test_a_newer_event_reports_its_day() -> None:
    old = dt.datetime(2026, 11, 19, 23, tzinfo=dt.UTC)
    new = dt.datetime(2026, 11, 20, 23, tzinfo=dt.UTC)
    landed, state = detect(
        {"exp": _seen("d1", old)}, {"exp": ("warehouse", Fingerprint("d2", max_ts=new))}, NOW
    )
    assert landed == [
        Landed("exp", "warehouse", dt.date(2026, 11, 20), f"newest event {old} -> {new}")
    ]
    assert state["exp"].max_ts == new


def test_new_day_partitions_report_the_newest_new_day() -> None:
    days = (dt.date(2026, 11, 18), dt.date(2026, 11, 19))
    now_days = (*days, dt.date(2026, 11, 20), dt.date(2026, 11, 21))
    landed, _ = detect(
        {"exp": _seen("d1", days=days)},
        {"exp": ("files", Fingerprint("d2", days=now_days))},
        NOW,
    )
    [item] = landed
    assert item.as_of == dt.date(2026, 11, 21)
    assert item.source == "files"


def test_a_rewritten_file_without_days_means_yesterday() -> None:
    landed, _ = detect({"exp": _seen("d1")}, {"exp": ("warehouse", Fingerprint("d2"))}, NOW)
    assert landed == [Landed("exp", "warehouse", None, "source changed")]


@pytest.mark.parametrize(
    ("max_ts", "expected"),
    [
        (dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.UTC), dt.date(2026, 11, 20)),
        (
            dt.datetime(2026, 11, 26, 8, tzinfo=dt.UTC),
            dt.date(2026, 11, 25),
        ),  # today: still arriving
        (dt.datetime(2027, 1, 1, tzinfo=dt.UTC), dt.date(2026, 11, 25)),  # future clock skew
        (  # a time zone other than UTC counts in UTC
            dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.date(2026, 11, 20),
        ),
    ],
)
def test_landed_as_of_is_never_today_or_later(max_ts: dt.datetime, expected: dt.date) -> None:
    assert landed_as_of(None, Fingerprint("d", max_ts=max_ts), TODAY) == expected


def test_experiments_that_left_are_dropped() -> None:
    before = {"exp": _seen("d1"), "gone": _seen("d9")}
    _, state = detect(before, {"exp": ("warehouse", Fingerprint("d1"))}, NOW)
    assert set(state) == {"exp"}


def test_a_new_source_for_an_experiment_counts_as_new_data() -> None:
    before = {"exp": _seen("d1")}
    landed, _ = detect(before, {"exp": ("files", Fingerprint("d1"))}, NOW)
    assert [item.experiment_id for item in landed] == ["exp"]


def test_data_version_follows_data_config_and_files(tmp_path: Path) -> None:
    suite = tmp_path / "events.json"
    suite.write_text("{}")
    source = DuckDBSource(kind="duckdb", path=tmp_path / "w.duckdb")
    fp = Fingerprint("d1", stamp="s1")
    base = data_version("exp", source, fp, [suite])
    assert base is not None
    assert data_version("exp", source, fp, [suite]) == base
    assert data_version("other", source, fp, [suite]) != base
    assert data_version("exp", source, Fingerprint("d2", stamp="s1"), [suite]) != base
    assert data_version("exp", source, Fingerprint("d1", stamp="s2"), [suite]) != base
    moved = source.model_copy(update={"path": tmp_path / "x.duckdb"})
    assert data_version("exp", moved, fp, [suite]) != base
    suite.write_text('{"expectations": []}')
    assert data_version("exp", source, fp, [suite]) != base


def test_no_data_version_without_a_stamp() -> None:
    """A database without files can change without its newest time changing: no reuse."""
    source = SqlSource(kind="sql", uri_env="X", assignments="a", events="e")
    assert data_version("exp", source, Fingerprint("d1", max_ts=NOW)) is None


def test_an_in_place_update_changes_the_duckdb_stamp_not_the_digest(tmp_path: Path) -> None:
    source = _duckdb(tmp_path / "w.duckdb", events=5)
    before = duckdb_fingerprint(source)
    with duckdb.connect(str(source.path)) as con:
        con.execute("UPDATE events SET unit_id = 'u2' WHERE ts < (SELECT max(ts) FROM events)")
    after = duckdb_fingerprint(source)
    assert after.digest == before.digest  # no new data for the watch...
    assert after.stamp != before.stamp  # ...but cached validation must not be reused


# --------------------------------------------------------------------------- state file


def test_state_round_trips_through_an_atomic_json_file(tmp_path: Path) -> None:
    path = tmp_path / ".state" / "watch.json"
    state = {
        "a": Seen("warehouse", "d1", dt.datetime(2026, 11, 20, 23, tzinfo=dt.UTC), (), NOW),
        "b": Seen("files", "d2", None, (dt.date(2026, 11, 20),), NOW),
    }
    save_state(path, state)
    assert load_state(path) == state
    body: dict[str, Any] = json.loads(path.read_text())
    assert body["version"] == 1
    assert body["experiments"]["b"]["days"] == ["2026-11-20"]
    assert [p.name for p in path.parent.iterdir()] == ["watch.json"]  # no temporary left


def test_missing_state_is_a_first_look(tmp_path: Path) -> None:
    assert load_state(tmp_path / "nothing.json") == {}


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        '{"version": 99, "experiments": {}}',
        '{"version": 1, "experiments": {"a": {}}}',
        "[]",
    ],
)
def test_unreadable_state_is_logged_and_treated_as_a_first_look(
    tmp_path: Path, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "watch.json"
    path.write_text(body)
    with caplog.at_level(logging.WARNING, logger="analysis.watch"):
        assert load_state(path) == {}
    assert "ignoring unreadable watch state" in caplog.text


# --------------------------------------------------------------------------- the flow


@pytest.mark.usefixtures("prefect_server")
def test_watch_sources_flow_emits_once_per_landing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis.config.load import load_config
    from analysis.devtools.simulate import simulate, write_duckdb
    from flows import events
    from flows.watch import STATE_FILE, watch_sources
    from tests.conftest import AS_OF, make_config_dir

    emitted: list[tuple[str, dt.date | None]] = []
    monkeypatch.setattr(
        events,
        "data_landed",
        lambda experiment_id, as_of, **_: emitted.append((experiment_id, as_of)),
    )
    config_dir = make_config_dir(tmp_path)
    warehouse = tmp_path / "data" / "warehouse.duckdb"
    write_duckdb(
        warehouse, simulate(list(load_config(config_dir).experiments.values()), 50, AS_OF, 3)
    )
    out = tmp_path / "reports"
    args = {"config_dir": str(config_dir), "out_dir": str(out)}

    assert watch_sources(**args) == []  # the first look is a baseline
    assert set(load_state(out / STATE_FILE)) == {
        "smart-compose",
        "auto-triage",
        "summaries-holdout",
    }
    assert watch_sources(**args) == []

    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "INSERT INTO events SELECT * REPLACE (ts + INTERVAL 1 DAY AS ts, event_id || '-late'"
            " AS event_id) FROM events ORDER BY ts DESC LIMIT 1"
        )
        newest = con.execute("SELECT max(ts) FROM events").fetchone()
    assert newest is not None
    landed = watch_sources(**args)
    day = min(newest[0].astimezone(dt.UTC).date(), dt.datetime.now(dt.UTC).date() - dt.timedelta(1))
    assert sorted(landed, key=lambda x: x["experiment_id"]) == [
        {"experiment_id": "auto-triage", "as_of": day.isoformat()},
        {"experiment_id": "smart-compose", "as_of": day.isoformat()},
        {"experiment_id": "summaries-holdout", "as_of": day.isoformat()},
    ]
    assert sorted(emitted) == [
        ("auto-triage", day),
        ("smart-compose", day),
        ("summaries-holdout", day),
    ]
    assert watch_sources(**args) == []  # reported once

    before = load_state(out / STATE_FILE)
    warehouse.rename(warehouse.with_suffix(".gone"))  # an unreadable source keeps its state
    assert watch_sources(**args) == []
    after = load_state(out / STATE_FILE)
    assert {k: v.digest for k, v in after.items()} == {k: v.digest for k, v in before.items()}
