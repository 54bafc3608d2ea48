"""``results.json`` (schema_version 1): serialisation only, at this edge.

The contract's fields, plus documented extensions (docs/contract.md):
``generated_at``, ``experiment`` (the config that was analysed), per
comparison ``label``, ``role``, ``df``, ``note`` and ``verdict_basis``, and
``descriptive`` for AI-only metrics with a single AI arm. NaN never appears:
undefined numbers are null with a ``note``/``reason`` saying why.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from analysis.comparisons import Comparison, Description
from analysis.config import Experiment
from analysis.decision import Decision
from analysis.descriptives import TRUST_VALUES, Histogram
from analysis.metrics import Cleaning
from analysis.segments import Heterogeneity, SegmentSlice
from analysis.stats.balance import BalanceResult
from analysis.stats.power import days_to_mde
from analysis.stats.srm import SrmResult
from analysis.timeline import DayPoint, ExposureTrend

SCHEMA_VERSION = 1


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _pair(x: tuple[float, float] | None) -> list[float] | None:
    if x is None or not all(math.isfinite(v) for v in x):
        return None
    return [float(x[0]), float(x[1])]


def comparison_record(c: Comparison, days_elapsed: int, planned_mde: float) -> dict[str, Any]:
    r = c.result
    to_go = days_to_mde(planned_mde, c.mde.relative, days_elapsed)
    ni = c.noninferiority
    return {
        "metric": c.metric.name,
        "label": c.metric.label,
        "role": c.role,
        "category": c.metric.category,
        "kind": c.metric.kind,
        "goal": c.metric.goal,
        "control": c.control,
        "treatment": c.treatment,
        "n_control": r.control.n,
        "n_treatment": r.treatment.n,
        "mean_control": _num(r.control.value),
        "mean_treatment": _num(r.treatment.value),
        "diff": _num(r.diff),
        "diff_ci": _pair(r.diff_ci),
        "lift": _num(r.lift),
        "lift_ci": _pair(r.lift_ci),
        "p_value": _num(r.p_value),
        "p_value_adjusted": _num(c.p_value_adjusted),
        "df": _num(r.df),
        "method": r.method,
        "note": r.note,
        "cuped": _cuped_record(c),
        "sequential": {
            "diff_ci": _pair(c.sequential.diff_ci),
            "lift_ci": _pair(c.sequential.lift_ci),
            "p_value": _num(c.sequential.p_value),
            "reason": c.sequential.note,
        },
        "bayes": {
            "prior": c.bayes.prior,
            "chance_to_win": _num(c.bayes.chance_to_win),
            "expected_loss": _num(c.bayes.expected_loss),
            "credible_interval": _pair(c.bayes.credible_interval),
            "reason": c.bayes.note,
        },
        "power": {
            "mde_absolute": _num(c.mde.absolute),
            "mde_relative": _num(c.mde.relative),
            "power": c.mde.power,
            "planned_mde": planned_mde,
            "days_to_planned_mde": _num(to_go.days_remaining),
            "reason": c.mde.note or to_go.note,
        },
        "noninferiority": None
        if ni is None
        else {
            "margin": ni.margin,
            "bound": _num(ni.bound),
            "p_value": _num(ni.p_value),
            "passed": ni.passed,
            "inferior": ni.inferior,
            "level": ni.level,
            "basis": ni.basis,
            "reason": ni.note,
        },
        "verdict": c.verdict,
        "verdict_basis": c.basis,
        "verdict_p_value_adjusted": _num(c.verdict_p_value),
        "verdict_lift_ci": _pair(c.verdict_lift_ci),
    }


def _slice_record(s: SegmentSlice) -> dict[str, Any]:
    r = s.result
    return {
        "dimension": s.dimension,
        "value": s.value,
        "metric": s.metric.name,
        "label": s.metric.label,
        "control": s.control,
        "treatment": s.treatment,
        "n_control": r.control.n if r else None,
        "n_treatment": r.treatment.n if r else None,
        "lift": _num(r.lift) if r else None,
        "lift_ci": _pair(r.lift_ci) if r else None,
        "diff": _num(r.diff) if r else None,
        "p_value": _num(r.p_value) if r else None,
        "p_value_adjusted": _num(s.p_value_adjusted),
        "verdict": s.verdict,
        "reason": s.skipped or (r.note if r else None),
    }


class DescriptiveCounts(Protocol):
    """The counts the report draws (funnel and histograms)."""

    @property
    def funnel(self) -> Mapping[str, list[tuple[str, int]]]: ...
    @property
    def time_on_task(self) -> Histogram | None: ...
    @property
    def trust(self) -> Mapping[str, list[int]]: ...


def _distributions(d: DescriptiveCounts | None) -> dict[str, Any]:
    if d is None:
        return {}
    out: dict[str, Any] = {
        "trust_score": {"values": list(TRUST_VALUES), "counts": dict(d.trust)},
    }
    if d.time_on_task is not None:
        out["time_on_task"] = {
            "unit": "seconds",
            "log10_edges": list(d.time_on_task.edges),
            "counts": d.time_on_task.counts,
        }
    return out


def _over_time_record(
    primary: str, points: Sequence[DayPoint], comparisons: Sequence[Comparison]
) -> dict[str, Any] | None:
    label = next((c.metric.label for c in comparisons if c.metric.name == primary), primary)
    if not points:
        return None
    return {
        "metric": primary,
        "label": label,
        "days": [
            {
                "date": p.day.isoformat(),
                "units": dict(p.units),
                "comparisons": [
                    {
                        "control": control,
                        "treatment": treatment,
                        "lift": _num(r.lift),
                        "lift_ci": _pair(r.lift_ci),
                        "sequential_lift_ci": _pair(seq.lift_ci),
                    }
                    for control, treatment, r, seq in p.comparisons
                ],
            }
            for p in points
        ],
    }


def _trend_record(t: ExposureTrend) -> dict[str, Any]:
    return {
        "metric": t.metric.name,
        "label": t.metric.label,
        "control": t.control,
        "treatment": t.treatment,
        "buckets": [
            {
                "week": w,
                "lift": _num(r.lift),
                "lift_ci": _pair(r.lift_ci),
                "n_control": r.control.n,
                "n_treatment": r.treatment.n,
            }
            for w, r in t.weeks
        ],
        "slope": _num(t.trend.slope),
        "slope_ci": _pair(t.trend.slope_ci),
        "p_value": _num(t.trend.p_value),
        "reason": t.trend.note
        or "weekly lifts share units, so this trend test treats correlated weeks as "
        "independent and is optimistic; read it as a description",
    }


def _heterogeneity_record(h: Heterogeneity) -> dict[str, Any]:
    t = h.test
    return {
        "dimension": h.dimension,
        "metric": h.metric.name,
        "control": h.control,
        "treatment": h.treatment,
        "q": _num(t.q),
        "df": t.df,
        "p_value": _num(t.p_value),
        "i2": _num(t.i2),
        "segments_tested": t.k,
        "reason": t.note,
    }


def _cuped_record(c: Comparison) -> dict[str, Any]:
    outcome, adjusted = c.cuped, c.cuped_result
    if outcome is None:
        return {"applied": False, "variance_reduction": None, "reason": "not for quantiles"}
    if adjusted is None:
        return {
            "applied": False,
            "variance_reduction": None,
            "reason": outcome.skip_reason or "not estimable",
        }
    return {
        "applied": True,
        "variance_reduction": _num(outcome.variance_reduction),
        "theta": _num(outcome.theta),
        "mean_control": _num(adjusted.control.value),
        "mean_treatment": _num(adjusted.treatment.value),
        "diff": _num(adjusted.diff),
        "diff_ci": _pair(adjusted.diff_ci),
        "lift": _num(adjusted.lift),
        "lift_ci": _pair(adjusted.lift_ci),
        "p_value": _num(adjusted.p_value),
        "method": adjusted.method,
        "reason": adjusted.note,
    }


def build_results(
    *,
    experiment: Experiment,
    run_id: str,
    as_of: dt.date,
    generated_at: dt.datetime,
    cleaning: Cleaning,
    quarantined_rows: int,
    validation: dict[str, Any],
    srm: SrmResult,
    comparisons: Sequence[Comparison],
    descriptions: Sequence[Description],
    decision: Decision,
    balance: BalanceResult | None = None,
    segments: Sequence[SegmentSlice] = (),
    heterogeneity: Sequence[Heterogeneity] = (),
    pooled_ai: Sequence[Comparison] = (),
    days_elapsed: int = 1,
    over_time: Sequence[DayPoint] = (),
    exposure_trends: Sequence[ExposureTrend] = (),
    descriptives: DescriptiveCounts | None = None,
) -> dict[str, Any]:
    planned = experiment.statistics.planned_mde
    primary = experiment.metrics.primary
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment_id": experiment.id,
        "run_id": run_id,
        "analysis_date": as_of.isoformat(),
        "generated_at": generated_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "experiment": {
            "name": experiment.name,
            "hypothesis": experiment.hypothesis,
            "owner": experiment.owner,
            "status": experiment.status,
            "start": experiment.start.isoformat(),
            "end": experiment.end.isoformat() if experiment.end else None,
            "control": experiment.control,
            "variants": {k: v.model_dump() for k, v in experiment.variants.items()},
            "alpha": experiment.alpha,
            "source": experiment.source,
            "window_days": experiment.window_days,
            "metrics": experiment.metrics.model_dump(),
            "segments": list(experiment.segments),
        },
        "data": {
            "units": dict(cleaning.units),
            "events": cleaning.events,
            "duplicates_dropped": cleaning.duplicates_dropped,
            "crossovers_excluded": cleaning.crossovers_excluded,
            "quarantined_rows": quarantined_rows,
        },
        "validation": validation,
        "srm": {
            "p_value": _num(srm.p_value),
            "flagged": srm.flagged,
            "chi2": _num(srm.chi2),
            "expected": srm.expected,
            "observed": srm.observed,
            "note": srm.note,
        },
        "comparisons": [comparison_record(c, days_elapsed, planned) for c in comparisons],
        "pooled_ai": [comparison_record(c, days_elapsed, planned) for c in pooled_ai],
        "pre_exposure": None
        if balance is None
        else {
            "tested": balance.tested,
            "threshold": balance.threshold,
            "flagged": list(balance.flagged),
            "p_values_adjusted": {k: _num(v) for k, v in balance.adjusted.items()},
            "reason": balance.note,
        },
        "descriptive": [
            {
                "metric": d.metric.name,
                "label": d.metric.label,
                "variant": d.variant,
                "n": d.n,
                "value": _num(d.value),
            }
            for d in descriptions
        ],
        "segments": [_slice_record(s) for s in segments],
        "heterogeneity": [_heterogeneity_record(h) for h in heterogeneity],
        "over_time": _over_time_record(primary, over_time, comparisons),
        "exposure_trend": [_trend_record(t) for t in exposure_trends],
        "funnel": [
            {"variant": v, "steps": [{"step": s, "count": n} for s, n in steps]}
            for v, steps in (descriptives.funnel.items() if descriptives else [])
        ],
        "distributions": _distributions(descriptives),
        "decision": {"recommendation": decision.recommendation, "reasons": list(decision.reasons)},
    }


def to_json(results: dict[str, Any]) -> str:
    """Serialise; refuses NaN and infinities (they must be null with a reason)."""
    return json.dumps(results, indent=2, allow_nan=False) + "\n"
