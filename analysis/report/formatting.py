"""Formatting and palettes shared by the figures and the HTML pages.

Nothing here estimates anything: these helpers turn numbers that the analysis
already computed into text, and choose which of a comparison's computed
results to show (:func:`basis_view`).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeGuard

__all__ = [
    "ARM_DASHES",
    "ARM_PATTERNS",
    "ARM_SYMBOLS",
    "BASIS_TEXT",
    "CATEGORY_ORDER",
    "VERDICT_COLORS",
    "VERDICT_MARKS",
    "VERDICT_SYMBOLS",
    "arm_style",
    "arm_styles",
    "basis_view",
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
    "ordered_comparisons",
    "parse_date",
    "parse_datetime",
    "primary_metric",
    "why_inconclusive",
]

#: Categories in the order the report shows them (others follow, alphabetically).
CATEGORY_ORDER: Final[tuple[str, ...]] = ("outcome", "effort", "trust", "guardrail")

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
VERDICT_COLORS: Final[Mapping[str, str]] = {
    "better": "#0072B2",  # blue
    "worse": "#D55E00",  # vermillion
    "inconclusive": "#999999",  # grey
}
#: A second, redundant channel in figures: the verdict is readable without colour.
VERDICT_SYMBOLS: Final[Mapping[str, str]] = {
    "better": "circle",
    "worse": "x",
    "inconclusive": "diamond-open",
}
#: The same shapes as text, for tables and cells.
VERDICT_MARKS: Final[Mapping[str, str]] = {
    "better": "\u25cf",  # ● filled circle
    "worse": "\u2715",  # ✕ cross
    "inconclusive": "\u25c7",  # ◇ open diamond
}

#: Arm colours (Okabe-Ito, avoiding the verdict blue and vermillion), each with
#: a line dash, a marker symbol and a bar pattern so arms differ without colour.
_CONTROL_COLOR: Final = "#4D4D4D"
_TREATMENT_COLORS: Final[tuple[str, ...]] = ("#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000")
ARM_DASHES: Final[tuple[str, ...]] = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
ARM_SYMBOLS: Final[tuple[str, ...]] = ("circle", "square", "diamond", "triangle-up", "star", "x")
ARM_PATTERNS: Final[tuple[str, ...]] = ("", "/", "x", ".", "\\", "+")

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


def arm_styles(results: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """A colour, dash, symbol and pattern per arm, stable across the report's figures.

    Arms are taken in the experiment's order (the control first), then any
    other arm name found in the results.
    """
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    control = experiment.get("control")
    names: list[str] = []
    if isinstance(control, str):
        names.append(control)
    names += [str(v) for v in experiment.get("variants") or {}]
    names += [str(v) for v in (results.get("data") or {}).get("units") or {}]
    styles: dict[str, dict[str, str]] = {}
    treatment_index = 0
    for name in dict.fromkeys(names):
        if name == control:
            color, index = _CONTROL_COLOR, 0
        else:
            color = _TREATMENT_COLORS[treatment_index % len(_TREATMENT_COLORS)]
            treatment_index += 1
            index = treatment_index
        styles[name] = {
            "color": color,
            "dash": ARM_DASHES[index % len(ARM_DASHES)],
            "symbol": ARM_SYMBOLS[index % len(ARM_SYMBOLS)],
            "pattern": ARM_PATTERNS[index % len(ARM_PATTERNS)],
        }
    return styles


def arm_style(styles: Mapping[str, Mapping[str, str]], name: object) -> Mapping[str, str]:
    """The style of an arm, or a neutral one for a name the experiment does not list."""
    return styles.get(str(name)) or {
        "color": "#000000",
        "dash": "solid",
        "symbol": "circle-open",
        "pattern": "",
    }


def _category_rank(category: str) -> tuple[int, str]:
    if category in CATEGORY_ORDER:
        return (CATEGORY_ORDER.index(category), "")
    return (len(CATEGORY_ORDER), category)


def ordered_comparisons(
    comparisons: Sequence[Mapping[str, Any]],
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Comparisons grouped by category, in report order; results order kept inside a group."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for comparison in comparisons:
        groups.setdefault(str(comparison.get("category") or "other"), []).append(comparison)
    return sorted(groups.items(), key=lambda item: _category_rank(item[0]))


def basis_view(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers the verdict reads, picked from a comparison (nothing is computed).

    ``verdict_basis`` names the result that decided: ``fixed_horizon`` or
    ``sequential``, with ``_cuped`` when the CUPED-adjusted estimate was used.
    Returns ``lift`` (CUPED-adjusted when the basis is), ``ci`` (the interval
    of the verdict's own test, ``verdict_lift_ci``, when given; else the
    always-valid interval for a sequential basis, else the fixed-horizon one),
    ``ci_kind``, ``fixed_ci`` (fixed-horizon interval around ``lift``),
    ``sequential_ci``, ``cuped`` (whether the CUPED estimate is shown),
    ``p_value`` (the adjusted p-value of the basis when given) and ``raw_p_value``
    (the basis's p-value before the multiplicity adjustment).
    """
    basis = str(comparison.get("verdict_basis") or "fixed_horizon")
    cuped: Mapping[str, Any] = comparison.get("cuped") or {}
    sequential: Mapping[str, Any] = comparison.get("sequential") or {}
    use_cuped = (
        basis.endswith("_cuped") and bool(cuped.get("applied")) and finite(cuped.get("lift"))
    )
    lift = cuped.get("lift") if use_cuped else comparison.get("lift")
    fixed_ci = cuped.get("lift_ci") if use_cuped else comparison.get("lift_ci")
    sequential_ci = sequential.get("lift_ci")
    is_sequential = basis.startswith("sequential")
    verdict_ci = comparison.get("verdict_lift_ci")
    p_value = comparison.get("verdict_p_value_adjusted")
    if not finite(p_value):
        p_value = comparison.get("p_value_adjusted")
    if is_sequential:
        raw_p = sequential.get("p_value")
    else:
        raw_p = cuped.get("p_value") if use_cuped else comparison.get("p_value")
    return {
        "basis": basis,
        "lift": lift if finite(lift) else None,
        "ci": verdict_ci if is_pair(verdict_ci) else sequential_ci if is_sequential else fixed_ci,
        "ci_kind": "always-valid" if is_sequential else "fixed-horizon",
        "fixed_ci": fixed_ci if is_pair(fixed_ci) else None,
        "sequential_ci": sequential_ci if is_pair(sequential_ci) else None,
        "cuped": use_cuped,
        "p_value": p_value if finite(p_value) else None,
        "raw_p_value": raw_p if finite(raw_p) else None,
    }


