"""Per-unit metrics: windows, duplicates, crossovers, and mergeable per-arm moments."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import schema
from analysis.config.load import load_config
from analysis.measurement import Window
from analysis.metrics import arm_moments, clean_assignments, cleaning_counts, unit_table

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
EXPERIMENT = CONFIG.experiment("smart-compose")
METRICS = CONFIG.metrics_of(EXPERIMENT)
T0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
AS_OF = dt.date(2026, 11, 10)


def _h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _assignments(rows: list[tuple[str, str, dt.datetime]]) -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "experiment_id": ["smart-compose"] * len(rows),
            "unit_id": [r[0] for r in rows],
            "variant": [r[1] for r in rows],
            "assigned_at": [r[2] for r in rows],
            "platform": ["web"] * len(rows),
        },
        schema_overrides={"assigned_at": schema.UTC_MICROS},
    ).lazy()


def _events(rows: list[tuple[str, str, dt.datetime, str, float | None]]) -> pl.LazyFrame:
    return pl.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "unit_id": [r[1] for r in rows],
            "ts": [r[2] for r in rows],
            "event": [r[3] for r in rows],
            "value": [r[4] for r in rows],
            "task_id": [None] * len(rows),
            "label": [None] * len(rows),
        },
        schema_overrides={
            "ts": schema.UTC_MICROS,
            "value": pl.Float64,
            "task_id": pl.String,
            "label": pl.String,
        },
    ).lazy()


ASSIGNMENTS = _assignments(
    [
        ("a", "control", _h(0)),
        ("b", "ai", _h(0)),
        ("c", "ai", _h(1)),
        ("x", "control", _h(0)),  # crossed over: in both arms
        ("x", "ai", _h(2)),
        ("late", "ai", dt.datetime(2026, 11, 11, tzinfo=dt.UTC)),  # after the analysis date
    ]
)
EVENTS = _events(
    [
        ("e1", "a", _h(1), "task_started", None),
        ("e2", "a", _h(2), "task_completed", 100.0),
        ("e2", "a", _h(2), "task_completed", 100.0),  # delivery retry
        ("e3", "a", _h(-1), "task_started", None),  # before assignment: pre-period
        ("e4", "b", _h(1), "task_started", None),
        ("e5", "b", _h(1), "task_started", None),
        ("e6", "b", _h(2), "task_completed", 50.0),
        ("e7", "b", _h(3), "feedback", -1.0),
        ("e8", "b", _h(3), "feedback", 1.0),
        ("e9", "b", _h(4), "trust_survey", 6.0),
        ("e10", "b", dt.datetime(2026, 11, 11, tzinfo=dt.UTC), "task_started", None),  # too late
        ("e11", "x", _h(3), "task_started", None),
        ("e12", "c", _h(2), "ai_shown", None),
        ("e13", "c", _h(2), "ai_accepted", None),
    ]
)


def _table(window_days: int | None = None) -> pl.DataFrame:
    window = Window(AS_OF, window_days)
    units = clean_assignments(ASSIGNMENTS, window)
    return unit_table(units, EVENTS, METRICS, window).collect().sort("unit_id")


def test_unit_values_by_hand() -> None:
    t = _table()
    assert t["unit_id"].to_list() == ["a", "b", "c"]  # no crossover, no late unit
    row = {r["unit_id"]: r for r in t.iter_rows(named=True)}
    # a: one task started in window (e3 is pre-period), one completed (e2 counted once)
    assert row["a"]["task_completion_rate__num"] == 1
    assert row["a"]["task_completion_rate__den"] == 1
    assert row["a"]["time_on_task__num"] == 100.0
    assert row["a"]["tasks_completed_per_user"] == 1
    assert row["a"]["users_completing_a_task"] == 1.0
    # b: two tasks started (e10 after the analysis date), one completed
    assert row["b"]["task_completion_rate__den"] == 2
    assert row["b"]["thumbs_down_rate__num"] == 1
    assert row["b"]["thumbs_down_rate__den"] == 2
    assert row["b"]["trust_score"] == 6.0
    # c: no tasks and no survey: counts are 0, the survey mean is missing
    assert row["c"]["tasks_completed_per_user"] == 0
    assert row["c"]["users_completing_a_task"] == 0.0
    assert row["c"]["trust_score"] is None
    assert row["c"]["acceptance_rate__num"] == 1
    assert row["c"]["acceptance_rate__den"] == 1


def test_pre_period_columns_come_from_the_same_pass() -> None:
    window = Window(AS_OF, pre_days=14)
    units = clean_assignments(ASSIGNMENTS, window)
    t = unit_table(units, EVENTS, METRICS, window).collect().sort("unit_id")
    row = {r["unit_id"]: r for r in t.iter_rows(named=True)}
    # e3 is a's task started an hour before assignment: pre-period only
    assert row["a"]["task_completion_rate__den__pre"] == 1
    assert row["a"]["task_completion_rate__den"] == 1
    assert row["b"]["task_completion_rate__den__pre"] == 0
    assert row["a"]["tasks_completed_per_user__pre"] == 0
    assert row["c"]["trust_score__pre"] is None
    # without a pre-period there are no __pre columns
    assert not [c for c in _table().columns if c.endswith("__pre")]


def test_window_days_limits_each_unit() -> None:
    window_events = _events([("w1", "a", _h(24 * 3), "task_started", None)])
    window = Window(AS_OF, 2)
    units = clean_assignments(ASSIGNMENTS, window)
    t = unit_table(units, window_events, METRICS, window).collect()
    assert t["task_completion_rate__den"].sum() == 0
    t = unit_table(units, window_events, METRICS, Window(AS_OF, 4)).collect()
    assert t["task_completion_rate__den"].sum() == 1


def test_cleaning_counts() -> None:
    window = Window(AS_OF)
    units = clean_assignments(ASSIGNMENTS, window)
    counts = cleaning_counts(units, EVENTS, EXPERIMENT)
    assert counts.crossovers_excluded == 1
    assert counts.duplicates_dropped == 1
    assert counts.events == 14
    assert dict(counts.units) == {"control": 1, "ai": 2}


def test_arm_moments_match_numpy() -> None:
    t = _table()
    moments = arm_moments(t.lazy(), METRICS)
    ai = t.filter(pl.col("variant") == "ai")
    m = moments["task_completion_rate"]["ai"]
    assert m.n == 2
    assert m.mean_x == pytest.approx(ai["task_completion_rate__num"].mean())
    assert m.mean_y == pytest.approx(ai["task_completion_rate__den"].mean())
    num = ai["task_completion_rate__num"].to_numpy()
    den = ai["task_completion_rate__den"].to_numpy()
    assert m.cov_xy == pytest.approx(np.cov(num, den, ddof=1)[0, 1])
    # trust_score: only responding units enter
    assert moments["trust_score"]["ai"].n == 1
    assert "ai_latency_p95" not in moments


@st.composite
def _random_units(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(min_value=2, max_value=40))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(n)],
            "variant": rng.choice(["control", "ai"], n).tolist(),
            "task_completion_rate__num": rng.poisson(2, n).astype(float),
            "task_completion_rate__den": rng.poisson(3, n).astype(float),
            "tasks_completed_per_user": rng.poisson(2, n).astype(float),
        }
    )


METRICS_SUBSET = [
    CONFIG.metrics["task_completion_rate"],
    CONFIG.metrics["tasks_completed_per_user"],
]


@settings(max_examples=40, deadline=None)
@given(_random_units(), st.data())
def test_moments_merge_across_partitions_and_ignore_order(
    table: pl.DataFrame, data: st.DataObject
) -> None:
    whole = arm_moments(table.lazy(), METRICS_SUBSET)
    cut = data.draw(st.integers(min_value=0, max_value=table.height))
    first = arm_moments(table[:cut].lazy(), METRICS_SUBSET)
    second = arm_moments(table[cut:].lazy(), METRICS_SUBSET)
    shuffled = arm_moments(table.sample(fraction=1.0, shuffle=True, seed=1).lazy(), METRICS_SUBSET)
    for metric, by_arm in whole.items():
        for arm, m in by_arm.items():
            parts = [p[metric][arm] for p in (first, second) if arm in p[metric]]
            merged = parts[0].merge(parts[1]) if len(parts) == 2 else parts[0]
            for got in (merged, shuffled[metric][arm]):
                assert got.n == m.n
                assert got.mean_x == pytest.approx(m.mean_x, rel=1e-9, abs=1e-12)
                assert got.m2_x == pytest.approx(m.m2_x, rel=1e-9, abs=1e-9)
                assert got.c_xy == pytest.approx(m.c_xy, rel=1e-9, abs=1e-9)
