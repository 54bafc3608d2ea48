"""The report's "Drop-off points" section, from ``results.task_flow``."""

from __future__ import annotations

from typing import Any

from analysis.report.sections_failures import share_text, shift_text
from analysis.report.text import fmt_count, fmt_p
from analysis.results.model import Results

__all__ = ["flow_context"]

_DASH = "\u2013"


def flow_context(results: Results) -> dict[str, Any] | None:
    """Steps (rows) by arm (columns), the comparisons, and per treatment where it
    diverges most from the control; None without the section."""
    flow = results.task_flow
    if flow is None:
        return None
    alpha = results.experiment.alpha if results.experiment.alpha is not None else 0.05
    found = {s.arm for s in flow.shares}
    # the experiment's order (the control first), then any arm it does not list
    arms = [a for a in results.experiment.variants if a in found]
    arms += sorted(found - set(arms))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    units: dict[str, int] = {}
    for s in flow.shares:
        cells.setdefault((s.step, s.label), {})[s.arm] = share_text(s.share, s.ci)
        units[s.arm] = max(units.get(s.arm, 0), s.units)
    rows = [
        {"step": step, "label": label, "shares": [by_arm.get(a, _DASH) for a in arms]}
        for (step, label), by_arm in cells.items()
    ]
    compared = [
        {
            "label": c.label,
            "arms": f"{c.treatment} vs {c.control}",
            "diff": shift_text(c.diff, c.diff_ci),
            "p": fmt_p(c.p_value_adjusted),
            "differs": c.p_value_adjusted is not None and c.p_value_adjusted < alpha,
        }
        for c in flow.comparisons
    ]
    diverges = [
        {
            "arms": f"{d.treatment} vs {d.control}",
            "label": d.label,
            "diff": shift_text(d.diff, d.diff_ci) if d.step is not None else None,
        }
        for d in flow.diverges
    ]
    return {
        "arms": [{"name": a, "units": fmt_count(units.get(a, 0))} for a in arms],
        "rows": rows,
        "comparisons": compared,
        "diverges": diverges,
    }
