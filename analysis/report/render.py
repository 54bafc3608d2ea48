"""HTML rendering of one run's pages (report, data quality) and of the site index.

The renderer reads a results dict (``results.json``, schema_version 1) and only
formats and arranges what is there: it never recomputes a statistic.  Every
string from data or config goes through jinja's autoescape; the only markup
inserted unescaped is the HTML that Plotly generates for the figures, whose
own labels are escaped in the ``figures*`` modules.

Pages are self-contained apart from ``plotly.min.js``, which is loaded from a
relative URL (``plotly_src``): no CDN, no inlined bundle, no other external
resource.  Fields added to results after the first version (``over_time``,
``funnel``, ``distributions``, ``exposure_trend``, ``pooled_ai``, ...) are
drawn when present; when absent their section says "not available for this
run".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from analysis.report import health, sections
from analysis.report.figures import forest_plot, lift_is_plottable, power_chart, units_bar
from analysis.report.figures_ai import funnel_chart, time_on_task_chart, trust_chart
from analysis.report.figures_segments import segment_heatmap, segment_metrics
from analysis.report.figures_time import exposure_trend_chart, over_time_chart
from analysis.report.formatting import (
    VERDICT_COLORS,
    VERDICT_MARKS,
    fmt_chance,
    fmt_ci,
    fmt_count,
    fmt_lift,
    fmt_p,
    fmt_p_eq,
    fmt_pct,
    fmt_share,
    fmt_value,
    ordered_comparisons,
)

__all__ = [
    "REPORT_PAGE",
    "SUPPORTED_SCHEMA_VERSION",
    "VALIDATION_PAGE",
    "render_index",
    "render_report",
    "render_run_files",
    "render_validation",
]

SUPPORTED_SCHEMA_VERSION: Final = 1
REPORT_PAGE: Final = "report.html"
VALIDATION_PAGE: Final = "validation.html"

RECOMMENDATION_CLASSES: Final[Mapping[str, str]] = {
    "ship": "ship",
    "don't ship": "dont-ship",
    "keep running": "keep-running",
    "investigate": "investigate",
}
#: What each recommendation asks the reader to do, in one sentence (analysis.decision's rules).
RECOMMENDATION_TEXT: Final[Mapping[str, str]] = {
    "ship": "Roll out the winning arm named in the reasons: its primary metric improved and "
    "no guardrail or primary metric got worse.",
    "don't ship": "Do not roll out: a primary or guardrail metric got worse, and no arm "
    "earned a ship.",
    "keep running": "No clear answer yet: keep the experiment running until its planned end.",
    "investigate": "Something in the data needs a human look before any decision: "
    "see the warnings below.",
}
_SAFE_PAGE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.html")


@functools.cache
def _environment() -> Environment:
    env = Environment(
        autoescape=True,
        loader=PackageLoader("analysis", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: dict[str, Callable[..., str]] = {
        "lift": fmt_lift,
        "ci": fmt_ci,
        "p": fmt_p,
        "p_eq": fmt_p_eq,
        "value": fmt_value,
        "count": fmt_count,
        "share": fmt_share,
        "pct": fmt_pct,
        "chance": fmt_chance,
        "verdict_mark": lambda verdict: VERDICT_MARKS.get(str(verdict), "?"),
        "recommendation_class": lambda rec: RECOMMENDATION_CLASSES.get(str(rec), "unknown"),
    }
    env.filters.update(filters)
    env.globals["verdict_colors"] = VERDICT_COLORS
    return env


def _check_plotly_src(plotly_src: str) -> str:
    """Refuse absolute URLs with a scheme or host: the bundle is served next to the reports."""
    src = plotly_src.strip()
    if not src or "://" in src or src.startswith("//") or ":" in src.split("/")[0]:
        msg = f"plotly_src must be a relative URL to the shared plotly.min.js, got {plotly_src!r}"
        raise ValueError(msg)
    return src


def _check_schema(results: Mapping[str, Any]) -> None:
    version = results.get("schema_version")
    if version != SUPPORTED_SCHEMA_VERSION:
        msg = f"unsupported results schema_version {version!r} (expected 1)"
        raise ValueError(msg)


def safe_page(name: object) -> str | None:
    """``name`` if it is a plain ``*.html`` file name (a safe relative link), else None."""
    return name if isinstance(name, str) and _SAFE_PAGE.fullmatch(name) else None


def _figure_html(fig: Any, div_id: str, label: str) -> Markup | None:
    """A figure as an empty ``div`` plus its Plotly JSON; the page's loader draws it.

    The JSON sits in a ``<script type="application/json">`` block (not run by
    the browser); ``report.html`` draws the figures one after the other once
    the page has painted, so the verdict shows before any chart is drawn.
    None for no figure.
    """
    if fig is None:
        return None
    height = int(fig.layout.height or 400)
    # Plotly's JSON encoder writes "<" and ">" as \u003c / \u003e, so no data string can
    # close the script element; every data string was also HTML-escaped by the figures.
    spec = str(fig.to_json()).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(
        f'<div id="{div_id}" class="plotly-graph-div proof-figure" '
        f'style="height:{height}px; width:100%;" role="img" aria-label="{escape(label)}"></div>\n'
        f'<script type="application/json" id="{div_id}-spec">{spec}</script>'
    )


def _confidence(alpha: object) -> str:
    if isinstance(alpha, int | float) and 0 < alpha < 1:
        return f"{(1 - alpha) * 100:.4g}%"
    return "1 \u2212 alpha"


def _segments(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for index, (metric, label) in enumerate(segment_metrics(results)):
        slices = [s for s in results.get("segments") or [] if str(s.get("metric")) == metric]
        verdicts = [str(s.get("verdict")) for s in slices]
        shown.append(
            {
                "metric": metric,
                "label": label,
                "html": _figure_html(
                    segment_heatmap(results, metric),
                    f"fig-segments-{index}",
                    f"Heatmap of the lift of {label} by segment",
                ),
                "total": len(slices),
                "better": verdicts.count("better"),
                "worse": verdicts.count("worse"),
            }
        )
    return shown


def render_report(
    results: Mapping[str, Any], plotly_src: str, *, validation_href: str | None = None
) -> str:
    """The HTML report of one run.

    ``plotly_src`` is the relative URL of the shared ``plotly.min.js`` (for a
    report published at ``<out>/<experiment>/<run>/report.html``:
    ``"../../assets/plotly.min.js"``).  ``validation_href`` is the run's data
    quality page next to the report; by default ``results["validation"]["page"]``
    when it is a plain ``*.html`` name, else the report does not link one.
    """
    _check_schema(results)
    src = _check_plotly_src(plotly_src)
    validation: Mapping[str, Any] = results.get("validation") or {}
    page = safe_page(validation_href) or (
        safe_page(validation.get("page")) if validation_href is None else None
    )
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    comparisons: Sequence[Mapping[str, Any]] = results.get("comparisons") or []
    decision: Mapping[str, Any] = results.get("decision") or {}
    recommendation = decision.get("recommendation") or "no decision"
    segment_list = _segments(results)
    pushdown: Mapping[str, Any] = results.get("pushdown") or {}
    heterogeneity, heterogeneity_other = sections.heterogeneity_rows(
        results, [s["metric"] for s in segment_list]
    )
    exposure, exposure_caveat = sections.exposure_rows(results)
    families = sections.family_sizes(comparisons)

    def row(c: Mapping[str, Any]) -> dict[str, Any]:
        family = families.get(str(c.get("role")))
        return sections.comparison_row(c, alpha=experiment.get("alpha"), family_size=family)

    rows = [row(c) for c in comparisons]
    context = {
        "title": experiment.get("name") or results.get("experiment_id"),
        "experiment": experiment,
        "experiment_id": results.get("experiment_id"),
        "run_id": results.get("run_id"),
        "analysis_date": results.get("analysis_date"),
        "generated_at": results.get("generated_at"),
        "header": sections.header(results),
        "arms": sections.arms(results),
        "recommendation": recommendation,
        "recommendation_text": RECOMMENDATION_TEXT.get(str(recommendation), ""),
        "reasons": decision.get("reasons") or [],
        "banners": health.banners(results, page),
        "health_ok": health.health_checks(results),
        "headline": [r for r in rows if r["role"] == "primary"] or rows[:1],
        "scorecard": [
            {"category": category, "rows": [row(c) for c in items]}
            for category, items in ordered_comparisons(comparisons)
        ],
        "has_sequential": any(r["ci_kind"] == "always-valid" for r in rows),
        "unplotted": [
            r for c, r in zip(comparisons, rows, strict=True) if not lift_is_plottable(c)
        ],
        "forest_html": _figure_html(forest_plot(results), "fig-forest", "Forest plot of the lifts")
        if comparisons
        else None,
        "over_time_html": _figure_html(
            over_time_chart(results), "fig-over-time", "Cumulative lift per day and units per arm"
        ),
        "over_time": results.get("over_time") or {},
        "exposure_html": _figure_html(
            exposure_trend_chart(results), "fig-exposure-trend", "Lift by week since exposure"
        ),
        "exposure_rows": exposure,
        "exposure_caveat": exposure_caveat,
        "funnel_html": _figure_html(funnel_chart(results), "fig-ai-funnel", "AI funnel per AI arm"),
        "time_html": _figure_html(
            time_on_task_chart(results), "fig-time-on-task", "Time on task per arm"
        ),
        "trust_html": _figure_html(trust_chart(results), "fig-trust", "Trust answers per arm"),
        "segments": segment_list,
        "heterogeneity": heterogeneity,
        "heterogeneity_other": heterogeneity_other,
        "has_segments_field": "segments" in results,
        "pooled": [
            sections.comparison_row(c, alpha=experiment.get("alpha"))
            for c in results.get("pooled_ai") or []
        ],
        "has_pooled_field": "pooled_ai" in results,
        "power_html": _figure_html(
            power_chart(results), "fig-power", "Detectable lift now and planned"
        ),
        "power_rows": sections.power_rows(results),
        "units_html": _figure_html(units_bar(results), "fig-units", "Units per arm")
        if (results.get("data") or {}).get("units")
        else None,
        "descriptive": sections.descriptive(results),
        "data": results.get("data") or {},
        "srm": results.get("srm") or {},
        "validation": validation,
        "validation_href": page,
        "failed_expectations": health.failure_items(results),
        "confidence": _confidence(experiment.get("alpha")),
        "plotly_src": src,
        "pushdown": pushdown,
        "pushed_down_missing": list(pushdown.get("not_available") or []),
    }
    return _environment().get_template("report.html").render(context)


def render_validation(results: Mapping[str, Any], *, report_href: str = REPORT_PAGE) -> str:
    """The run's data quality page (``validation.html``): no script, readable offline.

    Every failed expectation with its severity, unexpected count and examples;
    how many expectations ran and passed; rows validated per table; and the
    rows and units removed while cleaning (quarantined, duplicate, crossover).
    """
    _check_schema(results)
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    context = {
        "title": experiment.get("name") or results.get("experiment_id"),
        "experiment_id": results.get("experiment_id"),
        "run_id": results.get("run_id"),
        "analysis_date": results.get("analysis_date"),
        "generated": sections.header(results)["generated"],
        "report_href": safe_page(report_href),
        "v": sections.validation_context(results),
    }
    return _environment().get_template("validation.html").render(context)


def render_run_files(results: Mapping[str, Any], plotly_src: str) -> dict[str, str]:
    """The HTML pages of one run, by file name: ``report.html`` and ``validation.html``.

    The report links the data quality page; pass the result, with
    ``results.json``, to :func:`analysis.report.publish.publish_run`.
    """
    return {
        REPORT_PAGE: render_report(results, plotly_src, validation_href=VALIDATION_PAGE),
        VALIDATION_PAGE: render_validation(results, report_href=REPORT_PAGE),
    }


def render_index(entries: Sequence[Mapping[str, Any]], plotly_src: str | None = None) -> str:
    """The site index: a sortable, filterable table of experiments, latest run first.

    ``entries`` has the shape returned by
    :func:`analysis.report.publish.collect_index_entries`.  The index has no
    chart, so it loads plotly.js only when ``plotly_src`` is given.
    """
    src = _check_plotly_src(plotly_src) if plotly_src is not None else None
    return (
        _environment()
        .get_template("index.html")
        .render(entries=list(entries), plotly_src=src, goal_text=sections.GOAL_TEXT)
    )
