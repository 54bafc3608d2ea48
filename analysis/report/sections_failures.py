"""The report's "Where it fails" section, from ``results.failure_patterns``.

Labels come from the data: they reach the page only through jinja's autoescape.
"""

from __future__ import annotations

from typing import Any

from analysis.report.text import fmt_count, fmt_p, fmt_pct, is_pair
from analysis.results.model import Results

__all__ = ["failure_context", "share_text", "shift_text"]

_DASH = "\u2013"


def share_text(share: float | None, ci: Any) -> str:
    """A share with its interval, as percentages."""
    if share is None:
        return _DASH
    text = fmt_pct(share)
    return f"{text} [{fmt_pct(ci[0])}, {fmt_pct(ci[1])}]" if is_pair(ci) else text


def _points(value: float) -> str:
    return f"{value * 100:+.1f}".replace("-", "\u2212")


def shift_text(diff: float | None, ci: Any) -> str:
    """A difference of shares with its interval, in percentage points."""
    if diff is None:
        return _DASH
    text = f"{_points(diff)} pts"
    return f"{text} [{_points(ci[0])}, {_points(ci[1])}]" if is_pair(ci) else text


def failure_context(results: Results) -> dict[str, Any] | None:
    """Arms, one row per label (its share in each AI arm), and the moves, the largest
    first; None without the section."""
    found = results.failure_patterns
    if found is None:
        return None
    alpha = results.experiment.alpha if results.experiment.alpha is not None else 0.05
    arms = list(dict.fromkeys(s.arm for s in found.shares))
    by_label: dict[tuple[str, str], dict[str, str]] = {}
    units: dict[str, int] = {}
    for s in found.shares:
        by_label.setdefault((s.event, s.label), {})[s.arm] = share_text(s.share, s.ci)
        units[s.arm] = max(units.get(s.arm, 0), s.units)
    rows = [
        {"event": event, "label": label, "shares": [cells.get(a, _DASH) for a in arms]}
        for (event, label), cells in by_label.items()
    ]
    moves = [
        {
            "event": m.event,
            "label": m.label,
            "arms": f"{m.treatment} vs {m.control}",
            "diff": shift_text(m.diff, m.diff_ci),
            "p": fmt_p(m.p_value_adjusted),
            "moved": m.p_value_adjusted is not None and m.p_value_adjusted < alpha,
            "fewer": m.diff is not None and m.diff < 0,
        }
        for m in found.moves
    ]
    return {
        "arms": [{"name": a, "units": fmt_count(units.get(a, 0))} for a in arms],
        "rows": rows,
        "moves": moves,
        "none_because": found.reason or "none was found",
    }
