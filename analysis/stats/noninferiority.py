"""Guardrails as non-inferiority tests against a relative margin.

A guardrail (latency, cost, support tickets, ...) may get worse by at most a
relative margin ``m > 0`` ("cost may rise at most 10 %": m = 0.10). On the
lift ``L = T / C - 1``, with its delta-method standard error (as in
:func:`analysis.stats.inference.compare`)::

    se(L) = sqrt(Var_T / C^2 + T^2 Var_C / C^4)

the one-sided test at level alpha (one of the two one-sided tests of
Schuirmann 1987; Wellek 2010, "Testing Statistical Hypotheses of Equivalence
and Noninferiority", ch. 2) is:

* goal ``decrease`` (a rise is harm): H0: L >= m  vs  H1: L < m;
  ``t = (L - m) / se``, ``p = F_df(t)``; bound = ``L + q se`` (the upper
  one-sided 1 - alpha confidence bound); passed when bound < m.
* goal ``increase`` (a drop is harm): H0: L <= -m  vs  H1: L > -m;
  ``t = (L + m) / se``, ``p = 1 - F_df(t)``; bound = ``L - q se`` (the lower
  one-sided bound); passed when bound > -m.

``F_df`` is Student's t with Welch–Satterthwaite degrees of freedom (the df of
the comparison; ``math.inf`` gives the normal), ``q = F_df^{-1}(1 - alpha)``.
``passed`` is equivalent to ``p < alpha``. The bound at ``alpha`` equals an
end of the two-sided ``1 - 2 alpha`` lift CI; pass ``alpha / 2`` instead to
test against the two-sided ``1 - alpha`` CI (the regulatory convention, ICH E9).

``inferior`` reports the opposite one-sided test: the harm is shown to exceed
the margin (the other bound is beyond it too). Not passed and not inferior
means not enough data to tell.

Proof's convention (:func:`analysis.comparisons.compare_all`): the bound is an
end of the same two-sided ``1 - alpha`` interval the report prints beside the
guardrail — ``noninferiority_test(..., alpha / 2)`` for a fixed-horizon
basis, :func:`noninferiority_sequential` (the confidence sequence) while the
sequential basis decides. A guardrail passes when its whole 95 % interval lies
inside the margin.

**Read every night.** A fixed-horizon bound read at each of many looks passes
a guardrail whose true lift sits exactly at the margin far more often than
alpha (about 22 % over 14 looks at one-sided 5 %). The confidence sequence's
bound holds at every look at once (Howard et al. 2021; Waudby-Smith et al.
2023, as in :mod:`analysis.stats.sequential`), so ``noninferiority_sequential``
may be read nightly: its ``p_value`` is the smallest level at which the
sequence's harmful end lies inside the limit, with ``rho`` held at its value
for the configured alpha, so ``passed`` is ``p_value <= alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from analysis.stats.inference import ArmEstimate, lift_variance, welch_df
from analysis.stats.sequential import sequential_halfwidth, sequential_p_value, sequential_rho

Goal = Literal["increase", "decrease"]


@dataclass(frozen=True, slots=True)
class NonInferiorityResult:
    """A guardrail's one-sided test against its margin.

    Attributes:
        margin: the relative margin m > 0 as given.
        goal: ``increase`` or ``decrease`` (the direction the metric should move).
        limit: the worst lift allowed: ``+m`` for goal decrease, ``-m`` for increase.
        lift: ``T / C - 1``.
        bound: the one-sided 1 - alpha confidence bound of the lift on the
            harmful side (upper for goal decrease, lower for increase).
        p_value: one-sided p-value of H0 "worse than the margin".
        passed: non-inferiority shown: the bound is inside the limit (p < alpha).
        inferior: the lift is shown to be beyond the limit (the opposite
            one-sided test rejects at alpha).
        alpha: the one-sided level of a fixed-horizon bound; for the sequential
            bound, the level of the two-sided confidence sequence.
        df: degrees of freedom of the t (``math.inf`` for the normal).
        note: why a field is ``None``.
        level: the confidence of the two-sided interval whose end ``bound`` is.
        basis: ``fixed_horizon`` or ``sequential`` (always-valid).
    """

    margin: float
    goal: Goal
    limit: float
    lift: float | None
    bound: float | None
    p_value: float | None
    passed: bool
    inferior: bool
    alpha: float
    df: float | None
    note: str | None = None
    level: float | None = None
    basis: str = "fixed_horizon"


def _check(margin: float, goal: str, alpha: float) -> None:
    if not (math.isfinite(margin) and margin > 0):
        msg = f"the margin must be a positive relative change, got {margin!r}"
        raise ValueError(msg)
    if goal not in ("increase", "decrease"):
        msg = f"goal must be 'increase' or 'decrease', got {goal!r}"
        raise ValueError(msg)
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie in (0, 1), got {alpha!r}"
        raise ValueError(msg)


def noninferiority_from_lift(
    lift: float | None,
    lift_se: float | None,
    margin: float,
    goal: Goal,
    alpha: float,
    df: float | None,
) -> NonInferiorityResult:
    """One-sided test of a lift with known standard error against ``±margin``.

    For estimators whose lift and standard error come from elsewhere (CUPED,
    quantiles); formulas in the module docstring. ``df=None`` or NaN is
    treated as undefined, ``math.inf`` as the normal.

    Raises:
        ValueError: margin <= 0, an unknown goal, or alpha outside (0, 1).
    """
    _check(margin, goal, alpha)
    limit = margin if goal == "decrease" else -margin

    def undefined(note: str) -> NonInferiorityResult:
        # Never carry NaN out (contract section 3): undefined numbers become None.
        clean_lift = lift if lift is not None and math.isfinite(lift) else None
        clean_df = df if df is not None and not math.isnan(df) else None
        return _undefined(margin, goal, alpha, note, 1 - 2 * alpha, lift=clean_lift, df=clean_df)

    if lift is None or not math.isfinite(lift):
        return undefined("the lift is undefined")
    if lift_se is None or not math.isfinite(lift_se) or df is None or math.isnan(df):
        return undefined("the standard error of the lift is undefined")
    if lift_se <= 0:
        return undefined("no variation in either arm")
    dist = stats.t(df) if math.isfinite(df) else stats.norm()
    q = float(dist.ppf(1 - alpha))
    stat = (lift - limit) / lift_se
    if goal == "decrease":
        p_value = float(dist.cdf(stat))
        bound = lift + q * lift_se
        passed = bound < limit
        inferior = lift - q * lift_se > limit
    else:
        p_value = float(dist.sf(stat))
        bound = lift - q * lift_se
        passed = bound > limit
        inferior = lift + q * lift_se < limit
    return NonInferiorityResult(
        margin, goal, limit, lift, bound, p_value, passed, inferior, alpha, df, level=1 - 2 * alpha
    )


def _undefined(
    margin: float,
    goal: Goal,
    alpha: float,
    note: str,
    level: float,
    *,
    lift: float | None = None,
    df: float | None = None,
    basis: str = "fixed_horizon",
) -> NonInferiorityResult:
    """A result that shows nothing: no bound, no p-value, neither passed nor inferior."""
    limit = margin if goal == "decrease" else -margin
    return NonInferiorityResult(
        margin, goal, limit, lift, None, None, False, False, alpha, df, note, level, basis
    )


def _lift(control: ArmEstimate, treatment: ArmEstimate) -> tuple[float, float] | str:
    """``(T / C - 1, its delta-method variance)``, or why the lift is undefined."""
    if control.n < 2 or treatment.n < 2:
        return "fewer than 2 units in an arm"
    c, t = control.value, treatment.value
    if math.isnan(c) or math.isnan(t) or math.isnan(control.variance + treatment.variance):
        return "the metric is undefined in an arm (no denominator events)"
    if c == 0:
        return "relative lift undefined: the control value is 0"
    return t / c - 1, lift_variance(control, treatment)


def noninferiority_test(
    control: ArmEstimate,
    treatment: ArmEstimate,
    margin: float,
    goal: Goal,
    alpha: float,
    df: float | None = None,
) -> NonInferiorityResult:
    """Non-inferiority of the treatment against a relative margin (module docstring).

    The lift and its delta-method variance are those of
    :func:`analysis.stats.inference.compare`; ``df=None`` takes the
    Welch–Satterthwaite df of the two arm estimates (as ``compare`` does), so
    the bound at ``alpha`` is an end of ``compare(..., 2 * alpha).lift_ci``;
    pass ``math.inf`` for estimators with only an asymptotic variance
    (``compare(normal=True)``, quantiles).

    Raises:
        ValueError: margin <= 0, an unknown goal, or alpha outside (0, 1).
    """
    _check(margin, goal, alpha)
    found = _lift(control, treatment)
    if isinstance(found, str):
        return _undefined(margin, goal, alpha, found, 1 - 2 * alpha)
    lift, lift_var = found
    if df is None:
        df = welch_df(control, treatment)
    return noninferiority_from_lift(lift, math.sqrt(lift_var), margin, goal, alpha, df)


def noninferiority_sequential(
    control: ArmEstimate,
    treatment: ArmEstimate,
    margin: float,
    goal: Goal,
    alpha: float,
    n_star: float,
) -> NonInferiorityResult:
    """Non-inferiority read from the always-valid ``1 - alpha`` confidence sequence of the lift.

    ``bound`` is the harmful end of the sequence's lift interval (that of
    :func:`analysis.stats.sequential.sequential_interval`), so it may be read
    at every look; see the module docstring.

    Raises:
        ValueError: margin <= 0, an unknown goal, alpha outside (0, 1) or n_star <= 0.
    """
    _check(margin, goal, alpha)
    limit = margin if goal == "decrease" else -margin
    rho = sequential_rho(alpha, n_star)

    def undefined(note: str, lift: float | None = None) -> NonInferiorityResult:
        return _undefined(margin, goal, alpha, note, 1 - alpha, lift=lift, basis="sequential")

    found = _lift(control, treatment)
    if isinstance(found, str):
        return undefined(found)
    lift, variance = found
    if not variance > 0:
        return undefined("no variation in either arm", lift)
    n = control.n + treatment.n
    half = sequential_halfwidth(variance, n, alpha, rho)
    harmful, helpful = (
        (lift + half, lift - half) if goal == "decrease" else (lift - half, lift + half)
    )
    inside = lift < limit if goal == "decrease" else lift > limit
    p_value = sequential_p_value(lift - limit, variance, n, rho) if inside else 1.0
    passed = harmful < limit if goal == "decrease" else harmful > limit
    inferior = helpful > limit if goal == "decrease" else helpful < limit
    return NonInferiorityResult(
        margin,
        goal,
        limit,
        lift,
        harmful,
        p_value,
        passed,
        inferior,
        alpha,
        None,
        level=1 - alpha,
        basis="sequential",
    )
