"""Plotly figures drawn from a results dict (``results.json``, schema_version 1).

Figures only *draw* numbers that the analysis already computed: relative lifts
and their confidence intervals, unit counts.  Nothing here estimates anything.

Plotly renders a subset of HTML inside labels, titles and hover text, so every
string that comes from data or config is passed through :func:`esc` before it
reaches a figure.

The small formatting helpers (``fmt_*``) live here, not in ``render``, because
both the figures and the HTML templates use them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "CATEGORY_ORDER",
    "VERDICT_COLORS",
    "VERDICT_SYMBOLS",
    "esc",
    "fmt_ci",
    "fmt_count",
    "fmt_lift",
    "fmt_p",
    "fmt_p_eq",
    "fmt_share",
    "fmt_value",
    "forest_plot",
    "lift_is_plottable",
    "ordered_comparisons",
    "units_bar",
]

#: Categories in the order the report shows them (others follow, alphabetically).
CATEGORY_ORDER: Final[tuple[str, ...]] = ("outcome", "effort", "trust", "guardrail")

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
VERDICT_COLORS: Final[Mapping[str, str]] = {
    "better": "#0072B2",  # blue
    "worse": "#D55E00",  # vermillion
    "inconclusive": "#999999",  # grey
}
#: A second, redundant channel: the verdict is readable without colour.
VERDICT_SYMBOLS: Final[Mapping[str, str]] = {
    "better": "circle",
    "worse": "x",
    "inconclusive": "diamond-open",
}
_VERDICT_ORDER: Final[tuple[str, ...]] = ("better", "worse", "inconclusive")
_UNKNOWN_VERDICT_COLOR: Final = "#000000"
_ARM_COLORS: Final[Mapping[bool, str]] = {False: "#56B4E9", True: "#009E73"}
_FONT: Final = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_ROW_PX: Final = 46  # vertical room per plotted comparison
_DASH: Final = "\u2013"  # en dash
_MINUS: Final = "\u2212"  # typographic minus


# --------------------------------------------------------------------------- formatting


def esc(value: object) -> str:
    """HTML-escape a data string for use inside a Plotly label or hover text."""
    return html.escape(str(value), quote=True)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _signed_pct(fraction: float, digits: int = 1) -> str:
    text = f"{fraction * 100:+.{digits}f}%"
    return text.replace("-", _MINUS)


def fmt_lift(lift: object) -> str:
    """A relative lift (a fraction, 0.05) as a signed percentage ("+5.0%")."""
    return _signed_pct(float(lift)) if _finite(lift) else _DASH  # type: ignore[arg-type]


def fmt_ci(ci: object) -> str:
    """An interval ``[lo, hi]`` of fractions as ``[-1.2%, +3.4%]``; a dash when absent."""
    if isinstance(ci, Sequence) and len(ci) == 2 and all(_finite(v) for v in ci):
        return f"[{_signed_pct(float(ci[0]))}, {_signed_pct(float(ci[1]))}]"
    return _DASH


def fmt_p(p: object) -> str:
    """A p-value to three decimals, ``<0.001`` below that; a dash when absent."""
    if not _finite(p):
        return _DASH
    value = float(p)  # type: ignore[arg-type]
    if value < 0.001:
        return "<0.001"
    return f"{value:.3f}"


def fmt_p_eq(p: object) -> str:
    """A p-value in a sentence: ``p = 0.030``, ``p < 0.001``, ``p = –``."""
    text = fmt_p(p)
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def fmt_value(value: object, kind: object = None) -> str:
    """A per-arm metric value: proportions as percentages, other kinds to 4 significant digits."""
    if not _finite(value):
        return _DASH
    number = float(value)  # type: ignore[arg-type]
    if kind == "proportion":
        return f"{number * 100:.1f}%"
    if number != 0 and abs(number) >= 1e5:
        return f"{number:,.0f}"
    return f"{number:.4g}".replace("-", _MINUS)


def fmt_count(value: object) -> str:
    """An integer count with thousands separators; a dash when absent."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if _finite(value):
        return f"{float(value):,.0f}"  # type: ignore[arg-type]
    return _DASH


def fmt_share(value: object) -> str:
    """A traffic share (0.5) as a percentage ("50%")."""
    return f"{float(value) * 100:.4g}%" if _finite(value) else _DASH  # type: ignore[arg-type]


# --------------------------------------------------------------------------- selection


def lift_is_plottable(comparison: Mapping[str, Any]) -> bool:
    """Whether the comparison has a finite relative lift to draw."""
    return _finite(comparison.get("lift"))


