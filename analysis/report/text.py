"""Numbers, dates and strings as the report writes them.

Nothing here estimates anything: these helpers turn numbers that the analysis
already computed into text (a dash for a number that is absent or undefined),
and escape data strings for Plotly's labels.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Sequence
from typing import Final, TypeGuard

__all__ = [
    "esc",
    "finite",
    "fmt_chance",
    "fmt_ci",
    "fmt_count",
    "fmt_date_time",
    "fmt_days",
    "fmt_lift",
    "fmt_number",
    "fmt_p",
    "fmt_p_eq",
    "fmt_pct",
    "fmt_share",
    "fmt_value",
    "is_pair",
    "parse_date",
    "parse_datetime",
]

_DASH: Final = "\u2013"  # en dash: "no number"
_MINUS: Final = "\u2212"  # typographic minus


def esc(value: object) -> str:
    """HTML-escape a data string for use inside a Plotly label or hover text.

    ``&``, ``<`` and ``>`` are escaped, so no tag of Plotly's pseudo-HTML can form;
    quotes stay as they are (Plotly would show ``&quot;`` literally).
    """
    return html.escape(str(value), quote=False)


def finite(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real, finite number (not a bool, not None, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_pair(value: object) -> TypeGuard[Sequence[float]]:
    """Whether ``value`` is an interval ``[lo, hi]`` of finite numbers."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(finite(v) for v in value)
    )


def _signed_pct(fraction: float, digits: int = 1) -> str:
    text = f"{fraction * 100:+.{digits}f}%"
    return text.replace("-", _MINUS)


def fmt_lift(lift: object) -> str:
    """A relative lift (a fraction, 0.05) as a signed percentage ("+5.0%")."""
    return _signed_pct(float(lift)) if finite(lift) else _DASH


def fmt_ci(ci: object) -> str:
    """An interval ``[lo, hi]`` of fractions as ``[-1.2%, +3.4%]``; a dash when absent."""
    if is_pair(ci):
        lo, hi = ci
        return f"[{_signed_pct(float(lo))}, {_signed_pct(float(hi))}]"
    return _DASH


def fmt_pct(fraction: object, digits: int = 1) -> str:
    """An unsigned share or size as a percentage (0.0074 -> "0.7%")."""
    if not finite(fraction):
        return _DASH
    return f"{float(fraction) * 100:.{digits}f}%".replace("-", _MINUS)


def fmt_p(p: object) -> str:
    """A p-value to three decimals, ``<0.001`` below that; a dash when absent."""
    if not finite(p):
        return _DASH
    value = float(p)
    if value < 0.001:
        return "<0.001"
    return f"{value:.3f}"


def fmt_p_eq(p: object) -> str:
    """A p-value in a sentence: ``p = 0.030``, ``p < 0.001``, ``p = –``."""
    text = fmt_p(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_value(value: object, kind: object = None) -> str:
    """A per-arm metric value: proportions as percentages, other kinds to 4 significant digits."""
    if not finite(value):
        return _DASH
    number = float(value)
    if kind == "proportion":
        return f"{number * 100:.1f}%"
    if number != 0 and abs(number) >= 1e5:
        return f"{number:,.0f}"
    return f"{number:.4g}".replace("-", _MINUS)


def fmt_number(value: object, digits: int = 3) -> str:
    """Any statistic (Q, I², a slope) to ``digits`` significant digits; a dash when absent."""
    if not finite(value):
        return _DASH
    return f"{float(value):.{digits}g}".replace("-", _MINUS)


def fmt_count(value: object) -> str:
    """An integer count with thousands separators; a dash when absent."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if finite(value):
        return f"{float(value):,.0f}"
    return _DASH


def fmt_share(value: object) -> str:
    """A traffic share (0.5) as a percentage ("50%")."""
    return f"{float(value) * 100:.4g}%" if finite(value) else _DASH


def fmt_chance(value: object) -> str:
    """A probability as a percentage that never claims certainty (">99.9%")."""
    if not finite(value):
        return _DASH
    number = float(value)
    if number > 0.999:
        return ">99.9%"
    if number < 0.001:
        return "<0.1%"
    return f"{number * 100:.1f}%"


def fmt_days(value: object) -> str:
    """Days to reach the planned MDE: "reached", "about 14 days", or a dash."""
    if not finite(value):
        return _DASH
    number = float(value)
    if number <= 0:
        return "reached"
    if number < 1:
        return "under a day"
    return f"about {math.ceil(number):,} day{'s' if math.ceil(number) != 1 else ''}"


def parse_date(value: object) -> dt.date | None:
    """An ISO date (``YYYY-MM-DD``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def parse_datetime(value: object) -> dt.datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive input is read as UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def fmt_date_time(value: object) -> str:
    """An ISO timestamp as ``2026-11-26 11:33 UTC``; the text itself if it does not parse."""
    parsed = parse_datetime(value)
    if parsed is None:
        return str(value) if value else _DASH
    return parsed.strftime("%Y-%m-%d %H:%M UTC")
