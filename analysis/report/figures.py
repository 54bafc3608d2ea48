"""Plotly figure building blocks shared by the report's figures.

Figures only *draw* numbers that the analysis already computed.  Plotly
renders a subset of HTML inside labels, titles and hover text, so every
string that comes from data or config is passed through :func:`esc` before it
reaches a figure.  The figures are in :mod:`.figures_lift` (forest plot),
:mod:`.figures_power` (units per arm, power), :mod:`.figures_time`,
:mod:`.figures_ai` and :mod:`.figures_segments`; all use :func:`base_layout`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

import plotly.graph_objects as go

from analysis.report.text import esc
from analysis.results.records import ComparisonRecord

__all__ = [
    "bar_marker",
    "base_layout",
    "comparison_label",
    "note_figure",
    "top_legend",
]

_FONT: Final = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
_GRID: Final = "#eeeeee"
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


def comparison_label(comparison: ComparisonRecord, small: bool = True) -> str:
    """``Label<br>treatment vs control``, escaped, for a figure axis."""
    label = esc(comparison.label or comparison.metric or "?")
    arms = f"{esc(comparison.treatment)} vs {esc(comparison.control)}"
    if not small:
        return f"{label} ({arms})"
    return f"{label}<br><span style='font-size:11px'>{arms}</span>"
