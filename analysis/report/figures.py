"""Plotly figures of the comparisons: forest plot, units per arm, power.

Figures only *draw* numbers that the analysis already computed: relative lifts
and their intervals, unit counts, minimum detectable effects.  Nothing here
estimates anything.

Plotly renders a subset of HTML inside labels, titles and hover text, so every
string that comes from data or config is passed through :func:`esc` before it
reaches a figure.  The other figure modules (:mod:`.figures_time`,
:mod:`.figures_ai`, :mod:`.figures_segments`) follow the same rules and use
:func:`base_layout`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report.formatting import (
    CATEGORY_ORDER,
    VERDICT_COLORS,
    VERDICT_SYMBOLS,
    basis_view,
    esc,
    finite,
    fmt_ci,
    fmt_count,
    fmt_days,
    fmt_lift,
    fmt_p,
    fmt_p_eq,
    fmt_pct,
    fmt_share,
    fmt_value,
    ordered_comparisons,
)

__all__ = [
    "CATEGORY_ORDER",
    "VERDICT_COLORS",
    "VERDICT_SYMBOLS",
    "bar_marker",
    "base_layout",
    "comparison_label",
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
    "note_figure",
    "ordered_comparisons",
    "power_chart",
    "top_legend",
    "underpowered",
    "units_bar",
]

_VERDICT_ORDER: Final[tuple[str, ...]] = ("better", "worse", "inconclusive")
_UNKNOWN_VERDICT_COLOR: Final = "#000000"
_ARM_COLORS: Final[Mapping[bool, str]] = {False: "#56B4E9", True: "#009E73"}
_FONT: Final = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_ROW_PX: Final = 46  # vertical room per plotted comparison
_DASH: Final = "\u2013"
_GRID: Final = "#eeeeee"
_POWERED: Final = "#0072B2"
_UNDERPOWERED: Final = "#E69F00"

#: A small template (Plotly's named templates add ~9 kB of JSON to every figure).
_AXIS: Final[Mapping[str, Any]] = {
    "showline": True,
    "linecolor": "#444444",
    "ticks": "outside",
    "tickcolor": "#444444",
    "zeroline": False,
    "showgrid": True,
    "gridcolor": _GRID,
    "automargin": True,
}
_TEMPLATE: Final[Mapping[str, Any]] = {
    "layout": {
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "xaxis": dict(_AXIS),
        "yaxis": dict(_AXIS),
        "colorway": ["#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#0072B2", "#D55E00"],
    }
}


@functools.cache
def _template() -> go.layout.Template:
    return go.layout.Template(_TEMPLATE)


def base_layout(fig: go.Figure, height: int) -> None:
    """Size, font, margins and the small shared template."""
    fig.update_layout(
        template=_template(),
        height=height,
        autosize=True,
        font={"family": _FONT, "size": 13, "color": "#1b1b1b"},
        margin={"l": 10, "r": 20, "t": 60, "b": 50},
        hoverlabel={"align": "left"},
    )


def _luminance(color: str) -> float:
    """WCAG relative luminance of a ``#rrggbb`` colour."""
    channels = [int(color.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def bar_marker(color: str, shape: str) -> dict[str, Any]:
    """A bar's marker: filled with ``color`` and, for a ``shape``, hatched on top of it.

    The hatch is drawn over the colour (``fillmode="overlay"`` with the colour
    as ``bgcolor``) in black or white, whichever stands out more, so a hatched
    bar is as solid as a plain one and its pattern still tells the arms apart
    without colour.  (With Plotly's default ``replace``, the lines *are* the
    fill: white lines on no background draw nothing.)
    """
    if not shape:
        return {"color": color, "pattern": {"shape": ""}}
    light = _luminance(color)
    lines = "#000000" if (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) else "#ffffff"
    return {
        "color": color,
        "pattern": {
            "shape": shape,
            "fillmode": "overlay",
            "bgcolor": color,
            "fgcolor": lines,
            "fgopacity": 0.6,
            "solidity": 0.3,
        },
    }


def top_legend(title: str | None = None) -> dict[str, Any]:
    """A horizontal legend above the plot, on the left (the mode bar sits on the right)."""
    legend: dict[str, Any] = {
        "orientation": "h",
        "yanchor": "top",
        "y": 0.995,
        "yref": "container",
        "x": 0.0,
        "xanchor": "left",
    }
    if title:
        legend["title"] = {"text": title}
    return legend


def note_figure(text: str, height: int = 160) -> go.Figure:
    """An empty figure that says why there is nothing to draw."""
    fig = go.Figure()
    base_layout(fig, height)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


# --------------------------------------------------------------------------- forest plot


def lift_is_plottable(comparison: Mapping[str, Any]) -> bool:
    """Whether the comparison has a finite lift (of its verdict basis) to draw."""
    return basis_view(comparison)["lift"] is not None


def comparison_label(comparison: Mapping[str, Any], small: bool = True) -> str:
    """``Label<br>treatment vs control``, escaped, for a figure axis."""
    label = esc(comparison.get("label") or comparison.get("metric") or "?")
    arms = f"{esc(comparison.get('treatment'))} vs {esc(comparison.get('control'))}"
    if not small:
        return f"{label} ({arms})"
    return f"{label}<br><span style='font-size:11px'>{arms}</span>"


def _hover(comparison: Mapping[str, Any]) -> str:
    view = basis_view(comparison)
    cuped = " (CUPED-adjusted)" if view["cuped"] else ""
    lines = [
        f"<b>{esc(comparison.get('label') or comparison.get('metric'))}</b>",
        f"{esc(comparison.get('treatment'))} vs {esc(comparison.get('control'))}",
        f"lift {fmt_lift(view['lift'])}{cuped}",
        f"fixed-horizon CI {fmt_ci(view['fixed_ci'])}",
        f"always-valid CI {fmt_ci(view['sequential_ci'])}",
        f"n = {fmt_count(comparison.get('n_treatment'))} vs "
        f"{fmt_count(comparison.get('n_control'))}",
        f"{fmt_p_eq(comparison.get('p_value'))}, "
        f"adjusted {fmt_p_eq(comparison.get('p_value_adjusted'))}",
        f"method: {esc(comparison.get('method') or _DASH)}",
        f"verdict: {esc(comparison.get('verdict'))} (goal: {esc(comparison.get('goal') or _DASH)})",
    ]
    return "<br>".join(lines)


def _errors(comparisons: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Distances from the lift to each end of an interval, in percentage points."""
    plus: list[float] = []
    minus: list[float] = []
    for comparison in comparisons:
        view = basis_view(comparison)
        lift = float(view["lift"])
        ci = view[key]
        if ci is not None:
            plus.append(max(float(ci[1]) - lift, 0.0) * 100)
            minus.append(max(lift - float(ci[0]), 0.0) * 100)
        else:
            plus.append(0.0)
            minus.append(0.0)
    return plus, minus


def _verdict_groups(
    items: Sequence[Mapping[str, Any]],
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    groups: list[tuple[str, list[Mapping[str, Any]]]] = []
    for verdict in (*_VERDICT_ORDER, None):
        chosen = [
            c
            for c in items
            if (c.get("verdict") == verdict)
            or (verdict is None and c.get("verdict") not in _VERDICT_ORDER)
        ]
        if chosen:
            groups.append((verdict or "other", chosen))
    return groups


def forest_plot(results: Mapping[str, Any]) -> go.Figure:
    """Relative lift (%) with its fixed-horizon and always-valid intervals, one row each.

    One subplot per category (outcome, effort, trust, guardrail, then any
    other), a dashed line at 0.  The point and intervals are those of the
    verdict's basis (CUPED-adjusted where it applied): a thick bar for the
    fixed-horizon confidence interval, a thin capped line for the always-valid
    one.  Marker colour *and* symbol show the verdict; the hover has n, p and
    method.  Comparisons without a lift are listed in a note under the plot.
    """
    comparisons: list[Mapping[str, Any]] = list(results.get("comparisons") or [])
    plotted = [c for c in comparisons if lift_is_plottable(c)]
    skipped = [c for c in comparisons if not lift_is_plottable(c)]
    groups = ordered_comparisons(plotted)
    if not groups:
        fig = note_figure("No comparison has a lift to plot.")
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
        labels = [comparison_label(c) for c in items]
        for name, chosen in _verdict_groups(items):
            color = VERDICT_COLORS.get(name, _UNKNOWN_VERDICT_COLOR)
            x = [float(basis_view(c)["lift"]) * 100 for c in chosen]
            y = [comparison_label(c) for c in chosen]
            seq_plus, seq_minus = _errors(chosen, "sequential_ci")
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="markers",
                    name=f"{name}: always-valid CI",
                    legendgroup=name,
                    showlegend=False,
                    marker={"size": 1, "color": color, "opacity": 0},
                    error_x={
                        "type": "data",
                        "symmetric": False,
                        "array": seq_plus,
                        "arrayminus": seq_minus,
                        "color": color,
                        "thickness": 1.5,
                        "width": 7,
                    },
                    hoverinfo="skip",
                    meta="sequential",
                ),
                row=row,
                col=1,
            )
            plus, minus = _errors(chosen, "fixed_ci")
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in legend_shown,
                    marker={
                        "color": color,
                        "symbol": VERDICT_SYMBOLS.get(name, "square"),
                        "size": 12,
                        "line": {"width": 2, "color": color},
                    },
                    error_x={
                        "type": "data",
                        "symmetric": False,
                        "array": plus,
                        "arrayminus": minus,
                        "color": color,
                        "thickness": 5,
                        "width": 0,
                    },
                    text=[_hover(c) for c in chosen],
                    hovertemplate="%{text}<extra></extra>",
                    meta="fixed",
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
            row=row,
            col=1,
        )
    fig.add_vline(x=0, line_dash="dash", line_color="#333333", line_width=1)
    fig.update_xaxes(ticksuffix="%")
    fig.update_xaxes(title_text="Relative lift vs control (%)", row=len(groups))
    for annotation in fig.layout.annotations:  # category headings: left-aligned, bold
        annotation.update(x=0, xanchor="left", font={"size": 14})
        annotation.update(text=f"<b>{annotation.text}</b>")
    base_layout(fig, 110 + sum(sizes) * _ROW_PX + 40 * len(groups))
    fig.update_layout(
        legend=top_legend("verdict: "),
        margin={"t": 70},
    )
    _add_skipped_note(fig, skipped)
    return fig


def _add_skipped_note(fig: go.Figure, skipped: Sequence[Mapping[str, Any]]) -> None:
    if not skipped:
        return
    names = "<br>".join(comparison_label(c, small=False) for c in skipped)
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
    fig.update_layout(height=int(fig.layout.height or 0) + extra, margin={"b": 50 + extra})


# --------------------------------------------------------------------------- units, power


def units_bar(results: Mapping[str, Any]) -> go.Figure:
    """Units per arm, as counted by the analysis, with each arm's configured share in the hover.

    AI arms are green and hatched, the others sky blue and plain.
    """
    units: Mapping[str, Any] = (results.get("data") or {}).get("units") or {}
    variants: Mapping[str, Any] = (results.get("experiment") or {}).get("variants") or {}
    expected: Mapping[str, Any] = (results.get("srm") or {}).get("expected") or {}
    arms = [*[v for v in variants if v in units], *[v for v in units if v not in variants]]
    fig = go.Figure()
    for ai in (False, True):
        chosen = [arm for arm in arms if bool((variants.get(arm) or {}).get("ai")) is ai]
        if not chosen:
            continue
        fig.add_trace(
            go.Bar(
                x=[esc(arm) for arm in chosen],
                y=[units[arm] for arm in chosen],
                name="AI arm" if ai else "arm without AI",
                marker=bar_marker(_ARM_COLORS[ai], "/" if ai else ""),
                text=[fmt_count(units[arm]) for arm in chosen],
                textposition="outside",  # not over the hatch
                cliponaxis=False,
                customdata=[
                    f"{esc(arm)}{' (AI)' if ai else ''}<br>units: {fmt_count(units[arm])}<br>"
                    f"expected share: {fmt_share(expected.get(arm))}"
                    for arm in chosen
                ],
                hovertemplate="%{customdata}<extra></extra>",
                showlegend=False,
            )
        )
    base_layout(fig, 280)
    fig.update_layout(margin={"t": 20})
    fig.update_yaxes(title_text="units", rangemode="tozero")
    fig.update_xaxes(
        type="category",
        categoryorder="array",
        categoryarray=[esc(arm) for arm in arms],
        title_text="arm (hatched: AI)",
        showgrid=False,
    )
    return fig


def underpowered(comparison: Mapping[str, Any]) -> bool:
    """The test cannot yet detect the planned effect: ``mde_relative > planned_mde``."""
    power: Mapping[str, Any] = comparison.get("power") or {}
    mde, planned = power.get("mde_relative"), power.get("planned_mde")
    return finite(mde) and finite(planned) and float(mde) > float(planned)


def power_chart(results: Mapping[str, Any]) -> go.Figure | None:
    """Today's minimum detectable effect per comparison against the planned one.

    A bar per comparison (relative MDE, %), a tick at its planned MDE; bars
    that do not reach the plan are orange and hatched.  None when no
    comparison has a power result.
    """
    rows = [
        c
        for c in results.get("comparisons") or []
        if finite((c.get("power") or {}).get("mde_relative"))
    ]
    if not rows:
        return None
    labels = [comparison_label(c) for c in rows]
    short = [underpowered(c) for c in rows]
    mdes = [float(c["power"]["mde_relative"]) * 100 for c in rows]
    fig = go.Figure()
    for weak in (False, True):
        chosen = [i for i, s in enumerate(short) if s is weak]
        if not chosen:
            continue
        fig.add_trace(
            go.Bar(
                x=[mdes[i] for i in chosen],
                y=[labels[i] for i in chosen],
                orientation="h",
                name="short of the plan" if weak else "reaches the plan",
                marker=bar_marker(_UNDERPOWERED if weak else _POWERED, "/" if weak else ""),
                text=[
                    fmt_pct(rows[i]["power"]["mde_relative"]) + (" \u26a0" if weak else "")
                    for i in chosen
                ],
                textposition="outside",
                cliponaxis=False,
                customdata=[
                    f"{comparison_label(rows[i], small=False)}<br>"
                    f"detectable now: \u00b1{fmt_pct(rows[i]['power']['mde_relative'])}<br>"
                    f"planned: \u00b1{fmt_pct(rows[i]['power'].get('planned_mde'))}<br>"
                    "time to the planned MDE: "
                    f"{fmt_days(rows[i]['power'].get('days_to_planned_mde'))}"
                    for i in chosen
                ],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    planned = [
        (c["power"].get("planned_mde"), label) for c, label in zip(rows, labels, strict=True)
    ]
    fig.add_trace(
        go.Scatter(
            x=[float(p) * 100 for p, _ in planned if finite(p)],
            y=[label for p, label in planned if finite(p)],
            mode="markers",
            name="planned MDE",
            marker={"symbol": "line-ns-open", "size": 26, "line": {"width": 3}, "color": "#000000"},
            hoverinfo="skip",
        )
    )
    base_layout(fig, 80 + 40 * len(rows))
    fig.update_yaxes(
        type="category", categoryorder="array", categoryarray=labels, autorange="reversed"
    )
    level = rows[0]["power"].get("power")
    power_text = f" with {fmt_pct(level, 0)} power" if finite(level) else ""
    fig.update_xaxes(
        ticksuffix="%", rangemode="tozero", title_text=f"smallest lift detectable{power_text}"
    )
    fig.update_layout(
        barmode="overlay",
        bargap=0.35,
        legend=top_legend(),
        margin={"t": 50, "r": 60},
    )
    return fig
