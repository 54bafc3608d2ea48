"""Heatmaps of the lift by segment value (``results.segments``).

One heatmap per metric shown (the primary metric and the trust metrics): a
row per segment value (``platform: ios``), a column per comparison
(``ai vs control``).  The colour is the lift, oriented by the metric's goal
(blue = better for the goal, vermillion = worse); the text in each cell
repeats the lift and the verdict mark after the Benjamini–Hochberg correction
across segments, so the cell reads without colour.  Nothing is estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import plotly.graph_objects as go

from analysis.report.figures import base_layout
from analysis.report.formatting import as_results, primary_metric
from analysis.report.palette import VERDICT_COLORS, VERDICT_MARKS
from analysis.report.text import esc, fmt_ci, fmt_count, fmt_lift, fmt_p
from analysis.results.model import Results
from analysis.results.records import SegmentRecord

_DASH: Final = "\u2013"

__all__ = ["segment_heatmap", "segment_metrics"]

_MID: Final = "#f7f7f7"


def segment_metrics(results: Results) -> list[tuple[str, str]]:
    """``(metric, label)`` of the metrics with segment slices to show: primary, then trust."""
    present = {str(s.metric): s.label for s in results.segments}
    primary = primary_metric(results)
    wanted: list[str] = [primary] if primary is not None else []
    trust = [c.metric for c in results.comparisons if c.category == "trust"]
    wanted += sorted(trust, key=lambda m: "trust" not in m)  # the trust score itself first
    return [(m, str(present[m] or m)) for m in dict.fromkeys(wanted) if m in present]


def _goal(results: Results, metric: str) -> str:
    for comparison in results.comparisons:
        if comparison.metric == metric and comparison.goal in {"increase", "decrease"}:
            return comparison.goal
    return "increase"


def _hover(s: SegmentRecord) -> str:
    lines = [
        f"<b>{esc(s.dimension)}: {esc(s.value)}</b>",
        f"{esc(s.treatment)} vs {esc(s.control)}",
        f"lift {fmt_lift(s.lift)} {fmt_ci(s.lift_ci)}",
        f"n = {fmt_count(s.n_treatment)} vs {fmt_count(s.n_control)}",
        f"p = {fmt_p(s.p_value)}, BH-adjusted p = {fmt_p(s.p_value_adjusted)}",
        f"verdict: {esc(s.verdict or _DASH)}",
    ]
    if s.reason:
        lines.append(esc(s.reason))
    return "<br>".join(lines)


def segment_heatmap(results: Results | Mapping[str, Any], metric: str) -> go.Figure | None:
    """The lift of ``metric`` by segment value and comparison; None without slices."""
    r = as_results(results)
    slices = [s for s in r.segments if str(s.metric) == metric]
    if not slices:
        return None
    dimensions = [*r.experiment.segments, *(str(s.dimension) for s in slices)]
    order = list(dict.fromkeys(dimensions))
    rows = sorted(
        dict.fromkeys((str(s.dimension), str(s.value)) for s in slices),
        key=lambda row: order.index(row[0]),
    )
    cols = list(dict.fromkeys((str(s.control), str(s.treatment)) for s in slices))
    cell = {(str(s.dimension), str(s.value), str(s.control), str(s.treatment)): s for s in slices}
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    hover: list[list[str]] = []
    for dimension, value in rows:
        z_row: list[float | None] = []
        text_row: list[str] = []
        hover_row: list[str] = []
        for control, treatment in cols:
            s = cell.get((dimension, value, control, treatment))
            lift = s.lift if s is not None else None
            z_row.append(lift * 100 if lift is not None else None)
            mark = VERDICT_MARKS.get(str(s.verdict), "") if s is not None else ""
            text_row.append(f"{fmt_lift(lift)} {mark}".strip())
            hover_row.append(_hover(s) if s is not None else "not analysed")
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    extent = max([abs(v) for r in z for v in r if v is not None] or [1.0]) or 1.0
    scale = [[0.0, VERDICT_COLORS["worse"]], [0.5, _MID], [1.0, VERDICT_COLORS["better"]]]
    if _goal(r, metric) == "decrease":
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
