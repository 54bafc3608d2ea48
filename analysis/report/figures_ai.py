"""Figures of what people did with the AI, and of value distributions per arm.

Drawn from ``results.funnel`` (event counts per funnel step per AI arm) and
``results.distributions`` (histograms of time on task and of the trust
survey).  Only counts arrive here; the figures show them and, to compare arms
of different sizes, each count as a share of its own arm's total or of its
arm's "AI output shown" count.  No statistic is estimated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import plotly.graph_objects as go

from analysis.report.figures import bar_marker, base_layout, top_legend
from analysis.report.formatting import as_results
from analysis.report.palette import arm_style, arm_styles
from analysis.report.text import esc, fmt_count, fmt_pct
from analysis.results.model import Results

__all__ = ["BRANCH_STEPS", "funnel_chart", "time_on_task_chart", "trust_chart"]

#: Steps that split the AI outputs shown; the chart gives them as a share of "shown".
BRANCH_STEPS: Final[frozenset[str]] = frozenset({"accepted", "edited", "rejected"})


def _ordered(arms: Sequence[str], styles: Mapping[str, Any]) -> list[str]:
    order = list(styles)
    return sorted(arms, key=lambda a: order.index(a) if a in order else len(order))


def funnel_chart(results: Results | Mapping[str, Any]) -> go.Figure | None:
    """AI output shown → accepted / edited / rejected → tasks completed, per AI arm.

    Horizontal bars of event counts, one colour and bar pattern per arm;
    accepted, edited and rejected also as a share of the AI outputs shown in
    that arm.  None when the results have no funnel.
    """
    r = as_results(results)
    funnel = [f for f in r.funnel if f.steps]
    if not funnel:
        return None
    styles = arm_styles(r)
    steps = list(dict.fromkeys(str(s.step) for f in funnel for s in f.steps))
    fig = go.Figure()
    for entry in funnel:
        arm = str(entry.variant)
        style = arm_style(styles, arm)
        counts = {str(s.step): s.count or 0 for s in entry.steps}
        first = entry.steps[0].count or 0
        first_name = esc(entry.steps[0].step)
        texts = []
        for step in steps:
            count = counts.get(step, 0)
            share = (
                f" ({fmt_pct(count / first, 0)} of shown)"
                if step in BRANCH_STEPS and first > 0
                else ""
            )
            texts.append(f"{fmt_count(count)}{share}")
        fig.add_trace(
            go.Bar(
                x=[counts.get(step, 0) for step in steps],
                y=[esc(step) for step in steps],
                orientation="h",
                name=esc(arm),
                marker=bar_marker(style["color"], style["pattern"]),
                text=texts,
                textposition="outside",
                cliponaxis=False,
                customdata=[
                    f"<b>{esc(arm)}</b>: {esc(step)}<br>{text}"
                    + (f"<br>({first_name}: {fmt_count(first)})" if step in BRANCH_STEPS else "")
                    for step, text in zip(steps, texts, strict=True)
                ],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    base_layout(fig, 90 + len(steps) * (24 * len(funnel) + 22))
    fig.update_yaxes(
        type="category",
        categoryorder="array",
        categoryarray=[esc(step) for step in steps],
        autorange="reversed",
        showgrid=False,
    )
    fig.update_xaxes(title_text="events", rangemode="tozero")
    fig.update_layout(
        barmode="group",
        bargap=0.25,
        legend=top_legend("arm: "),
        margin={"t": 50, "r": 140},
    )
    return fig


def time_on_task_chart(results: Results | Mapping[str, Any]) -> go.Figure | None:
    """Histogram of time on task per arm on a log scale (step lines of each arm's share).

    The bins are shared by the arms (``log10_edges``); each arm's counts are
    shown as shares of its own total so arms of different sizes compare.
    None when the results have no such histogram.
    """
    r = as_results(results)
    dist = r.distributions.time_on_task
    if dist is None or len(dist.log10_edges) < 2 or not dist.counts:
        return None
    edges = dist.log10_edges
    counts = dist.counts
    unit = esc(dist.unit or "seconds")
    bounds = [10**e for e in edges]
    styles = arm_styles(r)
    fig = go.Figure()
    for arm in _ordered(list(counts), styles):
        values = list(counts[arm][: len(edges) - 1])
        total = sum(values)
        if total == 0 or len(values) != len(edges) - 1:
            continue
        shares = [v / total * 100 for v in values]
        style = arm_style(styles, arm)
        fig.add_trace(
            go.Scatter(
                x=bounds,
                y=[*shares, shares[-1]],
                mode="lines",
                line={"shape": "hv", "color": style["color"], "dash": style["dash"], "width": 2},
                name=f"{esc(arm)} ({fmt_count(total)})",
                text=[
                    f"<b>{esc(arm)}</b><br>{lo:.3g}\u2013{hi:.3g} {unit}<br>"
                    f"{fmt_count(v)} ({s:.1f}% of the arm)"
                    for lo, hi, v, s in zip(bounds, bounds[1:], values, shares, strict=False)
                ]
                + [""],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if not fig.data:
        return None
    base_layout(fig, 340)
    fig.update_xaxes(type="log", title_text=f"time on task ({unit}, log scale)")
    fig.update_yaxes(title_text="share of the arm (%)", rangemode="tozero")
    fig.update_layout(
        legend=top_legend("arm (n): "),
        margin={"t": 50},
    )
    return fig


def trust_chart(results: Results | Mapping[str, Any]) -> go.Figure | None:
    """Trust survey answers per arm: grouped bars of each arm's share of answers per value.

    None when the results have no answers.
    """
    r = as_results(results)
    dist = r.distributions.trust_score
    if dist is None or not dist.values or not dist.counts:
        return None
    values = dist.values
    counts = dist.counts
    styles = arm_styles(r)
    fig = go.Figure()
    for arm in _ordered(list(counts), styles):
        row = list(counts[arm][: len(values)])
        total = sum(row)
        if total == 0 or len(row) != len(values):
            continue
        style = arm_style(styles, arm)
        fig.add_trace(
            go.Bar(
                x=[esc(v) for v in values],
                y=[v / total * 100 for v in row],
                name=f"{esc(arm)} ({fmt_count(total)})",
                marker=bar_marker(style["color"], style["pattern"]),
                customdata=[
                    f"<b>{esc(arm)}</b>: answer {esc(v)}<br>{fmt_count(n)} "
                    f"({fmt_pct(n / total)} of the arm's answers)"
                    for v, n in zip(values, row, strict=True)
                ],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    if not fig.data:
        return None
    base_layout(fig, 320)
    fig.update_xaxes(
        type="category", title_text="answer on the 1\u20137 trust scale (7 = most trust)"
    )
    fig.update_yaxes(title_text="share of the arm's answers (%)", rangemode="tozero")
    fig.update_layout(
        barmode="group",
        legend=top_legend("arm (answers): "),
        margin={"t": 50},
    )
    return fig
