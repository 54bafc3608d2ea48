"""Timelines and descriptive counts agree with the main analysis and with hand counts."""

from __future__ import annotations

import polars as pl
import pytest

from analysis import descriptives, timeline
from analysis.aggregates import Moments, moments_from_row
from analysis.config.experiments import Metric
from analysis.config.load import load_config
from analysis.devtools.simulate import simulate
from analysis.measurement import Window
from analysis.metrics import arm_moments, clean_assignments, in_window_events, unit_table
from analysis.partials import PartialSpec, aggregate_name, partials
from analysis.polars_exprs import moment_exprs
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


def _rows(units: pl.LazyFrame, events: pl.LazyFrame, m: Metric, window: Window) -> pl.LazyFrame:
    spec = PartialSpec.of([m], window.window_days, window.pre_days)
    return partials(events.unique(subset="event_id"), units, spec)


def _grid_daily(
    units: pl.LazyFrame, events: pl.LazyFrame, m: Metric, window: Window
) -> dict[str, dict[object, Moments]]:
    """The brute-force reference: expand units × days, cumulate, take moments per day."""
    assert m.kind == "ratio"
    assert m.numerator
    assert m.denominator
    num, den = m.numerator, m.denominator

    def part(agg: str) -> pl.Expr:
        return (pl.col("event") == agg).cast(pl.Float64).sum()

    per_day = (
        in_window_events(units, events, window, [num.event, den.event])
        .filter(~pl.col("pre"))
        .group_by("unit_id", pl.col("ts").dt.date().alias("day"))
        .agg(part(num.event).alias("dx"), part(den.event).alias("dy"))
    )
    start = pl.max_horizontal(pl.col("assigned_at").dt.date(), pl.lit(EXPERIMENT.start))
    grid = (
        units.filter(~pl.col("crossover"))
        .select("unit_id", "variant", pl.date_ranges(start, pl.lit(window.as_of)).alias("day"))
        .explode("day")
    )
    cumulative = (
        grid.join(per_day, on=["unit_id", "day"], how="left")
        .with_columns(pl.col("dx").fill_null(0.0), pl.col("dy").fill_null(0.0))
        .sort("unit_id", "day")
        .with_columns(
            pl.col("dx").cum_sum().over("unit_id").alias("x"),
            pl.col("dy").cum_sum().over("unit_id").alias("y"),
        )
    )
    rows = cumulative.group_by("variant", "day").agg(moment_exprs(pl.col("x"), pl.col("y")))
    result: dict[str, dict[object, Moments]] = {}
    for row in rows.collect().to_dicts():
        result.setdefault(row["variant"], {})[row["day"]] = moments_from_row(row)
    return result


@pytest.mark.parametrize("window_days", [None, 5])
def test_every_day_equals_the_units_by_days_expansion(
    frames: tuple[pl.LazyFrame, pl.LazyFrame, Window], window_days: int | None
) -> None:
    """Summing each unit's changes gives the moments of the brute-force expansion, every day."""
    units, events, full = frames
    window = Window(full.as_of, window_days, full.pre_days)
    m = CONFIG.metrics["task_completion_rate"]
    assert aggregate_name(m.numerator) != aggregate_name(m.denominator)  # type: ignore[arg-type]
    daily = timeline.daily_moments(
        units, _rows(units, events, m, window), m, window.as_of, EXPERIMENT.start
    )
    reference = _grid_daily(units, events, m, window)
    assert set(daily) == set(reference)
    for variant, by_day in reference.items():
        assert set(daily[variant]) == set(by_day)
        for day, want in by_day.items():
            got = daily[variant][day]  # type: ignore[index]
            assert got.n == want.n
            for field in ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy"):
                assert getattr(got, field) == pytest.approx(
                    getattr(want, field), rel=1e-9, abs=1e-9
                ), (variant, day, field)


@pytest.mark.parametrize("metric", ["task_completion_rate", "tasks_completed_per_user",
                                    "users_completing_a_task"])  # fmt: skip
def test_last_day_equals_the_analysis(frames: tuple[pl.LazyFrame, pl.LazyFrame, Window],
                                      metric: str) -> None:  # fmt: skip
    """The cumulative moments on the analysis date are the run's own moments."""
    units, events, window = frames
    m = CONFIG.metrics[metric]
    rows = _rows(units, events, m, window)
    daily = timeline.daily_moments(units, rows, m, window.as_of, EXPERIMENT.start)
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
    weekly = timeline.weekly_moments(units, _rows(units, events, m, window), [m], window)[m.name]
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
