"""Verdicts that hold under nightly reads: each rule tested by simulation or a reference.

The simulations replay a scheduled run every night through the real path
(:mod:`analysis.nightly`: ``Experiment.data_through`` + ``compare_all``). A rule holds
if the count of runs where it goes wrong is at most the upper end of the
central 99.9 % binomial interval at alpha (the convention of
``test_calibration.py``); with fixed seeds each outcome is deterministic.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from analysis.aggregates import Moments
from analysis.comparisons import compare_all, verdict_interval
from analysis.config.experiments import Experiment
from analysis.config.load import load_config
from analysis.decision import decide
from analysis.measurement import ArmData
from analysis.nightly import aa_reads, fortnight, guardrail_at_margin
from analysis.stats.inference import ArmEstimate, compare, fieller_lift_ci
from analysis.stats.srm import SrmResult

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
SMART = CONFIG.experiment("smart-compose")
ALPHA = 0.05
OK_SRM = SrmResult(0.5, False, 1.0, {}, {})


def two_week_test(**statistics: object) -> Experiment:
    return fortnight(SMART, **statistics)


def upper_band(runs: int, p: float = ALPHA) -> int:
    return int(stats.binom.ppf(0.999, runs, p))


# --- 1 and 6: guardrail non-inferiority read every night -----------------------------------


def test_guardrail_at_its_margin_rarely_passes_over_nightly_reads() -> None:
    # Support tickets per user, Poisson(0.2) in control and exactly 5 % more in the
    # AI arm: the true lift sits on the +5 % margin, so "passed" is a false pass.
    # 14 nightly reads, the last one on the planned end (fixed-horizon basis).
    experiment = two_week_test(guardrail_margins={"support_tickets_per_user": 0.05})
    metric = CONFIG.metrics["support_tickets_per_user"]
    runs = 600
    reads = guardrail_at_margin(experiment, metric, runs, seed=20261206)
    assert {r.basis for r in reads[0][:-1]} == {"sequential"}
    assert reads[0][-1].basis == "fixed_horizon"
    passed = sum(any(c.noninferiority and c.noninferiority.passed for c in run) for run in reads)
    # A fixed-horizon one-sided 5 % bound read every night passes ~22 % of such runs.
    assert passed <= upper_band(runs), f"{passed} of {runs} runs passed at the margin"


def test_guardrail_bound_is_the_end_of_the_interval_shown() -> None:
    experiment = two_week_test(guardrail_margins={"support_tickets_per_user": 0.05})
    metric = CONFIG.metrics["support_tickets_per_user"]
    moments = {"control": Moments(4000, 0.2, 1.0, 800.0), "ai": Moments(4000, 0.205, 1.0, 820.0)}
    data = ArmData(moments={metric.name: moments})
    running, _ = compare_all(experiment, [metric], data, dt.date(2026, 11, 7))
    ended, _ = compare_all(experiment, [metric], data, dt.date(2026, 11, 14))
    for comparison, interval in (
        (running[0], running[0].sequential.lift_ci),
        (ended[0], ended[0].result.lift_ci),
    ):
        ni = comparison.noninferiority
        assert ni is not None
        assert interval is not None
        assert ni.bound is not None
        assert ni.level == pytest.approx(1 - ALPHA)
        assert ni.bound == pytest.approx(interval[1], rel=1e-12)  # goal decrease: upper end
        assert ni.passed == (interval[1] < 0.05)
    assert running[0].noninferiority.basis == "sequential"  # type: ignore[union-attr]
    assert ended[0].noninferiority.basis == "fixed_horizon"  # type: ignore[union-attr]


# --- 3: guardrails are tested on their own -------------------------------------------------


def test_guardrails_are_not_corrected_with_secondary_metrics() -> None:
    # A guardrail with raw p ~ 0.038 among seven secondary metrics: Holm across all
    # eight would adjust it to ~0.3 and let the harm through.
    experiment = two_week_test()
    names = [n for n in SMART.metrics.secondary if not CONFIG.metrics[n].ai_only][:7]
    chosen = [CONFIG.metrics[n] for n in ("task_completion_rate", *names)]
    # Each secondary (mean or ratio with a constant denominator) with p ~ 0.5.
    flat = {"control": Moments(5000, 1.0, 1.0, 5000.0), "ai": Moments(5000, 1.0134, 1.0, 5000.0)}
    moments: dict[str, dict[str, Moments]] = {m.name: flat for m in chosen}
    harm = {"control": Moments(5000, 0.2, 1.0, 1000.0), "ai": Moments(5000, 0.2185, 1.0, 1092.5)}
    moments["support_tickets_per_user"] = harm
    metrics = [*chosen, CONFIG.metrics["support_tickets_per_user"]]
    assert experiment.end is not None
    comparisons, _ = compare_all(experiment, metrics, ArmData(moments=moments), experiment.end)
    guardrail = next(c for c in comparisons if c.metric.name == "support_tickets_per_user")
    reference = stats.ttest_ind_from_stats(
        0.2185, math.sqrt(1092.5 / 4999), 5000, 0.2, math.sqrt(1000 / 4999), 5000, equal_var=False
    )
    assert guardrail.result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert 0.01 < reference.pvalue < ALPHA
    assert len([c for c in comparisons if c.role == "secondary"]) == 7
    assert guardrail.verdict_p_value == guardrail.result.p_value
    assert guardrail.verdict == "worse"


def test_guardrail_blocks_as_often_as_its_own_test_rejects() -> None:
    # Simulated: a guardrail with a real +10 % harm, read once at the end next to
    # secondaries. It must block exactly when its own uncorrected Welch test (scipy)
    # finds the harm, whatever the secondary metrics do.
    experiment = two_week_test()
    guard = CONFIG.metrics["support_tickets_per_user"]
    secondary = CONFIG.metrics["tasks_completed_per_user"]
    runs, units = 300, 4000
    rng = np.random.default_rng(7)
    blocked = expected = 0
    for _ in range(runs):
        gc, gt = rng.poisson(0.2, units), rng.poisson(0.22, units)
        sc, st = rng.poisson(3.0, units), rng.poisson(3.0, units)

        def arm(x: np.ndarray) -> Moments:
            return Moments(len(x), float(x.mean()), 1.0, float(((x - x.mean()) ** 2).sum()))

        data = ArmData(
            moments={
                guard.name: {"control": arm(gc), "ai": arm(gt)},
                secondary.name: {"control": arm(sc), "ai": arm(st)},
            }
        )
        found, _ = compare_all(experiment, [secondary, guard], data, experiment.end)  # type: ignore[arg-type]
        verdict = next(c for c in found if c.metric is guard).verdict
        blocked += verdict == "worse"
        test = stats.ttest_ind(gt, gc, equal_var=False)
        expected += bool(test.pvalue < ALPHA and test.statistic > 0)
    assert expected > 0.2 * runs  # the harm is findable
    assert blocked == expected


# --- 4: after the planned end -------------------------------------------------------------


def test_reads_after_the_end_analyse_the_final_data() -> None:
    experiment = two_week_test()
    assert experiment.end is not None
    assert experiment.data_through(experiment.end + dt.timedelta(days=30)) == experiment.end
    assert experiment.data_through(experiment.end) == experiment.end
    before = experiment.end - dt.timedelta(days=1)
    assert experiment.data_through(before) == before
    open_ended = experiment.model_copy(update={"end": None})
    assert open_ended.data_through(dt.date(2030, 1, 1)) == dt.date(2030, 1, 1)


def test_aa_false_positives_with_nightly_reads_after_the_end() -> None:
    # A/A, 14 nights (sequential) then 7 more nightly runs after the planned end.
    # Re-reading a fixed-horizon test on growing data gave ~11 % false positives.
    experiment = two_week_test()
    metric = CONFIG.metrics["tasks_completed_per_user"]
    runs = 800
    reads = aa_reads(experiment, metric, runs, seed=20261207, after_end=7)
    assert len(reads[0]) == 21
    assert all(c.basis == "fixed_horizon" for c in reads[0][13:])
    assert len({c.result.diff for c in reads[0][13:]}) == 1  # the final data, every night
    false_positives = sum(any(c.verdict != "inconclusive" for c in run) for run in reads)
    assert false_positives <= upper_band(runs), f"{false_positives} of {runs} runs"


# --- 5: the verdict and the interval printed beside it agree --------------------------------


def test_issue_example_prints_an_interval_that_agrees_with_the_verdict() -> None:
    # C = 1, T = 1.3, per-unit variances 10 and 1, n = 590 per arm: p = 0.028, while
    # the delta-method lift CI (-4.2 % to +64.2 %) contains 0.
    n = 590
    control, treatment = ArmEstimate(n, 1.0, 10 / n), ArmEstimate(n, 1.3, 1 / n)
    result = compare(control, treatment, ALPHA, "welch_t")
    assert result.p_value == pytest.approx(0.028, abs=5e-4)
    assert result.lift_ci is not None
    assert result.lift_ci[0] < 0
    interval = verdict_interval(result, False, ALPHA, 10_000)
    assert interval is not None
    assert 0 < interval[0] < 0.3 < interval[1]


def fieller_by_root_finding(
    control: ArmEstimate, treatment: ArmEstimate, q: float
) -> tuple[float, float]:
    """Independent reference: the ratios where the test statistic equals q, by brentq."""

    def excess(r: float) -> float:
        se = math.sqrt(treatment.variance + r * r * control.variance)
        return abs(treatment.value - r * control.value) / se - q

    centre = treatment.value / control.value
    lo = optimize.brentq(excess, centre - 50, centre, xtol=1e-14)
    hi = optimize.brentq(excess, centre, centre + 50, xtol=1e-14)
    return lo - 1, hi - 1


@pytest.mark.parametrize("seed", range(8))
def test_fieller_interval_matches_root_finding(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = ArmEstimate(500, float(rng.uniform(1, 3)), float(rng.uniform(0.001, 0.05)))
    treatment = ArmEstimate(700, float(rng.uniform(1, 3)), float(rng.uniform(0.001, 0.05)))
    q = float(stats.t.ppf(0.975, 800))
    got = fieller_lift_ci(control, treatment, q)
    assert got == pytest.approx(fieller_by_root_finding(control, treatment, q), abs=1e-10)


def test_fieller_interval_is_unbounded_when_control_is_indistinguishable_from_zero() -> None:
    assert fieller_lift_ci(ArmEstimate(50, 0.1, 0.01), ArmEstimate(50, 0.3, 0.01), 1.96) is None


@pytest.mark.parametrize("sequential", [False, True])
def test_verdict_interval_excludes_zero_exactly_when_the_test_rejects(sequential: bool) -> None:
    rng = np.random.default_rng(11 + sequential)
    agree = 0
    for _ in range(200):
        c = ArmEstimate(2000, 1.0, float(rng.uniform(0.00002, 0.0005)))
        t = ArmEstimate(2000, float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.00002, 0.0005)))
        experiment = two_week_test()
        moments = {
            "control": Moments(c.n, c.value, 1.0, c.variance * c.n * (c.n - 1)),
            "ai": Moments(t.n, t.value, 1.0, t.variance * t.n * (t.n - 1)),
        }
        metric = CONFIG.metrics["tasks_completed_per_user"]
        as_of = dt.date(2026, 11, 7) if sequential else dt.date(2026, 11, 14)
        found, _ = compare_all(experiment, [metric], ArmData(moments={metric.name: moments}), as_of)
        comparison = found[0]
        assert comparison.basis.startswith("sequential") == sequential
        assert comparison.verdict_lift_ci is not None
        assert comparison.basis_p_value is not None
        lo, hi = comparison.verdict_lift_ci
        rejects = comparison.basis_p_value < ALPHA
        assert rejects == (lo > 0 or hi < 0)
        agree += rejects
    assert 20 < agree < 180  # both outcomes were exercised


# --- 7 and 8: what the reasons say ---------------------------------------------------------


def comparisons_for(moments: dict[str, dict[str, Moments]], experiment: Experiment) -> list:  # type: ignore[type-arg]
    metrics = [CONFIG.metrics[name] for name in moments]
    found, _ = compare_all(experiment, metrics, ArmData(moments=moments), dt.date(2026, 11, 14))
    return found


def test_every_significant_worsening_is_named() -> None:
    # Primary +10 % (ship), while a secondary outcome metric is significantly worse.
    experiment = two_week_test()
    experiment = experiment.model_copy(
        update={
            "metrics": experiment.metrics.model_copy(update={"primary": "tasks_completed_per_user"})
        }
    )
    better = {"control": Moments(5000, 3.0, 1.0, 15000.0), "ai": Moments(5000, 3.3, 1.0, 15000.0)}
    worse = {"control": Moments(5000, 1.2, 1.0, 5000.0), "ai": Moments(5000, 1.0, 1.0, 5000.0)}
    found = comparisons_for(
        {"tasks_completed_per_user": better, "users_completing_a_task": worse}, experiment
    )
    assert [(c.role, c.verdict) for c in found] == [("primary", "better"), ("secondary", "worse")]
    decision = decide(experiment, found, OK_SRM, True, dt.date(2026, 11, 14))
    assert decision.recommendation == "ship"
    watch = [r for r in decision.reasons if r.startswith("Watch: Users completing a task")]
    assert len(watch) == 1
    assert "significantly worse" in watch[0].lower()
    assert not any("no metric got significantly worse" in r for r in decision.reasons)


def test_a_primary_metric_that_cannot_be_estimated_means_investigate() -> None:
    # An event-name typo or an empty events table leaves the primary without data.
    experiment = two_week_test()
    empty = {"control": Moments.empty(), "ai": Moments.empty()}
    found = comparisons_for({"task_completion_rate": empty}, experiment)
    assert found[0].result.diff is None
    decision = decide(experiment, found, OK_SRM, True, dt.date(2026, 11, 14))
    assert decision.recommendation == "investigate"
    assert "cannot be estimated" in decision.reasons[0]
    assert "metrics.yaml" in decision.reasons[-1]


def test_many_crossed_over_units_mean_investigate() -> None:
    from analysis.measurement import Cleaning

    experiment = two_week_test()
    better = {"control": Moments(5000, 3.0, 1.0, 15000.0), "ai": Moments(5000, 3.3, 1.0, 15000.0)}
    experiment = experiment.model_copy(
        update={
            "metrics": experiment.metrics.model_copy(update={"primary": "tasks_completed_per_user"})
        }
    )
    found = comparisons_for({"tasks_completed_per_user": better}, experiment)
    few = Cleaning(
        events=0, duplicates_dropped=0, crossovers_excluded=5, units={"control": 5000, "ai": 5000}
    )
    many = Cleaning(
        events=0,
        duplicates_dropped=0,
        crossovers_excluded=12_000,
        units={"control": 5000, "ai": 5000},
    )
    as_of = dt.date(2026, 11, 14)
    assert decide(experiment, found, OK_SRM, True, as_of, cleaning=few).recommendation == "ship"
    decision = decide(experiment, found, OK_SRM, True, as_of, cleaning=many)
    assert decision.recommendation == "investigate"
    assert "12,000 of 22,000 units (55%)" in decision.reasons[0]