def _category_rank(category: str) -> tuple[int, str]:
    if category in CATEGORY_ORDER:
        return (CATEGORY_ORDER.index(category), "")
    return (len(CATEGORY_ORDER), category)


def ordered_comparisons(
    comparisons: Iterable[Mapping[str, Any]],
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Comparisons grouped by category, in report order; results order kept inside a group."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for comparison in comparisons:
        groups.setdefault(str(comparison.get("category") or "other"), []).append(comparison)
    return sorted(groups.items(), key=lambda item: _category_rank(item[0]))


def _row_label(comparison: Mapping[str, Any]) -> str:
    label = esc(comparison.get("label") or comparison.get("metric") or "?")
    arms = f"{esc(comparison.get('treatment'))} vs {esc(comparison.get('control'))}"
    return f"{label}<br><span style='font-size:11px'>{arms}</span>"


def _hover(comparison: Mapping[str, Any]) -> str:
    lines = [
        f"<b>{esc(comparison.get('label') or comparison.get('metric'))}</b>",
        f"{esc(comparison.get('treatment'))} vs {esc(comparison.get('control'))}",
        f"lift {fmt_lift(comparison.get('lift'))} {fmt_ci(comparison.get('lift_ci'))}",
        f"n = {fmt_count(comparison.get('n_treatment'))} vs "
        f"{fmt_count(comparison.get('n_control'))}",
        f"{fmt_p_eq(comparison.get('p_value'))}, "
        f"adjusted {fmt_p_eq(comparison.get('p_value_adjusted'))}",
        f"method: {esc(comparison.get('method') or _DASH)}",
        f"verdict: {esc(comparison.get('verdict'))} (goal: {esc(comparison.get('goal') or _DASH)})",
    ]
    return "<br>".join(lines)


def _error_arrays(
    comparisons: Sequence[Mapping[str, Any]],
) -> tuple[list[float], list[float]]:
    """Distances from the lift to each CI end, in percentage points (0 when no CI)."""
    plus: list[float] = []
    minus: list[float] = []
    for comparison in comparisons:
        lift = float(comparison["lift"])
        ci = comparison.get("lift_ci")
        if isinstance(ci, Sequence) and len(ci) == 2 and all(_finite(v) for v in ci):
            plus.append(max(float(ci[1]) - lift, 0.0) * 100)
            minus.append(max(lift - float(ci[0]), 0.0) * 100)
        else:
            plus.append(0.0)
            minus.append(0.0)
    return plus, minus


def _base_layout(fig: go.Figure, height: int) -> None:
    fig.update_layout(
        template="simple_white",
        height=height,
        autosize=True,
        font={"family": _FONT, "size": 13},
        margin={"l": 10, "r": 20, "t": 60, "b": 50},
        hoverlabel={"align": "left"},
    )


# --------------------------------------------------------------------------- figures


def forest_plot(results: Mapping[str, Any]) -> go.Figure:
    """Relative lift (%) with its confidence interval, one row per comparison.

    One subplot per category (outcome, effort, trust, guardrail, then any
    other), a dashed line at 0, marker colour *and* symbol by verdict, hover
    with n, p and method.  Comparisons without a finite lift are not drawn;
    they are listed in a note under the plot.
    """
    comparisons: list[Mapping[str, Any]] = list(results.get("comparisons") or [])
    plotted = [c for c in comparisons if lift_is_plottable(c)]
    skipped = [c for c in comparisons if not lift_is_plottable(c)]
    groups = ordered_comparisons(plotted)

    if not groups:
        fig = go.Figure()
        _base_layout(fig, 160)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(
            text="No comparison has a lift to plot.",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
        _add_skipped_note(fig, skipped)
        return fig

    sizes = [len(items) for _, items in groups]
    fig = make_subplots(
        rows=len(groups),
        cols=1,
        shared_xaxes=True,
        row_heights=[n / sum(sizes) for n in sizes],
        vertical_spacing=min(0.25 / len(groups), 60 / (sum(sizes) * _ROW_PX + 60)),
        subplot_titles=[category.capitalize() for category, _ in groups],
    )
    legend_shown: set[str] = set()
    for row, (_, items) in enumerate(groups, start=1):
        labels = [_row_label(c) for c in items]
        for verdict in (*_VERDICT_ORDER, None):
            chosen = [
                c
                for c in items
                if (c.get("verdict") == verdict)
                or (verdict is None and c.get("verdict") not in _VERDICT_ORDER)
            ]
            if not chosen:
                continue
            name = verdict or "other"
            plus, minus = _error_arrays(chosen)
            color = VERDICT_COLORS.get(name, _UNKNOWN_VERDICT_COLOR)
            fig.add_trace(
                go.Scatter(
                    x=[float(c["lift"]) * 100 for c in chosen],
                    y=[_row_label(c) for c in chosen],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in legend_shown,
                    marker={
                        "color": color,
                        "symbol": VERDICT_SYMBOLS.get(name, "square"),
                        "size": 11,
                        "line": {"width": 2, "color": color},
                    },
                    error_x={
                        "type": "data",
                        "symmetric": False,
                        "array": plus,
                        "arrayminus": minus,
                        "color": color,
                        "thickness": 2,
                        "width": 5,
                    },
                    text=[_hover(c) for c in chosen],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            legend_shown.add(name)
        fig.update_yaxes(
            type="category",
            categoryorder="array",
            categoryarray=labels,
            autorange="reversed",
            automargin=True,
            showgrid=True,
            gridcolor="#eeeeee",
            row=row,
            col=1,
        )
    fig.add_vline(x=0, line_dash="dash", line_color="#333333", line_width=1)
    fig.update_xaxes(ticksuffix="%", zeroline=False, showgrid=True, gridcolor="#eeeeee")
    fig.update_xaxes(
        title_text="Relative lift vs control (%), with confidence interval", row=len(groups)
    )
    # Category headings: left-aligned, bold.
    for annotation in fig.layout.annotations:
        annotation.update(x=0, xanchor="left", font={"size": 14})
        annotation.update(text=f"<b>{annotation.text}</b>")
    height = 110 + sum(sizes) * _ROW_PX + 40 * len(groups)
    _base_layout(fig, height)
    fig.update_layout(
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": 0.995,
            "x": 1.0,
            "xanchor": "right",
            "yref": "container",
            "title": {"text": "verdict: "},
        },
        margin={"t": 70},
    )
    _add_skipped_note(fig, skipped)
    return fig


def _add_skipped_note(fig: go.Figure, skipped: Sequence[Mapping[str, Any]]) -> None:
    if not skipped:
        return
    names = "<br>".join(
        f"{esc(c.get('label') or c.get('metric'))} ({esc(c.get('treatment'))} vs "
        f"{esc(c.get('control'))})"
        for c in skipped
    )
    fig.add_annotation(
        text=f"Not plotted (no lift estimate):<br>{names}",
        showarrow=False,
        align="left",
        xref="paper",
        yref="paper",
        x=0,
        xanchor="left",
        y=0,
        yanchor="top",
        yshift=-55,
        font={"size": 11, "color": "#555555"},
    )
    extra = 40 + 16 * len(skipped)
    fig.update_layout(
        height=int(fig.layout.height or 0) + extra,
        margin={"b": 50 + extra},
    )


def units_bar(results: Mapping[str, Any]) -> go.Figure:
    """Units per arm, as counted by the analysis, with each arm's configured share in the hover."""
    units: Mapping[str, Any] = (results.get("data") or {}).get("units") or {}
    variants: Mapping[str, Any] = (results.get("experiment") or {}).get("variants") or {}
    expected: Mapping[str, Any] = (results.get("srm") or {}).get("expected") or {}
    arms = [*[v for v in variants if v in units], *[v for v in units if v not in variants]]
    is_ai = [bool((variants.get(arm) or {}).get("ai")) for arm in arms]
    fig = go.Figure(
        go.Bar(
            x=[esc(arm) for arm in arms],
            y=[units[arm] for arm in arms],
            marker={
                "color": [_ARM_COLORS[ai] for ai in is_ai],
                "pattern": {"shape": ["/" if ai else "" for ai in is_ai]},
            },
            text=[fmt_count(units[arm]) for arm in arms],
            textposition="auto",
            customdata=[
                f"{esc(arm)}{' (AI)' if ai else ''}<br>units: {fmt_count(units[arm])}<br>"
                f"expected share: {fmt_share(expected.get(arm))}"
                for arm, ai in zip(arms, is_ai, strict=True)
            ],
            hovertemplate="%{customdata}<extra></extra>",
            showlegend=False,
        )
    )
    _base_layout(fig, 280)
    fig.update_layout(margin={"t": 20})
    fig.update_yaxes(title_text="units", rangemode="tozero")
    fig.update_xaxes(type="category", title_text="arm (hatched: AI)")
    return fig
