"""The report's "Is it still helping?" section and banner, from ``results.decay``.

A holdout is read week after week; each trend is the change of the effect per
week of exposure, judged on its always-valid interval (:mod:`analysis.decay`).
"""

from __future__ import annotations

from typing import Any

from analysis.report.text import finite, fmt_count, fmt_lift, fmt_number, fmt_p, is_pair
from analysis.results.model import Results
from analysis.results.records import DecayTrendRecord

__all__ = ["decay_banner", "decay_context"]

_DASH = "\u2013"
_MINUS = "\u2212"


def _per_week(value: float | None) -> str:
    if value is None:
        return _DASH
    text = fmt_number(value)
    return text if text.startswith(_MINUS) else f"+{text}"


def _relative(t: DecayTrendRecord) -> str:
    """The slope as a share of the baseline's level: the lift's change per week."""
    if t.slope is None or not finite(t.baseline) or t.baseline == 0:
        return _DASH
    return fmt_lift(t.slope / abs(t.baseline))


def _what(t: DecayTrendRecord) -> str:
    return t.treatment if t.control is None else f"{t.treatment} vs {t.control}"


def _state(t: DecayTrendRecord) -> str:
    if t.decaying:
        return "fading"
    ci = t.slope_sequential_ci
    if not is_pair(ci):
        return "not measured"
    if ci[0] > 0 or ci[1] < 0:
        return "improving"
    return "steady so far"


def decay_context(results: Results) -> dict[str, Any] | None:
    """One row per trend; None when the run is not a holdout's."""
    decay = results.decay
    if decay is None:
        return None
    rows = []
    for t in decay.trends:
        ci = t.slope_sequential_ci
        rows.append(
            {
                "label": t.label or t.metric,
                "arms": _what(t),
                "units": fmt_count(t.units),
                "slope": _per_week(t.slope),
                "relative": _relative(t),
                "interval": f"[{_per_week(ci[0])}, {_per_week(ci[1])}]" if is_pair(ci) else _DASH,
                "p": fmt_p(t.p_value),
                "state": _state(t),
                "decaying": t.decaying,
                "note": t.note or "",
            }
        )
    return {"rows": rows, "level": decay.level, "alpha": decay.alpha, "decaying": decay.decaying}


def decay_banner(results: Results) -> dict[str, Any] | None:
    """The warning above the results when a trend is decaying; None otherwise."""
    decay = results.decay
    if decay is None or not decay.decaying:
        return None
    return {
        "level": "warning",
        "id": "decay",
        "title": "The effect is fading",
        "text": (
            "Week after week of exposure, the effect moves against the metric's goal, "
            "beyond what chance allows even though the holdout is read every week."
        ),
        "items": [
            f"{t.label or t.metric} ({_what(t)}): {_per_week(t.slope)} per week "
            f"({_relative(t)} of its level)"
            for t in decay.trends
            if t.decaying
        ],
        "link": {"href": "#decay", "text": "See whether it is still helping"},
    }
