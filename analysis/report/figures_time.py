"""Figures of how the effect develops: over calendar time and over time since exposure.

Drawn from ``results.over_time`` (the cumulative lift of the primary metric
as it would have been read on each day, with its confidence sequence, and the
units assigned so far) and ``results.exposure_trend`` (the lift in each
week since a unit's first exposure).  Nothing is estimated here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report.figures import base_layout, top_legend
from analysis.report.formatting import as_results
from analysis.report.palette import arm_style, arm_styles
from analysis.report.text import esc, fmt_ci, fmt_count, fmt_lift
from analysis.results.model import Results
from analysis.results.records import DayComparisonRecord, Pair

__all__ = ["exposure_trend_chart", "over_time_chart"]

_ZERO: Final[Mapping[str, Any]] = {"line_dash": "dash", "line_color": "#333333", "line_width": 1}


def _rgba(hex_color: str, alpha: float) -> str:
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _pairs(rows: Sequence[DayComparisonRecord]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((str(r.control), str(r.treatment)) for r in rows))


def _pct(value: float | None) -> float | None:
    return value * 100 if value is not None else None


def over_time_chart(results: Results | Mapping[str, Any]) -> go.Figure | None:
    """Cumulative lift per day with its always-valid band, and units accrued per arm.

    Top: for each treatment arm, the lift of ``over_time.metric`` as the
    analysis would have read it on each day (line) inside its confidence
    sequence (shaded band: the interval that stays valid however often it is
    looked at).  Bottom: units assigned so far, per arm.  None when the
    results have no ``over_time`` days.
    """
    r = as_results(results)
    over_time = r.over_time
    if over_time is None or not over_time.days:
        return None
    days = over_time.days
    styles = arm_styles(r)
    label = esc(over_time.label or over_time.metric or "primary metric")
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.66, 0.34],
        vertical_spacing=0.1,
        subplot_titles=[f"Cumulative lift of {label}", "Units assigned so far"],
    )
    dates = [esc(day.date) for day in days]
    rows = [c for day in days for c in day.comparisons]
    for control, treatment in _pairs(rows):
        style = arm_style(styles, treatment)
        name = f"{esc(treatment)} vs {esc(control)}"
        points: list[DayComparisonRecord | None] = [
            next(
                (
                    c
                    for c in day.comparisons
                    if str(c.control) == control and str(c.treatment) == treatment
                ),
                None,
            )
            for day in days
        ]
        banded: list[tuple[str, Pair]] = [
            (date, p.sequential_lift_ci)
            for date, p in zip(dates, points, strict=True)
            if p is not None and p.sequential_lift_ci is not None
        ]
        if banded:
            fig.add_trace(
                go.Scatter(
                    x=[d for d, _ in banded] + [d for d, _ in reversed(banded)],
                    y=[ci[1] * 100 for _, ci in banded]
                    + [ci[0] * 100 for _, ci in reversed(banded)],
                    fill="toself",
                    fillcolor=_rgba(style["color"], 0.18),
                    line={"width": 0},
                    mode="lines",
                    name=f"{name}: always-valid band",
                    legendgroup=name,
                    hoverinfo="skip",
                ),
                row=1,
                col=1,
            )
        hover = [
            "<br>".join(
                [
                    f"<b>{name}</b> on {esc(date)}",
                    f"lift {fmt_lift(p.lift)}",
                    f"always-valid CI {fmt_ci(p.sequential_lift_ci)}",
                    f"fixed-horizon CI {fmt_ci(p.lift_ci)}",
                    f"units: {fmt_count(day.units.get(treatment))} vs "
                    f"{fmt_count(day.units.get(control))}",
                ]
            )
            if p is not None
            else ""
            for date, p, day in zip(dates, points, days, strict=True)
        ]
        fig.add_trace(
            go.Scatter(
                x=dates,
                y=[_pct(p.lift) if p is not None else None for p in points],
                mode="lines+markers",
                name=f"{name}: lift",
                legendgroup=name,
                line={"color": style["color"], "dash": style["dash"], "width": 2},
                marker={"symbol": style["symbol"], "size": 5, "color": style["color"]},
                text=hover,
                hovertemplate="%{text}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    arms = list(dict.fromkeys(arm for day in days for arm in day.units))
    for arm in sorted(arms, key=lambda a: list(styles).index(a) if a in styles else len(styles)):
        style = arm_style(styles, arm)
        counts = [day.units.get(arm) for day in days]
        fig.add_trace(
            go.Scatter(
                x=dates,
                y=counts,
                mode="lines",
                name=f"units: {esc(arm)}",
                line={"color": style["color"], "dash": style["dash"], "width": 2},
                text=[
                    f"{esc(arm)}: {fmt_count(c)} units on {esc(d)}"
                    for c, d in zip(counts, dates, strict=True)
                ],
                hovertemplate="%{text}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    fig.add_hline(y=0, row=1, col=1, **_ZERO)
    fig.update_yaxes(ticksuffix="%", title_text="lift", row=1, col=1)
    fig.update_yaxes(title_text="units", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(type="date")
    for annotation in fig.layout.annotations:
        annotation.update(x=0, xanchor="left", font={"size": 14})
    base_layout(fig, 600)
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0, "xanchor": "left"},
        margin={"t": 40, "b": 40},
        hovermode="closest",
    )
    return fig


def exposure_trend_chart(results: Results | Mapping[str, Any]) -> go.Figure | None:
    """Lift per week since a unit's first exposure, one panel per metric.

    A lift that fades week after week suggests a novelty effect; one that grows
    suggests learning.  Points carry their confidence intervals.  None when the
    results have no ``exposure_trend`` with weekly lifts.
    """
    r = as_results(results)
    trends = [t for t in r.exposure_trend if t.buckets]
    if not trends:
        return None
    styles = arm_styles(r)
    metrics = list(dict.fromkeys(str(t.metric) for t in trends))
    labels = {str(t.metric): esc(t.label or t.metric) for t in reversed(trends)}
    fig = make_subplots(
        rows=len(metrics),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.08, 0.3 / len(metrics)),
        subplot_titles=[labels[m] for m in metrics],
    )
    shown: set[str] = set()
    for row, metric in enumerate(metrics, start=1):
        chosen = [t for t in trends if str(t.metric) == metric]
        for k, trend in enumerate(chosen):
            style = arm_style(styles, trend.treatment)
            name = f"{esc(trend.treatment)} vs {esc(trend.control)}"
            offset = (k - (len(chosen) - 1) / 2) * 0.08
            buckets = [b for b in trend.buckets if b.week is not None]
            lifts = [_pct(b.lift) for b in buckets]
            spans = [(b.lift_ci, b.lift) for b in buckets]
            plus = [(ci[1] - lift) * 100 if ci and lift is not None else 0.0 for ci, lift in spans]
            minus = [(lift - ci[0]) * 100 if ci and lift is not None else 0.0 for ci, lift in spans]
            fig.add_trace(
                go.Scatter(
                    x=[float(b.week or 0) + offset for b in buckets],
                    y=lifts,
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=name not in shown,
                    line={"color": style["color"], "dash": style["dash"], "width": 1.5},
                    marker={"symbol": style["symbol"], "size": 9, "color": style["color"]},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": plus,
                        "arrayminus": minus,
                        "color": style["color"],
                        "thickness": 1.5,
                        "width": 4,
                    },
                    text=[
                        f"<b>{labels[metric]}</b>, {name}<br>week {esc(b.week)} since "
                        f"exposure<br>lift {fmt_lift(b.lift)} {fmt_ci(b.lift_ci)}"
                        f"<br>units: {fmt_count(b.n_treatment)} vs "
                        f"{fmt_count(b.n_control)}"
                        for b in buckets
                    ],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            shown.add(name)
        fig.add_hline(y=0, row=row, col=1, **_ZERO)
        fig.update_yaxes(ticksuffix="%", row=row, col=1)
    weeks = sorted({b.week for t in trends for b in t.buckets if b.week is not None})
    fig.update_xaxes(tickmode="array", tickvals=weeks)
    fig.update_xaxes(
        title_text="weeks since the unit's first exposure (0 = its first 7 days)",
        row=len(metrics),
        col=1,
    )
    for annotation in fig.layout.annotations:
        annotation.update(x=0, xanchor="left", font={"size": 14})
    base_layout(fig, 110 + 210 * len(metrics))
    fig.update_layout(
        legend=top_legend(),
        margin={"t": 60},
    )
    return fig
