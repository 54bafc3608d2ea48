"""The ground truth: each metric's population value per arm, derived analytically."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

from analysis.config.experiments import EventAggregate, Experiment, Metric
from analysis.devtools.simulate.behaviours import ERROR_TYPES, REJECT_REASONS, ArmBehaviour
from analysis.devtools.simulate.model import (
    ACTIVITY_SHAPE,
    AI_LATENCY_SIGMA,
    EDIT_FRACTION_BETA,
    LOW_TRUST_SHARE,
    PLAN_ACTIVITY,
    PLAN_PROBS,
    TIME_ON_TASK_SIGMA,
    US_PER_DAY,
    FloatArray,
    _Timeline,
)

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(64)


@dataclass(frozen=True)
class _Exposure:
    """The distribution of a unit's exposed days inside its analysis window.

    With ``a`` uniform over the assignment period, ``Y = end_of(as_of) - a`` is
    uniform on ``[low, high]`` days, and the exposure that counts is
    ``X = min(Y, window)``: a uniform part plus, when the window is shorter than
    ``high``, a point mass at ``window``.
    """

    low: float
    high: float
    window: float | None

    @classmethod
    def of(cls, timeline: _Timeline) -> _Exposure:
        return cls(
            low=(timeline.end_us - timeline.assign_end_us) / US_PER_DAY,
            high=(timeline.end_us - timeline.start_us) / US_PER_DAY,
            window=None if timeline.window_us is None else timeline.window_us / US_PER_DAY,
        )

    def expect(self, g: Callable[[FloatArray], FloatArray]) -> float:
        """E[g(X)], by 64-point Gauss-Legendre on the uniform part (exact for the
        smooth integrands used here to machine precision) plus the point mass."""
        top = self.high if self.window is None else min(self.high, self.window)
        if top <= self.low:  # the window is shorter than every exposure
            return float(g(np.array([top]))[0])
        half = (top - self.low) / 2
        x = self.low + half * (_GAUSS_NODES + 1)
        continuous = float(np.sum(_GAUSS_WEIGHTS * g(x))) / 2  # mean of g on [low, top]
        p_uniform = (top - self.low) / (self.high - self.low)
        return p_uniform * continuous + (1 - p_uniform) * float(g(np.array([top]))[0])

    def mean(self) -> float:
        return self.expect(lambda x: x)


@dataclass(frozen=True)
class _Values:
    """The distribution of one event's value: null, continuous, or discrete."""

    mean: float | None = None
    pmf: Mapping[float, float] | None = None
    lognormal: tuple[float, float] | None = None  # (median, sigma)


@dataclass(frozen=True)
class _EventLaw:
    """How many events of one name (after a ``value_equals`` filter) a unit has.

    Attributes:
        per_day: rate per exposed day (times the activity latent) of the
            *occurrences* that carry these events: tasks or support tickets.
        classes: for each latent class (weight, mean number of events per
            occurrence, P(an occurrence has at least one such event)).
        once: P(a unit has the event once in its window), for the trust survey.
        values: the distribution of the kept events' values.
    """

    per_day: float = 0.0
    classes: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0),)
    once: float = 0.0
    values: _Values = _Values()

    def count(self, exposure: _Exposure) -> float:
        """E[number of events per unit in the window] = rate * E[X] * E[m] * mean
        per occurrence (+ the once-per-unit probability), with E[m] = 1."""
        per_occurrence = sum(w * mean for w, mean, _ in self.classes)
        return self.per_day * exposure.mean() * per_occurrence + self.once

    def p_any(self, exposure: _Exposure) -> float:
        """P(a unit has at least one event in the window).

        Occurrences with at least one event form a thinned Poisson process, so
        P(none | m, X, class) = exp(-rate * m * X * p); averaging over the
        activity ``m = f_plan * Gamma(k, 1/k)`` uses the Gamma Laplace transform
        (1 + t f / k)^-k, and the exposure X is integrated numerically.
        """
        f = np.asarray(PLAN_ACTIVITY)
        pi = np.asarray(PLAN_PROBS)
        k = ACTIVITY_SHAPE
        p_none = 0.0
        for weight, _, p in self.classes:
            t = self.per_day * p

            def laplace(x: FloatArray, t: float = t) -> FloatArray:
                inner = (1 + t * np.outer(x, f) / k) ** -k
                return np.asarray(inner @ pi, dtype=np.float64)

            p_none += weight * exposure.expect(laplace)
        return 1 - (1 - self.once) * p_none


