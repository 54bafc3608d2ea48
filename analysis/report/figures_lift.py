"""The forest plot: each comparison's lift with its fixed-horizon and always-valid intervals.

The point and intervals are those of the verdict's basis (:func:`basis_view`);
nothing is estimated here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.report.figures import base_layout, comparison_label, note_figure, top_legend
from analysis.report.formatting import as_results, basis_view, ordered_comparisons
from analysis.report.palette import VERDICT_COLORS, VERDICT_SYMBOLS
from analysis.report.text import esc, fmt_ci, fmt_count, fmt_lift, fmt_p_eq
from analysis.results.model import Results
from analysis.results.records import ComparisonRecord, Pair

__all__ = ["forest_plot", "lift_is_plottable"]

_VERDICT_ORDER: Final[tuple[str, ...]] = ("better", "worse", "inconclusive")
_UNKNOWN_VERDICT_COLOR: Final = "#000000"
_ROW_PX: Final = 46  # vertical room per plotted comparison
_DASH: Final = "\u2013"


def lift_is_plottable(comparison: ComparisonRecord) -> bool:
    """Whether the comparison has a finite lift (of its verdict basis) to draw."""
    return basis_view(comparison).lift is not None


def _hover(comparison: ComparisonRecord) -> str:
    view = basis_view(comparison)
    cuped = " (CUPED-adjusted)" if view.cuped else ""
    lines = [
        f"<b>{esc(comparison.label or comparison.metric)}</b>",
        f"{esc(comparison.treatment)} vs {esc(comparison.control)}",
        f"lift {fmt_lift(view.lift)}{cuped}",
        f"fixed-horizon CI {fmt_ci(view.fixed_ci)}",
        f"always-valid CI {fmt_ci(view.sequential_ci)}",
        f"n = {fmt_count(comparison.n_treatment)} vs {fmt_count(comparison.n_control)}",
        f"{fmt_p_eq(comparison.p_value)}, adjusted {fmt_p_eq(comparison.p_value_adjusted)}",
        f"method: {esc(comparison.method or _DASH)}",
        f"verdict: {esc(comparison.verdict)} (goal: {esc(comparison.goal or _DASH)})",
    ]
    return "<br>".join(lines)


def _errors(
    comparisons: Sequence[ComparisonRecord], sequential: bool
) -> tuple[list[float], list[float]]:
    """Distances from the lift to each end of an interval, in percentage points."""
    plus: list[float] = []
    minus: list[float] = []
    for comparison in comparisons:
        view = basis_view(comparison)
        lift = view.lift or 0.0  # only comparisons with a lift are drawn
        ci: Pair | None = view.sequential_ci if sequential else view.fixed_ci
        if ci is not None:
            plus.append(max(ci[1] - lift, 0.0) * 100)
            minus.append(max(lift - ci[0], 0.0) * 100)
        else:
            plus.append(0.0)
            minus.append(0.0)
    return plus, minus


def _verdict_groups(
    items: Sequence[ComparisonRecord],
) -> list[tuple[str, list[ComparisonRecord]]]:
    groups: list[tuple[str, list[ComparisonRecord]]] = []
    for verdict in (*_VERDICT_ORDER, None):
        chosen = [
            c
            for c in items
            if (c.verdict == verdict) or (verdict is None and c.verdict not in _VERDICT_ORDER)
        ]
        if chosen:
            groups.append((verdict or "other", chosen))
    return groups


def forest_plot(results: Results | Mapping[str, Any]) -> go.Figure:
    """Relative lift (%) with its fixed-horizon and always-valid intervals, one row each.

    One subplot per category (outcome, effort, trust, guardrail, then any
    other), a dashed line at 0.  The point and intervals are those of the
    verdict's basis (CUPED-adjusted where it applied): a thick bar for the
    fixed-horizon confidence interval, a thin capped line for the always-valid
    one.  Marker colour *and* symbol show the verdict; the hover has n, p and
    method.  Comparisons without a lift are listed in a note under the plot.
    """
    comparisons = as_results(results).comparisons
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
            x = [(basis_view(c).lift or 0.0) * 100 for c in chosen]
            y = [comparison_label(c) for c in chosen]
            seq_plus, seq_minus = _errors(chosen, sequential=True)
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
            plus, minus = _errors(chosen, sequential=False)
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


def _add_skipped_note(fig: go.Figure, skipped: Sequence[ComparisonRecord]) -> None:
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
