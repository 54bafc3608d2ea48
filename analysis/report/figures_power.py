"""Figures of the sample: units per arm, and the detectable lift now against the planned one.

Unit counts and minimum detectable effects are drawn as the analysis
computed them; nothing is estimated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import plotly.graph_objects as go

from analysis.report.figures import bar_marker, base_layout, comparison_label, top_legend
from analysis.report.formatting import as_results, underpowered
from analysis.report.text import esc, fmt_count, fmt_days, fmt_pct, fmt_share
from analysis.results.model import Results

__all__ = ["power_chart", "units_bar"]

_ARM_COLORS: Final[Mapping[bool, str]] = {False: "#56B4E9", True: "#009E73"}
_POWERED: Final = "#0072B2"
_UNDERPOWERED: Final = "#E69F00"


def units_bar(results: Results | Mapping[str, Any]) -> go.Figure:
    """Units per arm, as counted by the analysis, with each arm's configured share in the hover.

    AI arms are green and hatched, the others sky blue and plain.
    """
    r = as_results(results)
    units = r.data.units
    variants = r.experiment.variants
    expected = r.srm.expected
    arms = [*[v for v in variants if v in units], *[v for v in units if v not in variants]]
    fig = go.Figure()
    for ai in (False, True):
        chosen = [arm for arm in arms if bool(arm in variants and variants[arm].ai) is ai]
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


def power_chart(results: Results | Mapping[str, Any]) -> go.Figure | None:
    """Today's minimum detectable effect per comparison against the planned one.

    A bar per comparison (relative MDE, %), a tick at its planned MDE; bars
    that do not reach the plan are orange and hatched.  None when no
    comparison has a power result.
    """
    rows = [c for c in as_results(results).comparisons if c.power.mde_relative is not None]
    if not rows:
        return None
    labels = [comparison_label(c) for c in rows]
    short = [underpowered(c) for c in rows]
    mdes = [(c.power.mde_relative or 0.0) * 100 for c in rows]
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
                    fmt_pct(rows[i].power.mde_relative) + (" \u26a0" if weak else "")
                    for i in chosen
                ],
                textposition="outside",
                cliponaxis=False,
                customdata=[
                    f"{comparison_label(rows[i], small=False)}<br>"
                    f"detectable now: \u00b1{fmt_pct(rows[i].power.mde_relative)}<br>"
                    f"planned: \u00b1{fmt_pct(rows[i].power.planned_mde)}<br>"
                    "time to the planned MDE: "
                    f"{fmt_days(rows[i].power.days_to_planned_mde)}"
                    for i in chosen
                ],
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    planned = [(c.power.planned_mde, label) for c, label in zip(rows, labels, strict=True)]
    fig.add_trace(
        go.Scatter(
            x=[p * 100 for p, _ in planned if p is not None],
            y=[label for p, label in planned if p is not None],
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
    level = rows[0].power.power
    power_text = f" with {fmt_pct(level, 0)} power" if level is not None else ""
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
