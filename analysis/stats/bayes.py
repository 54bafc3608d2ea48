"""Bayesian view of the relative lift: chance to win and expected loss.

GrowthBook's Bayesian engine (gbstats ``EffectBayesianABTest``) in its
Gaussian form: the data enter through the relative lift ``L = T / C - 1`` and
its delta-method variance ``V = Var(T) / C^2 + T^2 Var(C) / C^4`` (the same
as the frequentist lift CI, :func:`analysis.stats.inference.compare`), read as
a normal likelihood ``L ~ N(lift, V)``.

Prior, stated with every result:

* default: flat (improper) on the lift — the posterior is ``N(L, V)``;
* optional: normal ``N(m0, tau^2)`` on the lift — the conjugate update
  (e.g. Gelman et al., "Bayesian Data Analysis", 3rd ed., sec. 2.5)::

      1 / s^2 = 1 / V + 1 / tau^2,     mu = s^2 (L / V + m0 / tau^2)

With the posterior ``N(mu, s^2)`` and ``d = lift`` for a metric whose goal is
to increase (``d = -lift`` to decrease), ``d ~ N(m, s^2)`` with ``m = +/- mu``:

* chance to win ``P(d > 0) = Phi(m / s)``;
* expected loss of shipping the treatment, ``E[max(0, -d)]
  = s phi(m / s) - m Phi(-m / s)`` (the mean of a normal's negative part:
  ``P(d < 0) E[-d | d < 0]`` with the truncated-normal mean; gbstats
  ``get_risk`` computes the same product);
* expected loss of keeping control, ``E[max(0, d)] = s phi(m / s) + m Phi(m / s)``;
* the equal-tailed credible interval ``mu +/- z_(1 - alpha/2) s`` for the lift.

Losses are in units of the relative lift (0.01 = one percentage point of lift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from analysis.stats.inference import TwoArmResult, lift_variance

Goal = Literal["increase", "decrease"]


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """A normal prior ``N(mean, variance)`` on the relative lift."""

    variance: float
    mean: float = 0.0

    def __post_init__(self) -> None:
        if not self.variance > 0:
            msg = f"the prior variance must be positive, got {self.variance}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class BayesResult:
    """Posterior of the relative lift and the decision quantities drawn from it.

    Fields are ``None`` when the lift or its variance is undefined; ``note`` then says why.

    Attributes:
        prior: the prior in words, e.g. ``"flat (improper) on the lift"``.
        posterior_mean: mu, the posterior mean of the lift.
        posterior_sd: s, the posterior standard deviation of the lift.
        chance_to_win: posterior probability that the treatment is better (per the goal).
        expected_loss: expected loss (in lift units) of shipping the treatment.
        expected_loss_control: expected loss of keeping the control.
        credible_interval: equal-tailed 1 - alpha interval for the lift.
        note: why a field is None.
    """

    prior: str
    posterior_mean: float | None
    posterior_sd: float | None
    chance_to_win: float | None
    expected_loss: float | None
    expected_loss_control: float | None
    credible_interval: tuple[float, float] | None
    note: str | None = None


def describe_prior(prior: GaussianPrior | None) -> str:
    if prior is None:
        return "flat (improper) on the lift"
    return f"normal(mean={prior.mean:g}, sd={math.sqrt(prior.variance):g}) on the lift"


def bayesian_lift(
    result: TwoArmResult,
    goal: Goal,
    alpha: float = 0.05,
    prior: GaussianPrior | None = None,
) -> BayesResult:
    """Gaussian posterior of the lift of a comparison, chance to win and expected loss."""
    if not 0 < alpha < 1:
        msg = f"alpha must be in (0, 1), got {alpha}"
        raise ValueError(msg)
    label = describe_prior(prior)

    def undefined(note: str) -> BayesResult:
        return BayesResult(label, None, None, None, None, None, None, note)

    control, treatment = result.control, result.treatment
    if control.n < 2 or treatment.n < 2:
        return undefined("fewer than 2 units in an arm")
    if control.value == 0:
        return undefined("relative lift undefined: the control value is 0")
    lift = treatment.value / control.value - 1
    var = lift_variance(control, treatment)
    if math.isnan(lift) or math.isnan(var):
        return undefined("the metric or its variance is undefined in an arm")
    if var <= 0:
        return undefined("no variation in either arm")

    if prior is None:
        mu, s2 = lift, var
    else:
        s2 = 1 / (1 / var + 1 / prior.variance)
        mu = s2 * (lift / var + prior.mean / prior.variance)
    s = math.sqrt(s2)

    m = mu if goal == "increase" else -mu
    z = m / s
    density = float(stats.norm.pdf(z))
    chance_to_win = float(stats.norm.cdf(z))
    loss_treatment = s * density - m * float(stats.norm.cdf(-z))
    loss_control = s * density + m * chance_to_win
    q = float(stats.norm.ppf(1 - alpha / 2))
    return BayesResult(
        prior=label,
        posterior_mean=mu,
        posterior_sd=s,
        chance_to_win=chance_to_win,
        expected_loss=max(loss_treatment, 0.0),
        expected_loss_control=max(loss_control, 0.0),
        credible_interval=(mu - q * s, mu + q * s),
    )
