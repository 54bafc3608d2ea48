"""Stored partials give the same numbers as a full recompute, whatever happened to the data."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis import timeline
from analysis.aggregates import Moments
from analysis.config.load import load_config
from analysis.devtools.simulate import simulate
from analysis.measurement import Window
from analysis.metrics import clean_assignments
from analysis.partials import PartialSpec, partials, unit_table_from_partials
from analysis.partials_cache import CacheUse, cached_partials, cached_partials_of
from analysis.quarantine import split
from tests.conftest import AS_OF, CONFIGS

CONFIG = load_config(CONFIGS)
EXPERIMENT = CONFIG.experiment("smart-compose")
METRICS = CONFIG.metrics_of(EXPERIMENT)
PRIMARY = CONFIG.metrics[EXPERIMENT.metrics.primary]
SPEC = PartialSpec.of(METRICS, EXPERIMENT.window_days, EXPERIMENT.pre_window_days)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    sim = simulate([EXPERIMENT], 1_500, AS_OF, seed=5)
    events = sim.events.unique(subset="event_id", keep="first", maintain_order=True)
    return sim.assignments, events


def _as_of(
    tables: tuple[pl.DataFrame, pl.DataFrame], as_of: dt.date
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """What the source holds on the morning after ``as_of``."""
    assignments, events = tables
    end = dt.datetime.combine(as_of + DAY, dt.time(), dt.UTC)
    a = assignments.filter(pl.col("assigned_at") < end)
    e = events.filter(
        (pl.col("ts") < end) & pl.col("unit_id").is_in(a.get_column("unit_id").implode())
    )
    return a.lazy(), e.lazy()


Views = tuple[pl.DataFrame, dict[str, dict[dt.date, Moments]], dict[str, dict[int, Moments]]]


def _views(
    assignments: pl.LazyFrame, events: pl.LazyFrame, rows: pl.LazyFrame, as_of: dt.date
) -> Views:
    window = Window(as_of, EXPERIMENT.window_days, EXPERIMENT.pre_window_days)
    units = clean_assignments(assignments, window).collect().lazy()
    table = unit_table_from_partials(units, rows, METRICS, SPEC, as_of).collect()
    daily = timeline.daily_moments(units, rows, PRIMARY, as_of, EXPERIMENT.start)
    weekly = timeline.weekly_moments(units, rows, [PRIMARY], window)[PRIMARY.name]
    return table.sort("unit_id"), daily, weekly


def _run(
    assignments: pl.LazyFrame,
    events: pl.LazyFrame,
    as_of: dt.date,
    cache: Path | None,
    refresh: bool = False,
) -> tuple[Views, CacheUse | None]:
    window = Window(as_of, EXPERIMENT.window_days, EXPERIMENT.pre_window_days)
    units = clean_assignments(assignments, window).collect().lazy()
    if cache is None:
        rows, use = partials(events, units, SPEC).collect().lazy(), None
    else:
        rows, use = cached_partials(events, units, SPEC, cache, as_of, refresh=refresh)
    return _views(assignments, events, rows, as_of), use


def _assert_moments(got: Any, want: Any) -> None:
    assert got.keys() == want.keys()
    for variant, by_key in want.items():
        assert by_key.keys() == got[variant].keys()
        for key, m in by_key.items():
            g = got[variant][key]
            assert g.n == m.n, (variant, key)
            for field in ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy"):
                assert getattr(g, field) == pytest.approx(getattr(m, field), rel=1e-9, abs=1e-9)


def _assert_same(got: Views, want: Views) -> None:
    assert_frame_equal(got[0], want[0], check_exact=False, rel_tol=1e-12)
    _assert_moments(got[1], want[1])
    _assert_moments(got[2], want[2])


def test_a_cold_cache_equals_the_direct_computation(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    a, e = _as_of(data, AS_OF)
    cached, use = _run(a, e, AS_OF, tmp_path)
    direct, _ = _run(a, e, AS_OF, None)
    _assert_same(cached, direct)
    assert use is not None
    assert use.reused == 0
    assert use.computed > 0
    again, use2 = _run(a, e, AS_OF, tmp_path)
    _assert_same(again, direct)
    assert use2 is not None
    assert use2.computed == 0
    assert use2.reused == use.computed
    assert use2.days_written == 0


def test_a_new_day_computes_only_its_own_partitions(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    yesterday = AS_OF - DAY
    _run(*_as_of(data, yesterday), yesterday, tmp_path)
    a, e = _as_of(data, AS_OF)
    tonight, use = _run(a, e, AS_OF, tmp_path)
    full, _ = _run(a, e, AS_OF, None)
    _assert_same(tonight, full)
    assert use is not None
    assert use.reused > 0
    # the new day (every cohort) and the new cohort's pre-period days: nothing else
    new_day = e.filter(pl.col("ts").dt.date() == AS_OF)
    new_cohort = a.filter(pl.col("assigned_at").dt.date() == AS_OF).select("unit_id")
    allowed = (
        new_day.join(a.select("unit_id", pl.col("assigned_at").dt.date().alias("c")), on="unit_id")
        .select("c")
        .unique()
        .collect()
        .height
        + e.join(new_cohort, on="unit_id", how="semi")
        .filter(pl.col("ts").dt.date() < AS_OF)
        .select(pl.col("ts").dt.date())
        .unique()
        .collect()
        .height
    )
    assert use.computed <= allowed
    assert use.computed < use.reused


def test_a_day_changed_after_the_fact_is_recomputed(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    a, e = _as_of(data, AS_OF)
    _run(a, e, AS_OF, tmp_path)
    changed_day = AS_OF - 5 * DAY
    on_day = pl.col("ts").dt.date() == changed_day
    completed = pl.col("event") == "task_completed"
    edited = e.with_columns(
        pl.when(on_day & completed)
        .then(pl.col("value") * 2)
        .otherwise(pl.col("value"))
        .alias("value")
    ).filter(~(on_day & (pl.col("event") == "retry")))
    after, use = _run(a, edited, AS_OF, tmp_path)
    full, _ = _run(a, edited, AS_OF, None)
    _assert_same(after, full)
    assert use is not None
    assert use.computed > 0
    assert use.days_written == 1


def test_a_deleted_day_is_forgotten(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    a, e = _as_of(data, AS_OF)
    _run(a, e, AS_OF, tmp_path)
    gone = AS_OF - 3 * DAY
    without = e.filter(pl.col("ts").dt.date() != gone)
    after, use = _run(a, without, AS_OF, tmp_path)
    full, _ = _run(a, without, AS_OF, None)
    _assert_same(after, full)
    assert use is not None
    assert use.computed == 0
    assert use.days_forgotten == 1
    assert not (tmp_path / f"{gone.isoformat()}.json").exists()
    assert len(list(tmp_path.glob(f"{gone.isoformat()}-*.parquet"))) == 0


def test_refresh_ignores_and_rewrites_the_cache(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    a, e = _as_of(data, AS_OF)
    _, first = _run(a, e, AS_OF, tmp_path)
    # a poisoned file: a refresh must not read it, and must replace it
    manifest = next(tmp_path.glob("*.json"))
    stored = next(tmp_path.glob(f"{manifest.stem}-*.parquet"))
    pl.read_parquet(stored).with_columns(pl.col("unit_id").str.reverse()).write_parquet(stored)
    refreshed, use = _run(a, e, AS_OF, tmp_path, refresh=True)
    full, _ = _run(a, e, AS_OF, None)
    _assert_same(refreshed, full)
    assert first is not None
    assert use is not None
    assert use.reused == 0
    assert use.computed == first.computed
    clean, use2 = _run(a, e, AS_OF, tmp_path)
    _assert_same(clean, full)
    assert use2 is not None
    assert use2.computed == 0


def test_an_unreadable_manifest_is_recomputed(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, e = _as_of(data, AS_OF)
    _run(a, e, AS_OF, tmp_path)
    manifest = sorted(tmp_path.glob("*.json"))[-1]
    manifest.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="analysis.partials_cache"):
        after, use = _run(a, e, AS_OF, tmp_path)
    assert str(manifest) in caplog.text
    full, _ = _run(a, e, AS_OF, None)
    _assert_same(after, full)
    assert use is not None
    assert use.days_written == 1
    assert use.computed > 0


def test_a_unit_crossing_over_tonight_invalidates_no_partition(
    data: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    """The split's partial inputs keep crossed-over units: their partitions keep their keys."""
    a, e = (frame.collect() for frame in _as_of(data, AS_OF))
    old = a.filter(pl.col("assigned_at").dt.date() < AS_OF - 10 * DAY).row(0, named=True)
    other = next(v for v in EXPERIMENT.variants if v != old["variant"])
    later = dt.datetime.combine(AS_OF, dt.time(12), dt.UTC)
    crossed = pl.concat(
        [a, pl.DataFrame([old | {"variant": other, "assigned_at": later}], a.schema)]
    )
    now = dt.datetime.combine(AS_OF + DAY, dt.time(6), dt.UTC)
    window = Window(AS_OF, EXPERIMENT.window_days, EXPERIMENT.pre_window_days)

    def night(assignments: pl.DataFrame) -> tuple[Views, CacheUse, Views]:
        q = split({"assignments": assignments, "events": e}, EXPERIMENT, AS_OF, now=now)
        rows, use = cached_partials_of(q.partial_inputs(), SPEC, tmp_path, AS_OF)
        used_units = clean_assignments(q.assignments.lazy(), window).collect().lazy()
        full = partials(q.events.lazy(), used_units, SPEC).collect().lazy()
        views = _views(q.assignments.lazy(), q.events.lazy(), rows, AS_OF)
        return views, use, _views(q.assignments.lazy(), q.events.lazy(), full, AS_OF)

    night(a)
    tonight, use, full = night(crossed)
    _assert_same(tonight, full)
    assert use.computed == 0
    assert old["unit_id"] not in tonight[0].get_column("unit_id").to_list()
