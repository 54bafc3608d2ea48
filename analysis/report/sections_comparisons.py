"""Scorecard rows: each comparison's basis lift and interval, its verdict and every detail.

Values are picked from the comparison records (:func:`basis_view` says which
numbers the verdict read), compared with the thresholds they carry and
formatted; nothing is estimated.  Strings are left raw here; the templates
escape them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from analysis.report.formatting import BASIS_TEXT, BasisView, basis_view, why_inconclusive
from analysis.report.palette import VERDICT_MARKS
from analysis.report.text import (
    finite,
    fmt_chance,
    fmt_ci,
    fmt_count,
    fmt_days,
    fmt_lift,
    fmt_p_eq,
    fmt_pct,
    fmt_value,
)
from analysis.results.records import ComparisonRecord

__all__ = [
    "GOAL_TEXT",
    "comparison_row",
    "family_sizes",
    "inconclusive_reasons",
    "noninferiority",
]

_DASH: Final = "\u2013"

GOAL_TEXT: Final[Mapping[str, str]] = {
    "increase": "\u2191 higher is better",
    "decrease": "\u2193 lower is better",
}


def noninferiority(c: ComparisonRecord) -> dict[str, str] | None:
    """A guardrail's non-inferiority status in words, or None without a margin."""
    ni = c.noninferiority
    if ni is None:
        return None
    allowed = (
        f"may rise by at most {fmt_pct(ni.margin)}"
        if c.goal == "decrease"
        else f"may fall by at most {fmt_pct(ni.margin)}"
    )
    interval = (
        f"the {'always-valid ' if ni.basis == 'sequential' else ''}{fmt_pct(ni.level, 0)} interval"
        if ni.level is not None
        else "the interval"
    )
    bound = f"{fmt_lift(ni.bound)} (the end of {interval})"
    if ni.passed:
        return {
            "status": "better",
            "mark": "\u2713",
            "title": "passed",
            "text": f"passed: it {allowed}, and the worst plausible change is {bound}",
        }
    if ni.inferior:
        return {
            "status": "worse",
            "mark": VERDICT_MARKS["worse"],
            "title": "failed (inferior)",
            "text": f"failed: it {allowed}, and the change is shown to go beyond that "
            f"(the best plausible change is still beyond it; worst {bound})",
        }
    reason = f" ({ni.reason})" if ni.reason else ""
    return {
        "status": "inconclusive",
        "mark": VERDICT_MARKS["inconclusive"],
        "title": "not yet shown",
        "text": f"not yet shown: it {allowed}, but the worst plausible change is {bound}{reason}",
    }


def _details(c: ComparisonRecord, view: BasisView) -> list[tuple[str, str]]:
    cuped, sequential, bayes, power = c.cuped, c.sequential, c.bayes, c.power
    out = [
        ("Units", f"{fmt_count(c.n_treatment)} ({c.treatment}) vs "
                  f"{fmt_count(c.n_control)} ({c.control})"),
        ("Fixed-horizon test", f"{c.method or _DASH}: lift {fmt_lift(c.lift)} "
                               f"{fmt_ci(c.lift_ci)}, {fmt_p_eq(c.p_value)}, "
                               f"adjusted {fmt_p_eq(c.p_value_adjusted)}"),
    ]  # fmt: skip
    if cuped.applied:
        out.append(
            (
                "CUPED",
                f"applied ({cuped.method or 'pre-period covariate'}): "
                f"{fmt_pct(cuped.variance_reduction)} less variance; lift {fmt_lift(cuped.lift)} "
                f"{fmt_ci(cuped.lift_ci)}",
            )
        )
    elif cuped.model_fields_set:  # a record without a CUPED entry says nothing of it
        out.append(("CUPED", f"not applied: {cuped.reason or 'no reason given'}"))
    if sequential.lift_ci is not None or sequential.reason:
        out.append(
            (
                "Always-valid (sequential)",
                f"CI {fmt_ci(sequential.lift_ci)}, {fmt_p_eq(sequential.p_value)}"
                if sequential.lift_ci is not None
                else f"not available: {sequential.reason}",
            )
        )
    out.append(
        (
            "Verdict basis",
            f"{BASIS_TEXT.get(view.basis, view.basis)}, adjusted {fmt_p_eq(view.p_value)}",
        )
    )
    if bayes.chance_to_win is not None:
        out.append(
            (
                "Bayesian reading",
                f"chance to win {fmt_chance(bayes.chance_to_win)}, expected loss "
                f"{fmt_pct(bayes.expected_loss, 2)}, credible interval "
                f"{fmt_ci(bayes.credible_interval)}; prior: {bayes.prior or _DASH}",
            )
        )
    elif bayes.reason:
        out.append(("Bayesian reading", f"not available: {bayes.reason}"))
    if power.mde_relative is not None:
        days = fmt_days(power.days_to_planned_mde)
        out.append(
            (
                "Power",
                f"detectable now \u00b1{fmt_pct(power.mde_relative)}, planned "
                f"\u00b1{fmt_pct(power.planned_mde)}; time to the planned MDE: {days}",
            )
        )
    elif power.reason:
        out.append(("Power", power.reason))
    ni = noninferiority(c)
    if ni is not None:
        out.append(("Non-inferiority", ni["text"]))
    if c.note:
        out.append(("Note", c.note))
    return out