def _law(
    event: str, b: ArmBehaviour, value_equals: float | None, label_equals: str | None = None
) -> _EventLaw:
    """The law of ``event`` in an arm with behaviour ``b`` (see :class:`_EventLaw`).

    Per task: ``task_completed`` / ``task_abandoned`` / ``feedback`` are Bernoulli;
    ``retry`` and the AI events are Poisson (an outcome of an AI output is a
    thinned Poisson: mean ``ai_shown_per_task * prob``).  Abandonment is a
    mixture over the low-trust latent.  A ``value_equals`` filter thins the
    events by P(value == v), which is 0 for null or continuous values; a
    ``label_equals`` filter by P(label == l): a rejection reason's share for
    ``ai_rejected`` (:attr:`ArmBehaviour.reject_reasons`), an error type's for
    ``ai_error`` (:attr:`ArmBehaviour.error_types`), 0 for any other event.
    """
    lt = LOW_TRUST_SHARE
    shown = b.ai_shown_per_task

    def bernoulli(p: float) -> tuple[float, float, float]:
        return (1.0, p, p)

    def poisson(mean: float) -> tuple[float, float, float]:
        return (1.0, mean, -math.expm1(-mean))

    kind: Literal["bernoulli", "poisson"] = "bernoulli"
    per_day, once = b.tasks_per_day, 0.0
    values = _Values()
    match event:
        case "task_started":
            classes = [bernoulli(1.0)]
        case "task_completed":
            classes = [bernoulli(b.completion_prob)]
            sigma = TIME_ON_TASK_SIGMA
            values = _Values(
                mean=b.time_on_task_median_s * math.exp(sigma**2 / 2),
                lognormal=(b.time_on_task_median_s, sigma),
            )
        case "task_abandoned":
            a = b.abandon_prob
            m = b.low_trust_abandon_multiplier
            classes = [(1 - lt, a, a), (lt, a * m, a * m)]
        case "retry":
            kind, classes = "poisson", [poisson(b.retries_per_task)]
        case "ai_shown":
            kind, classes = "poisson", [poisson(shown)]
        case "ai_accepted":
            kind, classes = "poisson", [poisson(shown * b.accept_prob)]
        case "ai_edited":
            kind, classes = "poisson", [poisson(shown * b.edit_prob)]
            alpha, beta = EDIT_FRACTION_BETA
            values = _Values(mean=alpha / (alpha + beta))
        case "ai_rejected":
            kind, classes = "poisson", [poisson(shown * b.reject_prob)]
        case "ai_error":
            kind, classes = "poisson", [poisson(shown * b.error_prob)]
        case "ai_latency":
            kind, classes = "poisson", [poisson(shown)]
            sigma = AI_LATENCY_SIGMA
            values = _Values(
                mean=b.ai_latency_median_ms * math.exp(sigma**2 / 2),
                lognormal=(b.ai_latency_median_ms, sigma),
            )
        case "ai_cost":
            kind, classes = "poisson", [poisson(shown)]
            values = _Values(mean=b.ai_cost_usd)
        case "feedback":
            classes = [bernoulli(b.feedback_prob)]
            td = b.thumbs_down_prob
            values = _Values(mean=1 - 2 * td, pmf={-1.0: td, 1.0: 1 - td})
        case "support_ticket":
            per_day, classes = b.tickets_per_day, [bernoulli(1.0)]
        case "trust_survey":
            per_day, once, classes = 0.0, b.survey_prob, [bernoulli(0.0)]
            pmf = {float(k): p for k, p in enumerate(b.trust_probs, start=1)}
            values = _Values(mean=sum(k * p for k, p in pmf.items()), pmf=pmf)
        case _:  # not generated by the simulator: it never happens
            return _EventLaw()
    keep = 1.0
    if value_equals is not None:
        keep = 0.0 if values.pmf is None else values.pmf.get(float(value_equals), 0.0)
        values = _Values(mean=float(value_equals), pmf={float(value_equals): 1.0})
    if label_equals is not None:
        shares = {
            "ai_rejected": dict(zip(REJECT_REASONS, b.reject_reasons, strict=True)),
            "ai_error": dict(zip(ERROR_TYPES, b.error_types, strict=True)),
        }
        keep *= shares.get(event, {}).get(label_equals, 0.0)
    if keep != 1.0:
        once *= keep
        if kind == "poisson":
            classes = [(w, mean * keep, -math.expm1(-mean * keep)) for w, mean, _ in classes]
        else:
            classes = [(w, mean * keep, p * keep) for w, mean, p in classes]
    return _EventLaw(per_day, tuple(classes), once, values)


def _aggregate(agg: EventAggregate, b: ArmBehaviour, exposure: _Exposure) -> float | None:
    """E[the per-unit aggregate] over all assigned units (count or sum), or, for
    ``mean``, E[value of one event] — the mean of per-unit means over the units
    that have events, since values are i.i.d. and independent of the counts."""
    law = _law(agg.event, b, agg.value_equals, agg.label_equals)
    count = law.count(exposure)
    if agg.agg == "count":
        return count
    if agg.agg == "sum":
        return count * (law.values.mean or 0.0)  # null values add up to 0
    return law.values.mean if count > 0 else None


