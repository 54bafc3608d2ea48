"""HTML rendering of one run's pages (report, data quality) and of the site index.

The renderer reads a run's results (:class:`~analysis.results.model.Results`;
a parsed ``results.json`` dict is read into it first) and only formats and
arranges what is there: it never recomputes a statistic.  Every
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
from pydantic import BaseModel

from analysis.report import health, sections
from analysis.report.changes import Changes
from analysis.report.figures_ai import funnel_chart, time_on_task_chart, trust_chart
from analysis.report.figures_lift import forest_plot, lift_is_plottable
from analysis.report.figures_power import power_chart, units_bar
from analysis.report.figures_segments import segment_heatmap, segment_metrics
from analysis.report.figures_time import exposure_trend_chart, over_time_chart
from analysis.report.formatting import as_results, ordered_comparisons
from analysis.report.palette import VERDICT_COLORS, VERDICT_MARKS
from analysis.report.sections_comparisons import GOAL_TEXT, comparison_row, family_sizes
from analysis.report.sections_decay import decay_context
from analysis.report.sections_failures import failure_context
from analysis.report.sections_flow import flow_context
from analysis.report.sections_unsure import unsure_context
from analysis.report.text import (
    fmt_chance,
    fmt_ci,
    fmt_count,
    fmt_lift,
    fmt_p,
    fmt_p_eq,
    fmt_pct,
    fmt_share,
    fmt_value,
)
from analysis.results.model import Results
from analysis.results.records import ComparisonRecord

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
    "no compared guardrail or primary metric got worse.",
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


def _check_schema(results: Results | Mapping[str, Any]) -> Results:
    """The results as the model, once their schema_version is known to be supported."""
    version = (
        results.schema_version if isinstance(results, Results) else results.get("schema_version")
    )
    if version != SUPPORTED_SCHEMA_VERSION:
        msg = f"unsupported results schema_version {version!r} (expected 1)"
        raise ValueError(msg)
    return as_results(results)


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


def _confidence(alpha: float | None) -> str:
    if alpha is not None and 0 < alpha < 1:
        return f"{(1 - alpha) * 100:.4g}%"
    return "1 \u2212 alpha"


def _record(record: BaseModel | None) -> dict[str, Any]:
    """A record as the templates read it: its JSON object (they call ``.get`` on it)."""
    if record is None:
        return {}
    return record.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _segments(results: Results) -> list[dict[str, Any]]:
    shown = []
    for index, (metric, label) in enumerate(segment_metrics(results)):
        slices = [s for s in results.segments if str(s.metric) == metric]
        verdicts = [str(s.verdict) for s in slices]
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
    results: Results | Mapping[str, Any],
    plotly_src: str,
    *,
    validation_href: str | None = None,
    changes: Changes | None = None,
) -> str:
    """The HTML report of one run.

    ``plotly_src`` is the relative URL of the shared ``plotly.min.js`` (for a
    report published at ``<out>/<experiment>/<run>/report.html``:
    ``"../../assets/plotly.min.js"``).  ``validation_href`` is the run's data
    quality page next to the report; by default ``validation.page`` of the
    results when it is a plain ``*.html`` name, else the report does not link one.
    ``changes`` (:func:`analysis.report.changes.changes_since`) fills the "Since the
    last run" section; without it (the first run) the report has none.
    """
    r = _check_schema(results)
    src = _check_plotly_src(plotly_src)
    page = safe_page(validation_href) or (
        safe_page(r.validation.page) if validation_href is None else None
    )
    experiment = r.experiment
    comparisons = r.comparisons
    recommendation = r.decision.recommendation or "no decision"
    segment_list = _segments(r)
    heterogeneity, heterogeneity_other = sections.heterogeneity_rows(
        r, [s["metric"] for s in segment_list]
    )
    exposure, exposure_caveat = sections.exposure_rows(r)
    families = family_sizes(comparisons)

    def row(c: ComparisonRecord) -> dict[str, Any]:
        return comparison_row(c, alpha=experiment.alpha, family_size=families.get(str(c.role)))

    rows = [row(c) for c in comparisons]
    context = {
        "title": experiment.name or r.experiment_id,
        "experiment": _record(experiment),
        "experiment_id": r.experiment_id,
        "run_id": r.run_id,
        "analysis_date": r.analysis_date,
        "generated_at": r.generated_at,
        "header": sections.header(r),
        "arms": sections.arms(r),
        "recommendation": recommendation,
        "recommendation_text": RECOMMENDATION_TEXT.get(recommendation, ""),
        "reasons": list(r.decision.reasons),
        "changes": changes,
        "banners": health.banners(r, page),
        "health_ok": health.health_checks(r),
        "headline": [x for x in rows if x["role"] == "primary"] or rows[:1],
        "scorecard": [
            {"category": category, "rows": [row(c) for c in items]}
            for category, items in ordered_comparisons(comparisons)
        ],
        "has_sequential": any(x["ci_kind"] == "always-valid" for x in rows),
        "unplotted": [
            x for c, x in zip(comparisons, rows, strict=True) if not lift_is_plottable(c)
        ],
        "forest_html": _figure_html(forest_plot(r), "fig-forest", "Forest plot of the lifts")
        if comparisons
        else None,
        "over_time_html": _figure_html(
            over_time_chart(r), "fig-over-time", "Cumulative lift per day and units per arm"
        ),
        "over_time": _record(r.over_time),
        "exposure_html": _figure_html(
            exposure_trend_chart(r), "fig-exposure-trend", "Lift by week since exposure"
        ),
        "exposure_rows": exposure,
        "exposure_caveat": exposure_caveat,
        "decay": decay_context(r),
        "flow": flow_context(r),
        "unsure": unsure_context(r),
        "funnel_html": _figure_html(funnel_chart(r), "fig-ai-funnel", "AI funnel per AI arm"),
        "time_html": _figure_html(
            time_on_task_chart(r), "fig-time-on-task", "Time on task per arm"
        ),
        "trust_html": _figure_html(trust_chart(r), "fig-trust", "Trust answers per arm"),
        "segments": segment_list,
        "heterogeneity": heterogeneity,
        "heterogeneity_other": heterogeneity_other,
        "has_segments_field": r.has("segments"),
        "pooled": [comparison_row(c, alpha=experiment.alpha) for c in r.pooled_ai],
        "has_pooled_field": r.has("pooled_ai"),
        "power_html": _figure_html(power_chart(r), "fig-power", "Detectable lift now and planned"),
        "power_rows": sections.power_rows(r),
        "units_html": _figure_html(units_bar(r), "fig-units", "Units per arm")
        if r.data.units
        else None,
        "descriptive": sections.descriptive(r),
        "data": _record(r.data),
        "srm": _record(r.srm),
        "validation": _record(r.validation),
        "validation_href": page,
        "failed_expectations": health.failure_items(r),
        "confidence": _confidence(experiment.alpha),
        "plotly_src": src,
        "pushdown": _record(r.pushed_down),
        "pushed_down_missing": list(r.pushed_down.not_available) if r.pushed_down else [],
        "failures": failure_context(r),
    }
    return _environment().get_template("report.html").render(context)


def render_validation(
    results: Results | Mapping[str, Any], *, report_href: str = REPORT_PAGE
) -> str:
    """The run's data quality page (``validation.html``): no script, readable offline.

    Every failed expectation with its severity, unexpected count and examples;
    how many expectations ran and passed; rows validated per table; and the
    rows and units removed while cleaning (quarantined, duplicate, crossover).
    """
    r = _check_schema(results)
    context = {
        "title": r.experiment.name or r.experiment_id,
        "experiment_id": r.experiment_id,
        "run_id": r.run_id,
        "analysis_date": r.analysis_date,
        "generated": sections.header(r)["generated"],
        "report_href": safe_page(report_href),
        "v": sections.validation_context(r),
    }
    return _environment().get_template("validation.html").render(context)


def render_run_files(
    results: Results | Mapping[str, Any], plotly_src: str, changes: Changes | None = None
) -> dict[str, str]:
    """The HTML pages of one run, by file name: ``report.html`` and ``validation.html``.

    The report links the data quality page, and says what moved since the
    previous run when given its ``changes``; pass the result, with
    ``results.json``, to :func:`analysis.report.publish.publish_run`.
    """
    r = _check_schema(results)
    return {
        REPORT_PAGE: render_report(r, plotly_src, validation_href=VALIDATION_PAGE, changes=changes),
        VALIDATION_PAGE: render_validation(r, report_href=REPORT_PAGE),
    }


def render_index(entries: Sequence[Mapping[str, Any]], plotly_src: str | None = None) -> str:
    """The site index: a sortable, filterable table of experiments, latest run first.

    ``entries`` has the shape returned by
    :func:`analysis.report.site_index.collect_index_entries`.  The index has no
    chart, so it loads plotly.js only when ``plotly_src`` is given.
    """
    src = _check_plotly_src(plotly_src) if plotly_src is not None else None
    return (
        _environment()
        .get_template("index.html")
        .render(entries=list(entries), plotly_src=src, goal_text=GOAL_TEXT)
    )
