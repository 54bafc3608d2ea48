"""Heatmaps of the lift by segment value (``results["segments"]``).

One heatmap per metric shown (the primary metric and the trust metrics): a
row per segment value (``platform: ios``), a column per comparison
(``ai vs control``).  The colour is the lift, oriented by the metric's goal
(blue = better for the goal, vermillion = worse); the text in each cell
repeats the lift and the verdict mark after the Benjamini–Hochberg correction
across segments, so the cell reads without colour.  Nothing is estimated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import plotly.graph_objects as go

from analysis.report.figures import base_layout
from analysis.report.formatting import (
    VERDICT_COLORS,
    VERDICT_MARKS,
    esc,
    finite,
    fmt_ci,
    fmt_count,
    fmt_lift,
    fmt_p,
    primary_metric,
)

_DASH: Final = "\u2013"

__all__ = ["segment_heatmap", "segment_metrics"]

_MID: Final = "#f7f7f7"


def segment_metrics(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(metric, label)`` of the metrics with segment slices to show: primary, then trust."""
    slices: Sequence[Mapping[str, Any]] = results.get("segments") or []
    present = {str(s.get("metric")): s.get("label") for s in slices}
    primary = primary_metric(results)
    wanted: list[str] = [primary] if primary is not None else []
    trust = [
        str(c.get("metric"))
        for c in results.get("comparisons") or []
        if c.get("category") == "trust"
    ]
    wanted += sorted(trust, key=lambda m: "trust" not in m)  # the trust score itself first
    return [(m, str(present[m] or m)) for m in dict.fromkeys(wanted) if m in present]


def _goal(results: Mapping[str, Any], metric: str) -> str:
    for comparison in results.get("comparisons") or []:
        if comparison.get("metric") == metric and comparison.get("goal") in {
            "increase",
            "decrease",
        }:
            return str(comparison["goal"])
    return "increase"


def _hover(s: Mapping[str, Any]) -> str:
    lines = [
        f"<b>{esc(s.get('dimension'))}: {esc(s.get('value'))}</b>",
        f"{esc(s.get('treatment'))} vs {esc(s.get('control'))}",
        f"lift {fmt_lift(s.get('lift'))} {fmt_ci(s.get('lift_ci'))}",
        f"n = {fmt_count(s.get('n_treatment'))} vs {fmt_count(s.get('n_control'))}",
        f"p = {fmt_p(s.get('p_value'))}, BH-adjusted p = {fmt_p(s.get('p_value_adjusted'))}",
        f"verdict: {esc(s.get('verdict') or _DASH)}",
    ]
    if s.get("reason"):
        lines.append(esc(s["reason"]))
    return "<br>".join(lines)


def segment_heatmap(results: Mapping[str, Any], metric: str) -> go.Figure | None:
    """The lift of ``metric`` by segment value and comparison; None without slices."""
    slices = [s for s in results.get("segments") or [] if str(s.get("metric")) == metric]
    if not slices:
        return None
    dimensions = [str(d) for d in (results.get("experiment") or {}).get("segments") or []]
    dimensions += [str(s.get("dimension")) for s in slices]
    order = list(dict.fromkeys(dimensions))
    rows = sorted(
        dict.fromkeys((str(s.get("dimension")), str(s.get("value"))) for s in slices),
        key=lambda r: order.index(r[0]),
    )
    cols = list(dict.fromkeys((str(s.get("control")), str(s.get("treatment"))) for s in slices))
    cell = {
        tuple(str(s.get(k)) for k in ("dimension", "value", "control", "treatment")): s
        for s in slices
    }
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    hover: list[list[str]] = []
    for dimension, value in rows:
        z_row: list[float | None] = []
        text_row: list[str] = []
        hover_row: list[str] = []
        for control, treatment in cols:
            s = cell.get((dimension, value, control, treatment))
            lift = s.get("lift") if s is not None else None
            z_row.append(float(lift) * 100 if finite(lift) else None)
            mark = VERDICT_MARKS.get(str(s.get("verdict")), "") if s is not None else ""
            text_row.append(f"{fmt_lift(lift)} {mark}".strip())
            hover_row.append(_hover(s) if s is not None else "not analysed")
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    extent = max([abs(v) for r in z for v in r if v is not None] or [1.0]) or 1.0
    scale = [[0.0, VERDICT_COLORS["worse"]], [0.5, _MID], [1.0, VERDICT_COLORS["better"]]]
    if _goal(results, metric) == "decrease":
        scale = [[0.0, VERDICT_COLORS["better"]], [0.5, _MID], [1.0, VERDICT_COLORS["worse"]]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"{esc(t)} vs {esc(c)}" for c, t in cols],
            y=[f"{esc(d)}: {esc(v)}" for d, v in rows],
            text=text,
            texttemplate="%{text}",
            textfont={"size": 13},
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorscale=scale,
            zmid=0,
            zmin=-extent,
            zmax=extent,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": "lift"}, "ticksuffix": "%", "thickness": 12, "len": 0.9},
        )
    )
    base_layout(fig, 90 + 36 * len(rows))
    fig.update_xaxes(type="category", side="top", showgrid=False, showline=False, ticks="")
    fig.update_yaxes(
        type="category", autorange="reversed", showgrid=False, showline=False, ticks=""
    )
    fig.update_layout(margin={"t": 40, "b": 10})
    return fig
