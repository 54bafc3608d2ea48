"""Simulated weekly reads of a holdout through the real decay rule (:mod:`analysis.decay`).

A holdout is read every week for months; its rule is only as good as its
behaviour over all those reads. :func:`holdout_reads` replays them: units
arrive over the first weeks, each with a level of its own that persists from
week to week (a heavy user is heavy every week), and every read sees the
weeks each unit has fully lived by then — the same units and weeks, one read
after another, as a scheduled run sees them. The decay sums are built with
numpy and judged by :func:`analysis.decay.effect_decay`, as a run judges
them. Used by ``tests/test_decay.py`` and by ``make calibrate``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from analysis.config.experiments import Experiment, Metric
from analysis.decay import DecayTest, effect_decay
from analysis.joint import JointMoments, joint_moments_from_array
from analysis.stats.decay import DECAY_SUMS

Array = npt.NDArray[np.float64]
#: One arm's unit-weeks: unit, week since exposure, x, y, and the unit's arrival week.
Panel = tuple[Array, Array, Array, Array, Array]


def panel(
    rng: np.random.Generator,
    units: int,
    last_week: int,
    arrival_weeks: int,
    base: float,
    weekly_change: float,
) -> Panel:
    """Every unit-week of one arm up to ``last_week`` weeks after launch.

    Units arrive uniformly over the first ``arrival_weeks``. A unit starts
    Poisson(e^(1 + level)) tasks a week, its level N(0, 0.5²) for good; each
    succeeds with probability ``base + weekly_change * w`` in its week ``w``
    (plus a little per unit, clipped to [0.01, 0.99]): a completion rate, the
    ratio metric a holdout's primary usually is.
    """
    arrival = rng.integers(0, arrival_weeks, units)
    weeks = np.clip(last_week - arrival, 0, None)
    unit = np.repeat(np.arange(units), weeks)
    week = np.concatenate([np.arange(k) for k in weeks]).astype(np.float64)
    level = rng.normal(0.0, 0.5, units)[unit]
    y = rng.poisson(np.exp(1.0 + level)).astype(np.float64)
    p = np.clip(base + weekly_change * week + 0.1 * np.tanh(level), 0.01, 0.99)
    x = rng.binomial(y.astype(np.int64), p).astype(np.float64)
    return unit.astype(np.float64), week, x, y, arrival[unit].astype(np.float64)


def seen(rows: Panel, read_week: int) -> tuple[Array, Array, Array, Array]:
    """(unit, week, x, y) of the unit-weeks wholly lived ``read_week`` weeks after launch."""
    unit, week, x, y, arrival = rows
    keep = arrival + week < read_week
    return unit[keep], week[keep], x[keep], y[keep]


def decay_moments(unit: Array, week: Array, x: Array, y: Array, units: int) -> JointMoments:
    """The decay sums of :mod:`analysis.stats.decay` per unit, as one arm's joint moments."""
    sums = np.zeros((units, len(DECAY_SUMS)))
    index = unit.astype(np.int64)
    for j, values in enumerate((x, week * x, y, week * y, week * week * y)):
        np.add.at(sums[:, j], index, values)
    return joint_moments_from_array(sums[np.bincount(index, minlength=units) > 0])


def holdout_reads(
    experiment: Experiment,
    metric: Metric,
    runs: int,
    seed: int,
    reads: Sequence[int],
    change: float = 0.0,
    units: int = 300,
) -> list[list[DecayTest]]:
    """Per simulated holdout, the rule's reading of ``metric`` at each weekly read.

    The control's completion rate is steady at 0.5; the treatment's moves by
    ``change`` per week of exposure (0: an A/A holdout, where any "fading" is
    false). ``experiment`` names the arms (its control and first treatment).
    """
    rng = np.random.default_rng(seed)
    control, treatment = experiment.control, experiment.treatments()[0]
    histories = []
    for _ in range(runs):
        arms = {
            arm: panel(rng, units, max(reads), 6, 0.5, c)
            for arm, c in ((control, 0.0), (treatment, change))
        }
        history = []
        for week in reads:
            moments = {arm: decay_moments(*seen(rows, week), units) for arm, rows in arms.items()}
            decay = effect_decay(experiment, [metric], {metric.name: moments})
            assert decay is not None
            history.append(decay.tests[0])
        histories.append(history)
    return histories