def family_sizes(comparisons: Sequence[ComparisonRecord]) -> dict[str, int]:
    """How many comparisons were adjusted together, per role (analysis.comparisons).

    Holm runs within the primary and within the secondary metrics × arms, over
    the comparisons with a p-value of the verdict's basis; guardrails are not
    adjusted, so they have no family here.
    """
    sizes: dict[str, int] = {}
    for c in comparisons:
        role = str(c.role)
        if role in ("primary", "secondary") and basis_view(c).raw_p_value is not None:
            sizes[role] = sizes.get(role, 0) + 1
    return sizes


def _why(c: ComparisonRecord, alpha: object, family_size: int | None) -> str | None:
    """:func:`why_inconclusive` at the experiment's ``alpha`` (0.05 when not given)."""
    return why_inconclusive(
        c, alpha=float(alpha) if finite(alpha) else 0.05, family_size=family_size
    )


def inconclusive_reasons(
    shown: Sequence[ComparisonRecord],
    comparisons: Sequence[ComparisonRecord],
    alpha: object = None,
) -> list[str | None]:
    """Why each of ``shown`` is inconclusive beside an interval that excludes 0, or None.

    The very words of the report's scorecard (``comparison_row(...)["why"]``), for
    other views of a run (the orchestrator's artifacts): ``comparisons`` are all
    the run's comparisons, whose families (:func:`family_sizes`) the adjustment
    was made over; ``shown`` may be any of them, in any order.
    """
    families = family_sizes(comparisons)
    return [_why(c, alpha, families.get(str(c.role))) for c in shown]


def comparison_row(
    c: ComparisonRecord, *, alpha: object = None, family_size: int | None = None
) -> dict[str, Any]:
    """One scorecard row: the basis lift and interval, the verdict, and every detail.

    ``alpha`` (the experiment's, 0.05 when not given) and ``family_size`` (how many
    comparisons were adjusted together) let :func:`why_inconclusive` say why an
    inconclusive verdict sits beside an interval that excludes 0 (``why``).
    """
    view = basis_view(c)
    verdict = c.verdict or "inconclusive"
    details = _details(c, view)
    why = _why(c, alpha, family_size)
    if why is not None:
        details.insert(0, ("Why inconclusive", why))
    title = "\n".join(f"{name}: {text}" for name, text in details)
    return {
        "label": c.label or c.metric,
        "metric": c.metric,
        "role": c.role,
        "goal": GOAL_TEXT.get(c.goal, ""),
        "control": c.control,
        "treatment": c.treatment,
        "n_control": c.n_control,
        "n_treatment": c.n_treatment,
        "mean_control": fmt_value(c.mean_control, c.kind),
        "mean_treatment": fmt_value(c.mean_treatment, c.kind),
        "lift": view.lift,
        "lift_ci": view.ci,
        "ci_kind": view.ci_kind,
        "cuped": view.cuped,
        "p_value": c.p_value,
        "p_value_adjusted": view.p_value,
        "chance_to_win": c.bayes.chance_to_win,
        "verdict": verdict,
        "verdict_class": verdict if verdict in VERDICT_MARKS else "unknown",
        "noninferiority": noninferiority(c),
        "why": why,
        "details": details,
        "title": title,
        "note": c.note,
    }
