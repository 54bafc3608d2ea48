"""The comparison records of results.json (``comparisons[]``, ``pooled_ai[]``).

Only records are built here: the numbers, verdicts and reasons are those of
:class:`analysis.comparisons.Comparison`; a non-finite number becomes null.
"""

from __future__ import annotations

import math

from analysis.comparisons import Comparison
from analysis.results.records import (
    BayesRecord,
    ComparisonRecord,
    CupedRecord,
    NonInferiorityRecord,
    Pair,
    PowerRecord,
    SequentialRecord,
)

__all__ = ["comparison_record", "num", "pair"]


def num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def pair(x: tuple[float, float] | None) -> Pair | None:
    if x is None or not all(math.isfinite(v) for v in x):
        return None
    return (float(x[0]), float(x[1]))


def comparison_record(c: Comparison, planned_mde: float) -> ComparisonRecord:
    r = c.result
    to_go = c.to_planned_mde
    ni = c.noninferiority
    return ComparisonRecord(
        metric=c.metric.name,
        label=c.metric.label,
        role=c.role,
        category=c.metric.category,
        kind=c.metric.kind,
        goal=c.metric.goal,
        control=c.control,
        treatment=c.treatment,
        n_control=r.control.n,
        n_treatment=r.treatment.n,
        mean_control=num(r.control.value),
        mean_treatment=num(r.treatment.value),
        diff=num(r.diff),
        diff_ci=pair(r.diff_ci),
        lift=num(r.lift),
        lift_ci=pair(r.lift_ci),
        p_value=num(r.p_value),
        p_value_adjusted=num(c.p_value_adjusted),
        df=num(r.df),
        method=r.method,
        note=r.note,
        cuped=_cuped_record(c),
        sequential=SequentialRecord(
            diff_ci=pair(c.sequential.diff_ci),
            lift_ci=pair(c.sequential.lift_ci),
            p_value=num(c.sequential.p_value),
            reason=c.sequential.note,
        ),
        bayes=BayesRecord(
            prior=c.bayes.prior,
            chance_to_win=num(c.bayes.chance_to_win),
            expected_loss=num(c.bayes.expected_loss),
            credible_interval=pair(c.bayes.credible_interval),
            reason=c.bayes.note,
        ),
        power=PowerRecord(
            mde_absolute=num(c.mde.absolute),
            mde_relative=num(c.mde.relative),
            power=c.mde.power,
            planned_mde=planned_mde,
            days_to_planned_mde=num(to_go.days_remaining) if to_go else None,
            reason=c.mde.note or (to_go.note if to_go else None),
        ),
        noninferiority=None
        if ni is None
        else NonInferiorityRecord(
            margin=ni.margin,
            bound=num(ni.bound),
            p_value=num(ni.p_value),
            passed=ni.passed,
            inferior=ni.inferior,
            level=ni.level,
            basis=ni.basis,
            reason=ni.note,
        ),
        verdict=c.verdict,
        verdict_basis=c.basis,
        verdict_p_value_adjusted=num(c.verdict_p_value),
        verdict_lift_ci=pair(c.verdict_lift_ci),
    )


def _cuped_record(c: Comparison) -> CupedRecord:
    """Whether CUPED applied, and why not; its estimates only when it did."""
    adjusted = c.cuped_result
    if c.cuped is None or adjusted is None:
        return CupedRecord(applied=False, variance_reduction=None, reason=c.cuped_note)
    return CupedRecord(
        applied=True,
        variance_reduction=num(c.cuped.variance_reduction),
        theta=num(c.cuped.theta),
        mean_control=num(adjusted.control.value),
        mean_treatment=num(adjusted.treatment.value),
        diff=num(adjusted.diff),
        diff_ci=pair(adjusted.diff_ci),
        lift=num(adjusted.lift),
        lift_ci=pair(adjusted.lift_ci),
        p_value=num(adjusted.p_value),
        method=adjusted.method,
        reason=c.cuped_note,
    )
