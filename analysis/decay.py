"""Is it still helping? The rule that says an effect is decaying, read every week.

For each trending metric (the primary and the trust metrics,
:func:`analysis.timeline.trending_metrics`) and each arm pair
(:func:`analysis.comparisons.arm_pairs`), the trend of the effect is the
difference of the two arms' slopes over weeks since exposure
(:mod:`analysis.stats.decay`). Where a metric has no pair (an AI-only trust
metric in a holdout with one AI arm) its AI arm's own slope is read instead,
and marked observational.

A holdout is read week after week for as long as it runs, so the trend is
judged on its *always-valid* interval (the confidence sequence of
:mod:`analysis.stats.sequential`, with ``N`` the units of the arms read), at
``alpha / k`` for ``k`` trends read (Bonferroni): the chance that an effect
that does not change is ever called decaying, over every weekly read and
every metric, stays under ``alpha`` (tested by simulating weekly reads).

*Decaying* means the interval lies wholly on the worse side of zero: the
effect moves against the metric's goal week after week.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from analysis.comparisons import arm_pairs
from analysis.config.experiments import Experiment, Metric
from analysis.joint import JointMoments
from analysis.stats.decay import Slope, arm_slope, fixed_interval, slope_difference
from analysis.stats.sequential import sequential_halfwidth, sequential_p_value, sequential_rho

#: The note on a trend read within one arm.
OBSERVATIONAL = "observational: one arm's own trend, not a randomised comparison"

DecayMoments = Mapping[str, Mapping[str, JointMoments]]


@dataclass(frozen=True, slots=True)
class DecayTest:
    """The trend of one effect (or, with ``control`` None, of one arm's own metric).

    ``baseline``: the control's (or the arm's) fitted level at week 0, the scale of
    the slope in relative terms.
    """

    metric: Metric
    control: str | None
    treatment: str
    estimate: Slope | None
    interval: tuple[float, float] | None
    sequential_interval: tuple[float, float] | None
    p_value: float | None
    decaying: bool
    note: str | None = None
    baseline: float | None = None


@dataclass(frozen=True)
class Decay:
    """Every trend read, the level each was judged at, and whether any is decaying."""

    tests: tuple[DecayTest, ...]
    alpha: float
    level: float

    @property
    def decaying(self) -> bool:
        return any(t.decaying for t in self.tests)


def _pairs(experiment: Experiment, metric: Metric) -> list[tuple[str | None, str]]:
    pairs: list[tuple[str | None, str]] = list(arm_pairs(experiment, metric))
    if pairs:
        return pairs
    return [(None, arm) for arm in experiment.ai_variants()] if metric.ai_only else []


def _worse(metric: Metric, interval: tuple[float, float]) -> bool:
    lo, hi = interval
    return hi < 0 if metric.goal == "increase" else lo > 0


def _read(
    metric: Metric,
    control: str | None,
    treatment: str,
    moments: Mapping[str, JointMoments],
    alpha: float,
    level: float,
    n_star: int,
) -> DecayTest:
    arm = arm_slope(moments[treatment]) if treatment in moments else None
    base = None
    if control is not None:
        base = arm_slope(moments[control]) if control in moments else None
    if arm is None or (control is not None and base is None):
        return DecayTest(
            metric, control, treatment, None, None, None, None, False,
            "fewer than two units or weeks of exposure observed",
        )  # fmt: skip
    estimate = arm if base is None else slope_difference(base, arm)
    if not (math.isfinite(estimate.variance) and estimate.variance > 0):
        return DecayTest(
            metric, control, treatment, estimate, None, None, None, False, "no variation"
        )
    rho = sequential_rho(level, n_star)
    half = sequential_halfwidth(estimate.variance, estimate.n, level, rho)
    always = (estimate.slope - half, estimate.slope + half)
    p_value = sequential_p_value(estimate.slope, estimate.variance, estimate.n, rho)
    note = None if base is not None else OBSERVATIONAL
    return DecayTest(
        metric,
        control,
        treatment,
        estimate,
        fixed_interval(estimate, alpha),
        always,
        p_value,
        _worse(metric, always),
        note,
        (base or arm).level,
    )


def effect_decay(
    experiment: Experiment, metrics: Sequence[Metric], moments: DecayMoments
) -> Decay | None:
    """Each trend read at ``alpha / k`` (module docstring); None without decay moments."""
    if not moments:
        return None
    by_name = {m.name: m for m in metrics}
    reads = [
        (by_name[name], control, treatment)
        for name in moments
        if name in by_name
        for control, treatment in _pairs(experiment, by_name[name])
    ]
    alpha = experiment.alpha
    level = alpha / max(len(reads), 1)
    n_star = experiment.statistics.sequential_n_star
    tests = tuple(_read(m, c, t, moments[m.name], alpha, level, n_star) for m, c, t in reads)
    return Decay(tests, alpha, level)
