"""Power: the minimum detectable effect now, and the days until a planned one.

Minimum detectable effect (MDE) of a two-sided test at level alpha with power
1 - beta, from the variance of the difference of the two arm estimates (the
standard normal-approximation formula; Kohavi, Tang & Xu 2020, "Trustworthy
Online Controlled Experiments", ch. 17; van Belle 2008, "Statistical Rules of
Thumb", ch. 2)::

    MDE = (z_{1 - alpha/2} + z_{1 - beta}) * sqrt(Var_C + Var_T)

Relative MDE = MDE / |control value|. This is the delta-method standard error
of the lift ``T / C - 1`` (``Var_T / C^2 + T^2 Var_C / C^4``) evaluated at the
null ``T = C``, where it equals ``sqrt(Var_C + Var_T) / |C|``.

The formula ignores the (negligible) chance of rejecting in the wrong
direction: it is exactly what statsmodels' ``NormalIndPower`` solves with
``alternative="larger"`` at level ``alpha / 2``. Its two-sided solution also
counts the other tail, ``Phi(-2 z_{1-alpha/2} - z_{1-beta})`` (about 1e-6 at
alpha 0.05 and power 0.8), and so is smaller by a relative ~1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from analysis.stats.inference import ArmEstimate

DEFAULT_POWER = 0.8


@dataclass(frozen=True, slots=True)
class MdeResult:
    """The smallest true effect the test detects with the given power.

    Attributes:
        absolute: MDE on the scale of the difference ``T - C`` (units of the metric).
        relative: ``absolute / |control value|``, on the scale of the lift
            ``T / C - 1``; ``None`` when the control value is 0.
        alpha: two-sided significance level.
        power: the power at the MDE, 1 - beta.
        note: why a field is ``None``.
    """

    absolute: float | None
    relative: float | None
    alpha: float
    power: float
    note: str | None = None


@dataclass(frozen=True, slots=True)
class DaysToMde:
    """How long until the experiment can detect the planned (target) MDE.

    Attributes:
        days_needed: total days since the start at which the relative MDE
            reaches the target (may be below ``days_elapsed`` when it already has).
        days_remaining: ``max(0, days_needed - days_elapsed)``.
        note: why the fields are ``None``, or a remark (already reached).
    """

    days_needed: float | None
    days_remaining: float | None
    note: str | None = None


def _check_level(alpha: float, power: float) -> None:
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie in (0, 1), got {alpha!r}"
        raise ValueError(msg)
    if not 0.0 < power < 1.0:
        msg = f"power must lie in (0, 1), got {power!r}"
        raise ValueError(msg)


def mde(
    control: ArmEstimate,
    treatment: ArmEstimate,
    alpha: float,
    power: float = DEFAULT_POWER,
) -> MdeResult:
    """Minimum detectable absolute and relative effect with the current variances.

    ``(z_{1-alpha/2} + z_{power}) * sqrt(Var_C + Var_T)``, and that divided by
    ``|C|`` for the relative MDE (module docstring; Kohavi, Tang & Xu 2020,
    ch. 17; statsmodels ``NormalIndPower().solve_power(effect_size=None, ...)``
    gives the same in standard-deviation units for equal variances).

    A normal quantile is used even where the comparison itself uses a Welch t:
    the MDE is a planning number, and the difference is of order 1/df.

    Raises:
        ValueError: alpha or power outside (0, 1).
    """
    _check_level(alpha, power)

    def undefined(note: str) -> MdeResult:
        return MdeResult(None, None, alpha, power, note)

    if control.n < 2 or treatment.n < 2:
        return undefined("fewer than 2 units in an arm")
    var = control.variance + treatment.variance
    if math.isnan(var) or math.isnan(control.value):
        return undefined("the metric is undefined in an arm (no denominator events)")
    if var <= 0:
        return undefined("no variation in either arm")
    z = float(stats.norm.ppf(1 - alpha / 2)) + float(stats.norm.ppf(power))
    absolute = z * math.sqrt(var)
    if control.value == 0:
        return MdeResult(
            absolute, None, alpha, power, "relative MDE undefined: the control value is 0"
        )
    return MdeResult(absolute, absolute / abs(control.value), alpha, power)


def days_to_mde(
    target_relative_mde: float,
    current_relative_mde: float | None,
    days_elapsed: float,
) -> DaysToMde:
    """Days until the relative MDE shrinks to the target, at the current accrual rate.

    Assumes the variance of each arm estimate is proportional to 1 / units and
    that units accrue linearly in time at the rate observed so far, so
    ``MDE(d) = MDE_now * sqrt(days_elapsed / d)`` and::

        days_needed = days_elapsed * (current_relative_mde / target_relative_mde)^2

    (the usual sample-size rule n ∝ 1 / MDE^2, e.g. ``n ≈ 16 sigma^2 / delta^2``
    per arm in Kohavi, Tang & Xu 2020, ch. 17). Both assumptions are
    optimistic for user-level metrics: returning users make unique units grow
    sub-linearly, and per-unit variance often grows with the window; read the
    result as a lower bound.

    Returns ``None`` fields and a note when it cannot be estimated: no current
    MDE, a target <= 0, no elapsed time, or a current MDE of 0.
    """
    if current_relative_mde is None or not math.isfinite(current_relative_mde):
        return DaysToMde(None, None, "no current MDE to extrapolate from")
    if not math.isfinite(target_relative_mde) or target_relative_mde <= 0:
        return DaysToMde(None, None, "no positive planned MDE")
    if not math.isfinite(days_elapsed) or days_elapsed <= 0:
        return DaysToMde(None, None, "no elapsed time to measure the accrual rate")
    if current_relative_mde <= 0:
        return DaysToMde(None, None, "the current MDE is 0: no variation to extrapolate")
    needed = days_elapsed * (current_relative_mde / target_relative_mde) ** 2
    remaining = max(0.0, needed - days_elapsed)
    note = "the planned MDE is already reachable" if remaining == 0 else None
    return DaysToMde(needed, remaining, note)
