"""Timelines and descriptive counts agree with the main analysis and with hand counts."""

from __future__ import annotations

import polars as pl
import pytest

from analysis import descriptives, timeline
from analysis.config import load_config
from analysis.metrics import Window, arm_moments, clean_assignments, in_window_events, unit_table
from analysis.simulate import simulate
from tests.conftest import AS_OF, CONFIGS

CONFIG = load_config(CONFIGS)
EXPERIMENT = CONFIG.experiment("smart-compose")
METRICS = CONFIG.metrics_of(EXPERIMENT)


@pytest.fixture(scope="module")
def frames() -> tuple[pl.LazyFrame, pl.LazyFrame, Window]:
    data = simulate([EXPERIMENT], 3_000, AS_OF, seed=9)
    window = Window(AS_OF, EXPERIMENT.window_days, EXPERIMENT.pre_window_days)
    units = clean_assignments(data.assignments.lazy(), window).collect().lazy()
    return units, data.events.lazy(), window


@pytest.mark.parametrize("metric", ["task_completion_rate", "tasks_completed_per_user",
                                    "users_completing_a_task"])  # fmt: skip
def test_last_day_equals_the_analysis(frames: tuple[pl.LazyFrame, pl.LazyFrame, Window],
                                      metric: str) -> None:  # fmt: skip
    """The cumulative moments on the analysis date are the run's own moments."""
    units, events, window = frames
    m = CONFIG.metrics[metric]
    daily = timeline.daily_moments(units, events, m, window, EXPERIMENT.start)
    whole = arm_moments(unit_table(units, events, [m], window), [m])[metric]
    for variant, by_day in daily.items():
        last = by_day[AS_OF]
        assert last.n == whole[variant].n
        assert last.mean_x == pytest.approx(whole[variant].mean_x, rel=1e-12)
        assert last.mean_y == pytest.approx(whole[variant].mean_y, rel=1e-12)
        assert last.m2_x == pytest.approx(whole[variant].m2_x, rel=1e-9)
        assert last.c_xy == pytest.approx(whole[variant].c_xy, rel=1e-9)
        # units only accrue
        ns = [by_day[d].n for d in sorted(by_day)]
        assert ns == sorted(ns)


def test_weekly_buckets_hold_only_fully_observed_units(
    frames: tuple[pl.LazyFrame, pl.LazyFrame, Window],
) -> None:
    units, events, window = frames
    m = CONFIG.metrics["task_completion_rate"]
    weekly = timeline.weekly_moments(units, events, m, window)
    exposure_days = (
        units.select(
            ((pl.lit(window.end) - pl.col("assigned_at")).dt.total_days() // 7).alias("weeks"),
            "variant",
            "crossover",
        )
        .filter(~pl.col("crossover"))
        .collect()
    )
    for variant, by_week in weekly.items():
        for week, moments in by_week.items():
            eligible = exposure_days.filter(
                (pl.col("variant") == variant) & (pl.col("weeks") > week)
            ).height
            assert moments.n == eligible
    # the sum of weekly event counts never exceeds the window's total
    total = arm_moments(unit_table(units, events, [m], window), [m])["task_completion_rate"]
    for variant, by_week in weekly.items():
        weekly_tasks = sum(mo.mean_y * mo.n for mo in by_week.values())
        assert weekly_tasks <= total[variant].mean_y * total[variant].n + 1e-6


def test_funnel_and_histograms_count_events(
    frames: tuple[pl.LazyFrame, pl.LazyFrame, Window],
) -> None:
    units, events, window = frames
    in_window = in_window_events(units, events, window).filter(~pl.col("pre"))
    funnel = descriptives.funnel_counts(in_window, ["ai"])
    by_hand = in_window.filter(pl.col("variant") == "ai").collect()
    steps = dict(funnel["ai"])
    assert steps["AI output shown"] == by_hand.filter(pl.col("event") == "ai_shown").height
    assert steps["tasks completed"] == by_hand.filter(pl.col("event") == "task_completed").height
    hist = descriptives.time_on_task_histogram(in_window, ["control", "ai"])
    assert hist is not None
    assert len(hist.edges) == descriptives.TIME_BINS + 1
    completed = in_window.filter(pl.col("event") == "task_completed").collect()
    assert sum(sum(c) for c in hist.counts.values()) == completed.height
    trust = descriptives.trust_histogram(in_window, ["control", "ai"])
    surveys = in_window.filter(pl.col("event") == "trust_survey").collect()
    assert sum(sum(c) for c in trust.values()) == surveys.height
