"""The simulator: contract-exact tables, planted dirt, and analytic truths that hold.

The truth tests compute every catalog metric directly from simulated data with
polars (independently of the pipeline) and require it to lie within four honest
standard errors of :func:`analysis.devtools.simulate.true_metric_values`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, replace
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.config.experiments import EventAggregate, Experiment, Metric
from analysis.config.load import ProofConfig, load_config
from analysis.devtools.simulate import (
    AI_EVENTS,
    CONTROL_BEHAVIOUR,
    LOW_TRUST_SHARE,
    SimulatedData,
    default_behaviours,
    derived_seed,
    simulate,
    simulate_experiment,
    true_lifts,
    true_metric_values,
    write_duckdb,
    write_parquet,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
AS_OF = dt.date(2026, 11, 20)
UTC_US = pl.Datetime("us", "UTC")
ASSIGNMENT_TYPES = {
    "experiment_id": pl.String,
    "unit_id": pl.String,
    "variant": pl.String,
    "assigned_at": UTC_US,
    "platform": pl.String,
    "plan": pl.String,
}
EVENT_TYPES = {
    "event_id": pl.String,
    "unit_id": pl.String,
    "ts": UTC_US,
    "event": pl.String,
    "value": pl.Float64,
    "task_id": pl.String,
    "label": pl.String,
}
TASK_EVENTS = {"task_started", "task_completed", "task_abandoned", "retry", "feedback"} | AI_EVENTS


@pytest.fixture(scope="module")
def cfg() -> ProofConfig:
    return load_config(CONFIGS)


@pytest.fixture(scope="module")
def data(cfg: ProofConfig) -> SimulatedData:
    """Both shipped experiments, with more dirt than the defaults to test it."""
    return simulate_both(cfg, units=20_000, seed=5)


def simulate_both(cfg: ProofConfig, units: int, seed: int) -> SimulatedData:
    parts = [
        simulate_experiment(
            e, units, AS_OF, derived_seed(seed, e.id), duplicate_rate=0.01, crossover_rate=0.005
        )
        for e in cfg.experiments.values()
    ]
    return SimulatedData(
        pl.concat([p.assignments for p in parts]), pl.concat([p.events for p in parts])
    )


def end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def first_assignments(assignments: pl.DataFrame) -> pl.DataFrame:
    """One row per unit: its first assignment and whether it crossed over."""
    return assignments.group_by("experiment_id", "unit_id").agg(
        pl.col("variant").sort_by("assigned_at").first(),
        pl.col("assigned_at").min(),
        (pl.col("variant").n_unique() > 1).alias("crossed"),
    )


# --------------------------------------------------------------------------- shape


def test_schema_is_the_contract(data: SimulatedData) -> None:
    assert dict(data.assignments.schema) == ASSIGNMENT_TYPES
    assert dict(data.events.schema) == EVENT_TYPES
    assert data.assignments.null_count().sum_horizontal().item() == 0
    not_null = data.events.select("event_id", "unit_id", "ts", "event")
    assert not_null.null_count().sum_horizontal().item() == 0
    assert set(data.assignments["platform"].unique()) == {"web", "ios", "android"}
    assert set(data.assignments["plan"].unique()) == {"free", "pro", "enterprise"}


def test_unit_ids_are_unique_except_crossovers(cfg: ProofConfig, data: SimulatedData) -> None:
    rows = data.assignments.group_by("experiment_id", "unit_id").agg(
        pl.len().alias("rows"), pl.col("variant").n_unique().alias("variants")
    )
    assert rows["rows"].max() == 2
    assert (rows.filter(pl.col("rows") == 2)["variants"] == 2).all()
    # unit ids never repeat across experiments
    assert data.assignments["unit_id"].n_unique() == rows.height
    for experiment_id in cfg.experiments:
        units = rows.filter(pl.col("experiment_id") == experiment_id)
        crossed = units.filter(pl.col("rows") == 2).height
        expected = 0.005 * units.height
        assert abs(crossed - expected) < 4 * math.sqrt(expected), (experiment_id, crossed)
        assert set(
            data.assignments.filter(pl.col("experiment_id") == experiment_id)["variant"]
        ) == set(cfg.experiment(experiment_id).variants)


def test_event_ids_are_unique_except_identical_duplicates(data: SimulatedData) -> None:
    events = data.events
    distinct = events["event_id"].n_unique()
    assert events.unique().height == distinct  # repeated ids are identical rows
    counts = events.group_by("event_id").len()
    assert counts["len"].max() == 2
    duplicates = events.height - distinct
    expected = 0.01 * distinct
    assert abs(duplicates - expected) < 4 * math.sqrt(expected)


def test_variant_shares_match_the_config(cfg: ProofConfig, data: SimulatedData) -> None:
    first = first_assignments(data.assignments)
    for experiment in cfg.experiments.values():
        units = first.filter(pl.col("experiment_id") == experiment.id)
        n = units.height
        observed = dict(units.group_by("variant").len().iter_rows())
        for name, variant in experiment.variants.items():
            se = math.sqrt(n * variant.share * (1 - variant.share))
            assert abs(observed[name] - n * variant.share) < 4 * se, (experiment.id, name)


def test_times_lie_in_the_periods(cfg: ProofConfig, data: SimulatedData) -> None:
    first = first_assignments(data.assignments)
    for experiment in cfg.experiments.values():
        assigned = first.filter(pl.col("experiment_id") == experiment.id)["assigned_at"]
        last_day = min(experiment.end or AS_OF, AS_OF)
        assert (assigned >= end_of(experiment.start - dt.timedelta(days=1))).all()
        assert (assigned < end_of(last_day)).all()
    events = data.events.join(first, on="unit_id", how="left")
    assert events["assigned_at"].null_count() == 0
    pre = pl.duration(days=pl.lit(14))
    assert (events["ts"] >= events["assigned_at"] - pl.select(pre).item()).all()
    assert (events["ts"] < end_of(AS_OF)).all()
    before = events.filter(pl.col("ts") < pl.col("assigned_at"))
    assert before.height > 0  # there is a pre-period
    assert not set(before["event"].unique()) & (AI_EVENTS | {"trust_survey"})


def test_values_are_in_range(data: SimulatedData) -> None:
    events = data.events

    def values(name: str) -> pl.Series:
        return events.filter(pl.col("event") == name)["value"]

    trust = values("trust_survey")
    assert trust.null_count() == 0
    assert set(trust.unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}
    assert set(values("feedback").unique()) == {-1.0, 1.0}
    edited = values("ai_edited")
    assert edited.null_count() == 0
    assert edited.min() >= 0  # type: ignore[operator]
    assert edited.max() <= 1  # type: ignore[operator]
    for name in ("ai_latency", "ai_cost", "task_completed"):
        assert values(name).null_count() == 0
        assert values(name).min() > 0, name  # type: ignore[operator]
    sure = values("ai_confidence")  # the holdout's AI arm logs it
    assert sure.len() > 0
    assert sure.null_count() == 0
    assert 0 < sure.min() <= sure.max() < 1  # type: ignore[operator]
    valued = {"trust_survey", "feedback", "ai_edited", "ai_latency", "ai_cost", "task_completed"}
    valued.add("ai_confidence")
    assert events.filter(~pl.col("event").is_in(valued))["value"].null_count() == len(
        events.filter(~pl.col("event").is_in(valued))
    )
    has_task = events.filter(pl.col("event").is_in(TASK_EVENTS))
    assert has_task["task_id"].null_count() == 0
    assert events.filter(~pl.col("event").is_in(TASK_EVENTS))["task_id"].null_count() == (
        events.height - has_task.height
    )


def test_tasks_hang_together(data: SimulatedData) -> None:
    """One start per task; all its events belong to one unit, start no earlier, and
    fall in the same analysis segment (so windowed ratios stay exact)."""
    events = data.events.unique().filter(pl.col("task_id").is_not_null())
    started = events.filter(pl.col("event") == "task_started").select(
        "task_id", pl.col("unit_id").alias("starter"), pl.col("ts").alias("started")
    )
    assert started["task_id"].is_unique().all()
    joined = events.join(started, on="task_id", how="left")
    assert joined["started"].null_count() == 0
    assert (joined["unit_id"] == joined["starter"]).all()
    assert (joined["ts"] >= joined["started"]).all()
    # auto-triage has a 28-day window: a task never straddles its end
    first = first_assignments(data.assignments).select("unit_id", "assigned_at")
    windowed = joined.filter(pl.col("unit_id").str.starts_with("auto-triage-")).join(
        first, on="unit_id"
    )
    window_end = pl.col("assigned_at") + pl.duration(days=28)
    straddle = windowed.group_by("task_id").agg(
        (pl.col("started") < window_end).first().alias("starts_in"),
        (pl.col("ts") < window_end).all().alias("all_in"),
        (pl.col("ts") >= window_end).any().alias("any_out"),
        (pl.col("ts") < pl.col("assigned_at")).any().alias("any_pre"),
        (pl.col("started") < pl.col("assigned_at")).first().alias("starts_pre"),
    )
    assert (straddle["starts_in"] == straddle["all_in"]).all()
    assert (straddle["starts_in"] != straddle["any_out"]).all()
    assert (straddle["starts_pre"] == straddle["any_pre"]).all()


def test_ai_events_only_in_ai_arms(cfg: ProofConfig, data: SimulatedData) -> None:
    first = first_assignments(data.assignments).filter(~pl.col("crossed"))
    arms = pl.DataFrame(
        [
            {"experiment_id": e.id, "variant": name, "ai": variant.ai}
            for e in cfg.experiments.values()
            for name, variant in e.variants.items()
        ]
    )
    events = data.events.join(first.join(arms, on=["experiment_id", "variant"]), on="unit_id")
    ai = events.filter(pl.col("event").is_in(AI_EVENTS))
    assert ai.height > 0
    assert ai["ai"].all()


def test_same_seed_same_data_other_seed_other_data(cfg: ProofConfig) -> None:
    experiment = cfg.experiment("auto-triage")
    a = simulate_experiment(experiment, 2_000, AS_OF, seed=11)
    b = simulate_experiment(experiment, 2_000, AS_OF, seed=11)
    c = simulate_experiment(experiment, 2_000, AS_OF, seed=12)
    assert a.assignments.equals(b.assignments)
    assert a.events.equals(b.events)
    assert not a.assignments.equals(c.assignments)
    assert not a.events.equals(c.events)


def test_simulate_concatenates_with_derived_seeds(cfg: ProofConfig) -> None:
    experiments = list(cfg.experiments.values())
    both = simulate(experiments, 1_000, AS_OF, seed=3)
    alone = simulate([experiments[1]], 1_000, AS_OF, seed=3)
    assert set(both.assignments["experiment_id"]) == {e.id for e in experiments}
    one = both.assignments.filter(pl.col("experiment_id") == experiments[1].id)
    assert one.equals(alone.assignments)  # adding an experiment changes nothing else
    assert both.events["event_id"].n_unique() < both.events.height  # duplicates exist
    before_start = simulate(experiments, 1_000, dt.date(2026, 10, 2), seed=3)
    assert set(before_start.assignments["experiment_id"]) == {"smart-compose", "summaries-holdout"}


def test_rejects_analysis_before_start(cfg: ProofConfig) -> None:
    with pytest.raises(ValueError, match="before the start"):
        simulate_experiment(cfg.experiment("smart-compose"), 10, dt.date(2026, 9, 30), seed=1)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    units=st.integers(1, 300),
    days=st.integers(0, 120),
    window=st.one_of(st.none(), st.integers(1, 40)),
    pre=st.integers(0, 30),
)
def test_any_small_simulation_keeps_its_invariants(
    seed: int, units: int, days: int, window: int | None, pre: int
) -> None:
    experiment = load_config(CONFIGS).experiment("auto-triage")
    experiment = experiment.model_copy(update={"window_days": window, "pre_window_days": pre})
    as_of = experiment.start + dt.timedelta(days=days)
    out = simulate_experiment(experiment, units, as_of, seed, crossover_rate=0.05)
    assert dict(out.assignments.schema) == ASSIGNMENT_TYPES
    assert dict(out.events.schema) == EVENT_TYPES
    first = first_assignments(out.assignments)
    assert first.height == units
    events = out.events.join(first, on="unit_id")
    assert events.height == out.events.height
    assert (events["ts"] < end_of(as_of)).all()
    lower = events["assigned_at"] - dt.timedelta(days=pre)
    assert (events["ts"] >= lower).all()


# --------------------------------------------------------------------------- behaviours


def test_default_behaviours_plant_the_story(cfg: ProofConfig) -> None:
    arms = default_behaviours(cfg.experiment("auto-triage"))
    control, ai, v2 = arms["control"], arms["ai"], arms["ai_v2"]
    assert control.completion_prob < ai.completion_prob < v2.completion_prob
    assert ai.time_on_task_median_s == pytest.approx(0.85 * control.time_on_task_median_s)
    assert control.low_trust_abandon_multiplier == 1.0
    assert ai.low_trust_abandon_multiplier > 1
    assert v2.low_trust_abandon_multiplier > 1
    assert ai.abandon_prob * ai.low_trust_abandon_multiplier > control.abandon_prob
    assert ai.tickets_per_day < control.tickets_per_day
    assert not control.has_ai
    assert ai.has_ai
    assert v2.has_ai
    assert ai.thumbs_down_prob != control.thumbs_down_prob
    assert ai.trust_probs != control.trust_probs
    assert v2.accept_prob > ai.accept_prob


@pytest.mark.parametrize("experiment_id", ["smart-compose", "auto-triage"])
def test_aa_gives_every_arm_the_same_behaviour(cfg: ProofConfig, experiment_id: str) -> None:
    experiment = cfg.experiment(experiment_id)
    arms = default_behaviours(experiment, aa=True)
    assert set(arms) == set(experiment.variants)
    assert len(set(arms.values())) == 1
    behaviour = next(iter(arms.values()))
    assert behaviour.has_ai  # AI metrics are comparable between every arm
    assert asdict(replace(behaviour, ai_shown_per_task=0.0)) != asdict(CONTROL_BEHAVIOUR)
    lifts = true_lifts(experiment, arms, cfg.metrics, AS_OF)
    assert lifts
    assert all(v is None or v == pytest.approx(0.0, abs=1e-12) for v in lifts.values())


def test_aa_without_ai_arms_has_no_ai(cfg: ProofConfig) -> None:
    experiment = cfg.experiment("smart-compose")
    no_ai = experiment.model_copy(
        update={
            "variants": {
                k: v.model_copy(update={"ai": False}) for k, v in experiment.variants.items()
            }
        }
    )
    arms = default_behaviours(no_ai, aa=True)
    assert set(arms.values()) == {CONTROL_BEHAVIOUR}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"completion_prob": 1.2}, "completion_prob"),
        ({"abandon_prob": 0.3, "low_trust_abandon_multiplier": 1.5}, "must be <= 1"),
        ({"trust_probs": (0.5, 0.5)}, "7 non-negative"),
        ({"trust_probs": (0.2,) * 7}, "add up to 1"),
        ({"tasks_per_day": -1.0}, "tasks_per_day"),
        ({"ai_shown_per_task": 1.0}, "ai_latency_median_ms"),
        ({"accept_prob": 0.6, "edit_prob": 0.6}, "accept_prob"),
    ],
)
def test_behaviour_rejects_impossible_parameters(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(CONTROL_BEHAVIOUR, **change)  # type: ignore[arg-type]


def test_true_values_by_hand(cfg: ProofConfig) -> None:
    experiment = cfg.experiment("auto-triage")
    arms = default_behaviours(experiment)
    values = true_metric_values(experiment, arms, cfg.metrics, AS_OF)
    ai = arms["ai"]
    s = LOW_TRUST_SHARE
    assert values["task_completion_rate"]["ai"] == pytest.approx(ai.completion_prob)
    assert values["abandonment_rate"]["ai"] == pytest.approx(
        ai.abandon_prob * (1 - s + s * ai.low_trust_abandon_multiplier)
    )
    assert values["trust_score"]["ai"] == pytest.approx(
        sum(k * p for k, p in enumerate(ai.trust_probs, start=1))
    )
    assert values["ai_latency_p95"]["ai"] == pytest.approx(
        ai.ai_latency_median_ms * math.exp(0.5 * 1.6448536269514722)
    )
    assert values["cost_per_completed_task"]["control"] == 0.0
    assert values["acceptance_rate"]["control"] is None
    assert values["ai_latency_p95"]["control"] is None
    # tickets per user: rate * E[min(Y, 28)], with Y uniform on (0, 37] days here
    y0, y1, w = 0.0, (end_of(AS_OF) - end_of(dt.date(2026, 10, 14))).days, 28.0
    mean_exposure = ((w**2 - y0**2) / 2 + w * (y1 - w)) / (y1 - y0)
    assert values["support_tickets_per_user"]["control"] == pytest.approx(
        CONTROL_BEHAVIOUR.tickets_per_day * mean_exposure
    )
    lifts = true_lifts(experiment, arms, cfg.metrics, AS_OF)
    assert lifts["acceptance_rate", "ai_v2"] == pytest.approx(
        arms["ai_v2"].accept_prob / ai.accept_prob - 1
    )
    assert ("acceptance_rate", "ai") not in lifts  # the first AI arm is the baseline
    cost = cfg.metrics["cost_per_completed_task"].model_copy(update={"ai_only": False})
    vs_control = true_lifts(experiment, arms, {cost.name: cost}, AS_OF)
    assert vs_control == {(cost.name, "ai"): None, (cost.name, "ai_v2"): None}  # control: 0
    assert not any(m == "acceptance_rate" for m, _ in true_lifts(
        cfg.experiment("smart-compose"), default_behaviours(cfg.experiment("smart-compose")),
        cfg.metrics, AS_OF,
    ))  # fmt: skip


# --------------------------------------------------------------------------- truth vs data


def _part(agg: EventAggregate, alias: str) -> pl.Expr:
    keep = pl.col("event") == agg.event
    if agg.value_equals is not None:
        keep &= pl.col("value") == agg.value_equals
    if agg.agg == "count":
        return keep.sum().cast(pl.Float64).alias(alias)
    kept = pl.col("value").filter(keep)
    return (kept.sum() if agg.agg == "sum" else kept.mean()).alias(alias)


def _estimate(
    metric: Metric, units: pl.DataFrame, events: pl.DataFrame
) -> tuple[float, float] | None:
    """(estimate, standard error) of one metric in one arm, or None if undefined."""
    if metric.kind == "quantile":
        assert metric.value is not None
        assert metric.quantile is not None
        values = np.sort(events.filter(pl.col("event") == metric.value.event)["value"].to_numpy())
        n, q = len(values), metric.quantile
        if n == 0:
            return None
        estimate = float(np.quantile(values, q))
        # distribution-free SE: half the spread of the order statistics q*n +- sqrt(nq(1-q))
        spread = math.sqrt(n * q * (1 - q))
        lo, hi = values[int(q * n - spread)], values[int(q * n + spread)]
        return estimate, float(hi - lo) / 2
    parts = [metric.numerator, metric.denominator] if metric.kind == "ratio" else [metric.value]
    exprs = [_part(p, f"p{i}") for i, p in enumerate(parts) if p is not None]
    per_unit = units.join(events.group_by("unit_id").agg(exprs), on="unit_id", how="left")
    if metric.kind == "ratio":
        x = per_unit["p0"].fill_null(0).to_numpy()
        y = per_unit["p1"].fill_null(0).to_numpy()
        if y.sum() == 0:
            return None
        ratio = x.sum() / y.sum()
        n = len(x)
        var = (x.var(ddof=1) - 2 * ratio * np.cov(x, y)[0, 1] + ratio**2 * y.var(ddof=1)) / n
        return float(ratio), float(math.sqrt(var) / y.mean())
    assert metric.value is not None
    if metric.value.agg == "mean":
        v = per_unit["p0"].drop_nulls().to_numpy()
        if len(v) == 0:
            return None
        return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))
    v = per_unit["p0"].fill_null(0).to_numpy()
    if metric.kind == "proportion":
        p = float((v > 0).mean())
        return p, math.sqrt(p * (1 - p) / len(v))
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))


def _empirical(
    experiment: Experiment, data: SimulatedData, metrics: dict[str, Metric], as_of: dt.date
) -> dict[str, dict[str, tuple[float, float] | None]]:
    """Every metric per arm, straight from the data as the contract defines it."""
    units = first_assignments(data.assignments).filter(~pl.col("crossed"))
    end = end_of(as_of)
    window_end = (
        pl.lit(end)
        if experiment.window_days is None
        else pl.min_horizontal(
            pl.col("assigned_at") + pl.duration(days=experiment.window_days), pl.lit(end)
        )
    )
    events = (
        data.events.unique(subset="event_id")
        .join(units.select("unit_id", "variant", "assigned_at"), on="unit_id")
        .filter(pl.col("ts") >= pl.col("assigned_at"), pl.col("ts") < window_end)
    )
    return {
        name: {
            arm: _estimate(
                metric,
                units.filter(pl.col("variant") == arm).select("unit_id"),
                events.filter(pl.col("variant") == arm),
            )
            for arm in experiment.variants
        }
        for name, metric in metrics.items()
    }


@pytest.mark.parametrize(
    ("experiment_id", "as_of", "window_days", "units"),
    [
        ("smart-compose", dt.date(2026, 11, 15), None, 50_000),  # assignment still open
        ("auto-triage", dt.date(2026, 12, 28), 28, 50_000),  # closed; window binds for some
        ("auto-triage", dt.date(2027, 1, 31), 7, 20_000),  # window shorter than every exposure
    ],
)
def test_true_values_match_the_data(
    cfg: ProofConfig, experiment_id: str, as_of: dt.date, window_days: int | None, units: int
) -> None:
    experiment = cfg.experiment(experiment_id).model_copy(update={"window_days": window_days})
    arms = default_behaviours(experiment)
    data = simulate_experiment(experiment, units, as_of, seed=2024)
    truth = true_metric_values(experiment, arms, cfg.metrics, as_of)
    observed = _empirical(experiment, data, dict(cfg.metrics), as_of)
    compared = 0
    for name, per_arm in truth.items():
        for arm, expected in per_arm.items():
            got = observed[name][arm]
            if expected is None:
                assert got is None, (name, arm, got)
                continue
            assert got is not None, (name, arm)
            estimate, se = got
            if se == 0:  # e.g. no AI cost at all in the control arm
                assert estimate == pytest.approx(expected, abs=1e-12), (name, arm)
            else:
                z = (estimate - expected) / se
                assert abs(z) < 4, f"{name} {arm}: {estimate} vs {expected} (z={z:.2f})"
            compared += 1
    assert compared >= 20


# --------------------------------------------------------------------------- writers


def _small(cfg: ProofConfig) -> SimulatedData:
    return simulate(list(cfg.experiments.values()), 500, AS_OF, seed=9)


def test_duckdb_round_trip(cfg: ProofConfig, tmp_path: Path) -> None:
    small = _small(cfg)
    path = tmp_path / "nested" / "warehouse.duckdb"
    write_duckdb(path, small)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE keep_me AS SELECT 1 AS x")
    write_duckdb(path, small)  # replace, not append; other tables survive
    assert [p.name for p in path.parent.iterdir()] == ["warehouse.duckdb"]
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        assignments = con.sql("SELECT * FROM assignments").pl()
        events = con.sql("SELECT * FROM events").pl()
        assert con.execute("SELECT count(*) FROM keep_me").fetchone() == (1,)
    assert dict(assignments.schema) == ASSIGNMENT_TYPES
    assert dict(events.schema) == EVENT_TYPES
    assert assignments.height == small.assignments.height
    assert events.height == small.events.height
    assert assignments.sort("unit_id", "assigned_at").equals(
        small.assignments.sort("unit_id", "assigned_at")
    )


def test_parquet_round_trip(cfg: ProofConfig, tmp_path: Path) -> None:
    small = _small(cfg)
    write_parquet(tmp_path, small, files=6)
    write_parquet(tmp_path, small, files=3)  # stale parts are removed
    parts = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert parts == ["part-0000.parquet", "part-0001.parquet", "part-0002.parquet"]
    assignments = pl.read_parquet(tmp_path / "assignments.parquet")
    events = pl.read_parquet(tmp_path / "events" / "*.parquet")
    assert dict(assignments.schema) == ASSIGNMENT_TYPES
    assert dict(events.schema) == EVENT_TYPES
    assert assignments.equals(small.assignments)
    assert events.height == small.events.height
    assert events.sort("event_id", "ts").equals(small.events.sort("event_id", "ts"))
