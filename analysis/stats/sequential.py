"""Always-valid inference: the asymptotic confidence sequence for diff and lift.

Looking at a fixed-horizon test every night inflates its false-positive rate;
a *confidence sequence* covers the true effect at every sample size at once,
so it may be read as often as wanted.  We use the asymptotic confidence
sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2023),
"Time-uniform central limit theory and asymptotic confidence sequences"
(arXiv:2103.06476v7, eq. 9 and its two-sample form), built on the
normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021),
"Time-uniform, nonparametric, nonasymptotic confidence sequences", eq. 14 —
the form GrowthBook (gbstats ``SequentialTwoSidedTTest``) and Eppo use.  The
equation numbers for rho and the p-value below are those gbstats cites.

With ``N`` the total units in both arms, ``V`` the variance of the estimate
(``Var_T + Var_C`` for the difference; the delta-method variance of
:func:`analysis.stats.inference.compare` for the lift) and ``s2 = N V`` its
per-unit analogue, the sequence at level ``1 - alpha`` is
``estimate +/- halfwidth`` with::

    rho       = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N*)
    halfwidth = sqrt(s2 * 2 (N rho^2 + 1) / (N^2 rho^2) * ln(sqrt(N rho^2 + 1) / alpha))

``N*`` (the tuning sample size, from the experiment config) is where the
sequence is tightest relative to the fixed-horizon interval; ``rho`` is the
mixture scale that minimises the width at ``N = N*`` (Waudby-Smith et al.
eq. 161).

The always-valid p-value is the smallest level at which the sequence excludes
0, with ``rho`` held at its value for the configured alpha (so the p-value and
the reported sequence agree: ``p <= alpha`` exactly when the sequence excludes
0).  The halfwidth decreases in the level, so solving ``halfwidth = |diff|``
for it gives the closed form (the reciprocal of the mixture e-value,
Waudby-Smith et al. eq. 155, as gbstats computes it)::

    p = min(1, sqrt(N rho^2 + 1) * exp(-N rho^2 diff^2 / (2 V (N rho^2 + 1))))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.stats.inference import TwoArmResult, lift_variance


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """The confidence sequence at the current sample size and its p-value.

    Fields are ``None`` when not defined for the data; ``note`` then says why.

    Attributes:
        diff_ci: the always-valid interval for treatment - control.
        lift_ci: the always-valid interval for the relative lift T / C - 1.
        p_value: the always-valid p-value of "diff = 0".
        note: why a field is None.
    """

    diff_ci: tuple[float, float] | None
    lift_ci: tuple[float, float] | None
    p_value: float | None
    note: str | None = None


def sequential_rho(alpha: float, n_star: float) -> float:
    """The mixture scale rho tuned for ``N*`` (Waudby-Smith et al. 2023, eq. 161)."""
    _check(alpha, n_star)
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / n_star)


def sequential_halfwidth(variance: float, n: int, alpha: float, rho: float) -> float:
    """Half-width of the confidence sequence for an estimate with this variance.

    ``variance`` is the variance of the estimate; ``s2 = n * variance`` is the
    per-unit variance of the module docstring's formula.
    """
    s2 = n * variance
    nr2 = n * rho * rho
    return math.sqrt(s2 * 2 * (nr2 + 1) / (nr2 * n) * math.log(math.sqrt(nr2 + 1) / alpha))


def sequential_p_value(estimate: float, variance: float, n: int, rho: float) -> float:
    """Smallest level at which the sequence excludes 0, capped at 1 (closed form above)."""
    nr2 = n * rho * rho
    exponent = -nr2 * estimate * estimate / (2 * variance * (nr2 + 1))
    return min(1.0, math.sqrt(nr2 + 1) * math.exp(exponent))


def sequential_interval(result: TwoArmResult, alpha: float, n_star: int) -> SequentialResult:
    """The always-valid intervals for diff and lift and the p-value of a comparison.

    Built from the comparison's arm estimates (fixed-horizon or CUPED-adjusted),
    with ``N = n_control + n_treatment`` and the tuning sample size ``n_star``.
    """
    _check(alpha, n_star)
    control, treatment = result.control, result.treatment
    if result.diff is None:
        return SequentialResult(None, None, None, result.note or "the difference is undefined")
    variance = control.variance + treatment.variance
    if math.isnan(variance) or math.isnan(result.diff):
        return SequentialResult(None, None, None, "the variance of an arm is undefined")
    if variance <= 0:
        return SequentialResult(None, None, None, "no variation in either arm")

    n = control.n + treatment.n
    rho = sequential_rho(alpha, n_star)
    half = sequential_halfwidth(variance, n, alpha, rho)
    diff_ci = (result.diff - half, result.diff + half)
    p_value = sequential_p_value(result.diff, variance, n, rho)

    if control.value == 0:
        return SequentialResult(
            diff_ci, None, p_value, "relative lift undefined: the control value is 0"
        )
    lift = treatment.value / control.value - 1
    lift_half = sequential_halfwidth(lift_variance(control, treatment), n, alpha, rho)
    return SequentialResult(diff_ci, (lift - lift_half, lift + lift_half), p_value)


def _check(alpha: float, n_star: float) -> None:
    if not 0 < alpha < 1:
        msg = f"alpha must be in (0, 1), got {alpha}"
        raise ValueError(msg)
    if not n_star > 0:
        msg = f"the tuning sample size N* must be positive, got {n_star}"
        raise ValueError(msg)