def _true_value(metric: Metric, b: ArmBehaviour, exposure: _Exposure) -> float | None:
    """The population value of one metric in one arm (None where undefined)."""
    if metric.kind == "ratio":
        assert metric.numerator is not None
        assert metric.denominator is not None
        if "mean" in (metric.numerator.agg, metric.denominator.agg):
            return None  # a ratio of per-unit means is not a catalog shape
        numerator = _aggregate(metric.numerator, b, exposure)
        denominator = _aggregate(metric.denominator, b, exposure)
        if numerator is None or not denominator:
            return None
        return numerator / denominator
    assert metric.value is not None
    if metric.kind == "mean":
        return _aggregate(metric.value, b, exposure)
    law = _law(metric.value.event, b, metric.value.value_equals, metric.value.label_equals)
    if metric.kind == "proportion":
        return law.p_any(exposure) if metric.value.agg == "count" else None
    # quantile: of the pooled event values of the arm
    assert metric.quantile is not None
    if law.count(exposure) <= 0 or law.values.lognormal is None:
        return None
    median, sigma = law.values.lognormal
    return median * math.exp(sigma * NormalDist().inv_cdf(metric.quantile))


def true_metric_values(
    experiment: Experiment,
    behaviours: Mapping[str, ArmBehaviour],
    metrics: Mapping[str, Metric],
    as_of: dt.date,
) -> dict[str, dict[str, float | None]]:
    """The value each metric's estimator converges to, per arm: ``{metric: {variant: value}}``.

    Derived analytically from the parameters, for data observed up to the end of
    ``as_of`` (the exposure distribution depends on it), with ``X`` the exposed
    days in the window (see :class:`_Exposure`) and ``m`` the activity (mean 1):

    * ratio: E[numerator per unit] / E[denominator per unit]; for task events the
      exposure cancels, e.g. ``task_completion_rate = completion_prob``,
      ``abandonment_rate = abandon_prob * (1 - s + s * multiplier)`` with
      ``s = LOW_TRUST_SHARE``, ``retries_per_task = retries_per_task``,
      ``acceptance_rate = accept_prob``, ``thumbs_down_rate = thumbs_down_prob``,
      ``time_on_task = median * exp(sigma^2 / 2)`` (lognormal mean) and
      ``cost_per_completed_task = ai_shown_per_task * ai_cost_usd / completion_prob``
      (0.0 in an arm without AI).  Undefined (None) when the denominator is 0,
      e.g. acceptance in an arm without AI outputs.
    * mean of a count: ``rate * E[X]`` (e.g. ``tasks_per_day * completion_prob *
      E[X]``; ``tickets_per_day * E[X]``); mean of per-unit means (trust_score):
      E[value] = ``sum k * p_k``.
    * proportion (at least one event): ``1 - E[exp(-rate * p * m * X)]``, with the
      Gamma Laplace transform over ``m`` and the integral over ``X``.
    * quantile of a lognormal value: ``median * exp(sigma * z_q)``.

    Events the simulator never produces have count 0.
    """
    exposure = _Exposure.of(_Timeline.of(experiment, as_of))
    return {
        name: {
            variant: _true_value(metric, behaviours[variant], exposure)
            for variant in experiment.variants
        }
        for name, metric in metrics.items()
    }


def true_lifts(
    experiment: Experiment,
    behaviours: Mapping[str, ArmBehaviour],
    metrics: Mapping[str, Metric],
    as_of: dt.date,
) -> dict[tuple[str, str], float | None]:
    """True relative lifts ``treatment / baseline - 1`` keyed by (metric, treatment).

    The baseline is the control; for an ``ai_only`` metric it is the first AI arm,
    and the metric has lifts only when the experiment has at least two AI arms
    (the other AI arms are the treatments).  None where either value is undefined
    or the baseline is 0.
    """
    values = true_metric_values(experiment, behaviours, metrics, as_of)
    ai_arms = experiment.ai_variants()
    lifts: dict[tuple[str, str], float | None] = {}
    for name, metric in metrics.items():
        if metric.ai_only:
            if len(ai_arms) < 2:
                continue
            baseline, treatments = ai_arms[0], ai_arms[1:]
        else:
            baseline, treatments = experiment.control, experiment.treatments()
        base = values[name][baseline]
        for treatment in treatments:
            value = values[name][treatment]
            ok = base is not None and value is not None and base != 0
            lifts[name, treatment] = value / base - 1 if ok else None  # type: ignore[operator]
    return lifts
