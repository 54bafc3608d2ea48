"""The decay trend (analysis.stats.decay) and its weekly rule (analysis.decay).

The slope and its cluster-robust variance are checked against statsmodels'
WLS with unit clusters; the fixed interval's coverage and the rule's false
alarms are checked by simulating a holdout read every week.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import statsmodels.api as sm

from analysis.config.experiments import Experiment, Metric
from analysis.decay import DecayTest, effect_decay
from analysis.holdout_reads import decay_moments, holdout_reads, panel, seen
from analysis.joint import JointMoments, joint_moments_from_array
from analysis.stats.decay import arm_slope, fixed_interval, slope_difference

Array = npt.NDArray[np.float64]


def unit_weeks(
    rng: np.random.Generator, n: int, read_week: int, base: float, change: float, ratio: bool
) -> tuple[Array, Array, Array, Array]:
    """One arm read ``read_week`` weeks after launch (analysis.holdout_reads.panel); for a
    mean metric, x a count and y = 1 per week."""
    unit, week, x, y = seen(panel(rng, n, read_week, 6, base, change), read_week)
    if not ratio:
        x, y = y.copy(), np.ones_like(week)  # the tasks started: a count per week
    return unit, week, x, y


@pytest.mark.parametrize("ratio", [True, False])
def test_slope_and_variance_equal_statsmodels_wls_with_unit_clusters(ratio: bool) -> None:
    rng = np.random.default_rng(7)
    unit, week, x, y = unit_weeks(rng, 400, 9, 0.4, -0.01, ratio)
    found = arm_slope(decay_moments(unit, week, x, y, 400))
    assert found is not None
    keep = y > 0
    design = sm.add_constant(week[keep])
    fit = sm.WLS(x[keep] / y[keep], design, weights=y[keep]).fit(
        cov_type="cluster", cov_kwds={"groups": unit[keep].astype(int), "use_correction": False}
    )
    groups = len(np.unique(unit[keep]))
    assert found.slope == pytest.approx(fit.params[1], rel=1e-9, abs=1e-12)
    assert found.level == pytest.approx(fit.params[0], rel=1e-9)
    assert found.variance == pytest.approx(fit.cov_params()[1, 1] * groups / (groups - 1), rel=1e-7)


def test_unidentified_slopes_are_none() -> None:
    one_week = joint_moments_from_array([[1.0, 0.0, 2.0, 0.0, 0.0], [3.0, 0.0, 4.0, 0.0, 0.0]])
    assert arm_slope(one_week) is None
    assert arm_slope(JointMoments.empty(5)) is None
    with pytest.raises(ValueError, match="5 decay sums"):
        arm_slope(JointMoments.empty(2))


def test_fixed_interval_covers_the_difference_of_slopes_at_its_level() -> None:
    """The true difference of weekly changes is -0.01; 95 % intervals cover it ~95 % of reads."""
    rng = np.random.default_rng(11)
    covered, reps = 0, 400
    for _ in range(reps):
        arms = [
            decay_moments(*unit_weeks(rng, 300, 8, 0.5, change, True), 300)
            for change in (0.0, -0.01)
        ]
        control, treatment = (arm_slope(a) for a in arms)
        assert control is not None
        assert treatment is not None
        interval = fixed_interval(slope_difference(control, treatment), 0.05)
        assert interval is not None
        covered += interval[0] <= -0.01 <= interval[1]
    # 400 reads: the binomial sd of the coverage is 1.1 points.
    assert 0.92 <= covered / reps <= 0.98


def _holdout(metric: Metric) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "holdout",
            "name": "holdout",
            "kind": "holdout",
            "start": "2026-01-05",
            "source": "warehouse",
            "control": "holdout",
            "variants": {"holdout": {"share": 0.5, "ai": False}, "ai": {"share": 0.5, "ai": True}},
            "metrics": {"primary": metric.name},
            "statistics": {"sequential_n_star": 2000},
        }
    )


COMPLETION = Metric(
    name="task_completion_rate",
    label="Task completion",
    category="outcome",
    kind="ratio",
    goal="increase",
    numerator={"event": "task_completed"},
    denominator={"event": "task_started"},
)


def test_a_stable_effect_is_called_decaying_in_under_alpha_of_holdouts_read_weekly() -> None:
    """A/A holdouts read every other week from week 2 to 16: the rule fires in any read
    less often than alpha; the always-valid interval excludes 0 on either side in any read
    less often than alpha; the fixed-horizon interval, read as often, far more often."""
    reps = 300
    histories = holdout_reads(_holdout(COMPLETION), COMPLETION, reps, 2026, range(2, 17, 2))

    def share(excluded: Callable[[DecayTest], bool]) -> float:
        return sum(any(excluded(t) for t in reads) for reads in histories) / reps

    def outside(interval: tuple[float, float] | None) -> bool:
        return interval is not None and (interval[0] > 0 or interval[1] < 0)

    # alpha = 0.05 over 8 reads; 300 holdouts: the binomial sd at 5 % is 1.3 points.
    assert share(lambda t: t.decaying) <= 0.05
    assert share(lambda t: outside(t.sequential_interval)) <= 0.05
    assert share(lambda t: outside(t.interval)) >= 0.15  # peeking at a fixed interval


def test_a_planted_decay_is_called_and_recovered() -> None:
    rng = np.random.default_rng(5)
    experiment = _holdout(COMPLETION)
    moments = {
        arm: decay_moments(*unit_weeks(rng, 3000, 12, 0.5, change, True), 3000)
        for arm, change in (("holdout", 0.0), ("ai", -0.01))
    }
    decay = effect_decay(experiment, [COMPLETION], {COMPLETION.name: moments})
    assert decay is not None
    assert decay.decaying
    (test,) = decay.tests
    assert test.sequential_interval is not None
    assert test.interval is not None
    assert test.interval[0] <= -0.01 <= test.interval[1]
    assert test.sequential_interval[1] < 0
    assert test.p_value is not None
    assert test.p_value < decay.level
    assert math.isclose(decay.level, 0.05)


def test_growth_is_not_decay() -> None:
    rng = np.random.default_rng(6)
    experiment = _holdout(COMPLETION)
    moments = {
        arm: decay_moments(*unit_weeks(rng, 3000, 12, 0.5, change, True), 3000)
        for arm, change in (("holdout", 0.0), ("ai", 0.01))
    }
    decay = effect_decay(experiment, [COMPLETION], {COMPLETION.name: moments})
    assert decay is not None
    assert not decay.decaying
    assert decay.tests[0].sequential_interval is not None
    assert decay.tests[0].sequential_interval[0] > 0
