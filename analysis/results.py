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
from collections.abc import Sequence
from typing import Any

from analysis.comparisons import Comparison, Description
from analysis.config import Experiment
from analysis.decision import Decision
from analysis.metrics import Cleaning
from analysis.stats.srm import SrmResult

SCHEMA_VERSION = 1

CUPED_PENDING = "CUPED variance reduction is not computed by this version of Proof"
SEQUENTIAL_PENDING = "sequential inference is not computed by this version of Proof"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _pair(x: tuple[float, float] | None) -> list[float] | None:
    if x is None or not all(math.isfinite(v) for v in x):
        return None
    return [float(x[0]), float(x[1])]


def comparison_record(c: Comparison) -> dict[str, Any]:
    r = c.result
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
        "cuped": {"applied": False, "variance_reduction": None, "reason": CUPED_PENDING},
        "sequential": {"lift_ci": None, "p_value": None, "reason": SEQUENTIAL_PENDING},
        "verdict": c.verdict,
        "verdict_basis": "fixed_horizon",
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
) -> dict[str, Any]:
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
        "comparisons": [comparison_record(c) for c in comparisons],
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
        "segments": [],
        "decision": {"recommendation": decision.recommendation, "reasons": list(decision.reasons)},
    }


def to_json(results: dict[str, Any]) -> str:
    """Serialise; refuses NaN and infinities (they must be null with a reason)."""
    return json.dumps(results, indent=2, allow_nan=False) + "\n"