BASIS_TEXT: Final[Mapping[str, str]] = {
    "fixed_horizon": "fixed-horizon test",
    "fixed_horizon_cuped": "fixed-horizon test on CUPED-adjusted values",
    "sequential": "always-valid (sequential) test",
    "sequential_cuped": "always-valid (sequential) test on CUPED-adjusted values",
}


def _excludes_zero(ci: object) -> bool:
    return is_pair(ci) and (float(ci[0]) > 0 or float(ci[1]) < 0)


def _alpha_text(alpha: float) -> str:
    return f"{alpha:.4g}"


def why_inconclusive(
    comparison: Mapping[str, Any], alpha: float = 0.05, family_size: int | None = None
) -> str | None:
    """Why an "inconclusive" verdict sits beside an interval that excludes 0, or None.

    The answer is a clause that follows "Why inconclusive:".

    Only for an inconclusive comparison whose shown interval (:func:`basis_view`)
    or fixed-horizon interval excludes 0; nothing is computed, the reasons are
    read from the numbers the results carry:

    - the multiplicity adjustment: the basis's p-value is below ``alpha`` but
      its adjusted p-value is not ("significant before adjusting for
      ``family_size`` comparisons");
    - the always-valid basis: the fixed-horizon interval excludes 0, but the
      always-valid interval the verdict reads does not.

    ``family_size`` is how many comparisons were adjusted together (Holm within
    the primary and within the secondary metrics); None when not known.
    """
    if comparison.get("verdict") != "inconclusive":
        return None
    view = basis_view(comparison)
    shown, fixed = view["ci"], view["fixed_ci"]
    if not (_excludes_zero(shown) or _excludes_zero(fixed)):
        return None
    raw, adjusted = view["raw_p_value"], view["p_value"]
    level = _alpha_text(alpha)
    if raw is not None and adjusted is not None and raw < alpha <= adjusted:
        many = (
            f"{family_size} comparisons"
            if family_size is not None and family_size > 1
            else "multiple comparisons"
        )
        return (
            f"significant before adjusting for {many} ({fmt_p_eq(raw)}), not after "
            f"(adjusted {fmt_p_eq(adjusted)}; alpha {level})"
        )
    sequential = view["basis"].startswith("sequential")
    shown_includes = is_pair(shown) or (raw is not None and raw >= alpha)
    if sequential and _excludes_zero(fixed) and not _excludes_zero(shown) and shown_includes:
        valid = f" ({fmt_ci(shown)})" if is_pair(shown) else ""
        return (
            f"the fixed-horizon interval {fmt_ci(fixed)} excludes 0, but the always-valid "
            f"interval, which allows nightly looks, still includes 0{valid}"
        )
    basis = BASIS_TEXT.get(view["basis"], view["basis"])
    if raw is not None and raw >= alpha:
        return (
            f"an interval excludes 0, but the verdict reads the {basis}, which gives "
            f"{fmt_p_eq(raw)} before any adjustment (alpha {level})"
        )
    return (
        f"an interval excludes 0, but the verdict reads the {basis}: adjusted "
        f"{fmt_p_eq(adjusted)} (alpha {level})"
    )


def primary_metric(results: Mapping[str, Any]) -> str | None:
    """The primary metric named in the experiment, else the first comparison's metric."""
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    metrics = experiment.get("metrics")
    for candidate in (
        results.get("primary_metric"),
        experiment.get("primary_metric"),
        metrics.get("primary") if isinstance(metrics, Mapping) else None,
    ):
        if isinstance(candidate, str):
            return candidate
    for comparison in results.get("comparisons") or []:
        if comparison.get("role") == "primary":
            return str(comparison.get("metric"))
    comparisons = results.get("comparisons") or []
    return str(comparisons[0].get("metric")) if comparisons else None
