"""HTML rendering of one run's report and of the site index, with jinja2.

The renderer reads a results dict (``results.json``, schema_version 1) and only
formats and arranges what is there: it never recomputes a statistic.  Every
string from data or config goes through jinja's autoescape; the only markup
inserted unescaped is the HTML that Plotly generates for the figures, whose
own labels are escaped in :mod:`analysis.report.figures`.

Pages are self-contained apart from ``plotly.min.js``, which is loaded from a
relative URL (``plotly_src``): no CDN, no inlined bundle, no other external
resource.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from analysis.report.figures import (
    VERDICT_COLORS,
    fmt_ci,
    fmt_count,
    fmt_lift,
    fmt_p,
    fmt_p_eq,
    fmt_share,
    fmt_value,
    forest_plot,
    lift_is_plottable,
    ordered_comparisons,
    units_bar,
)

__all__ = ["SUPPORTED_SCHEMA_VERSION", "render_index", "render_report"]

SUPPORTED_SCHEMA_VERSION: Final = 1

#: Text marks that repeat the verdict colour's meaning (same shapes as the forest plot).
VERDICT_MARKS: Final[Mapping[str, str]] = {
    "better": "\u25cf",  # ● filled circle
    "worse": "\u2715",  # ✕ cross
    "inconclusive": "\u25c7",  # ◇ open diamond
}
RECOMMENDATION_CLASSES: Final[Mapping[str, str]] = {
    "ship": "ship",
    "don't ship": "dont-ship",
    "keep running": "keep-running",
    "investigate": "investigate",
}
_GOAL_TEXT: Final[Mapping[str, str]] = {
    "increase": "\u2191 higher is better",
    "decrease": "\u2193 lower is better",
}
_PLOTLY_CONFIG: Final[Mapping[str, Any]] = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}


@functools.cache
def _environment() -> Environment:
    env = Environment(
        autoescape=True,
        loader=PackageLoader("analysis", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        lift=fmt_lift,
        ci=fmt_ci,
        p=fmt_p,
        p_eq=fmt_p_eq,
        value=fmt_value,
        count=fmt_count,
        share=fmt_share,
        verdict_mark=lambda verdict: VERDICT_MARKS.get(str(verdict), "?"),
        recommendation_class=lambda rec: RECOMMENDATION_CLASSES.get(str(rec), "unknown"),
    )
    env.globals["verdict_colors"] = VERDICT_COLORS
    return env


def _check_plotly_src(plotly_src: str) -> str:
    """Refuse absolute URLs with a scheme or host: the bundle is served next to the reports."""
    src = plotly_src.strip()
    if not src or "://" in src or src.startswith("//") or src.lower().startswith("data:"):
        msg = f"plotly_src must be a relative URL to the shared plotly.min.js, got {plotly_src!r}"
        raise ValueError(msg)
    return src


def _figure_html(fig: Any, div_id: str) -> Markup:
    """Plotly's own HTML for a figure, without the plotly.js bundle."""
    html: str = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=dict(_PLOTLY_CONFIG),
        default_height=f"{int(fig.layout.height or 400)}px",
    )
    # Trusted markup: Plotly escapes "<", ">" and "/" in its JSON, and every data
    # string in the figure was HTML-escaped by analysis.report.figures.
    return Markup(html)


def _arms(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    variants: Mapping[str, Any] = experiment.get("variants") or {}
    units: Mapping[str, Any] = (results.get("data") or {}).get("units") or {}
    names = [*variants, *[u for u in units if u not in variants]]
    return [
        {
            "name": name,
            "share": (variants.get(name) or {}).get("share"),
            "ai": (variants.get(name) or {}).get("ai"),
            "is_control": name == experiment.get("control"),
            "units": units.get(name),
        }
        for name in names
    ]


def _banners(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Health problems that must be seen before any number is read."""
    banners: list[dict[str, Any]] = []
    srm: Mapping[str, Any] = results.get("srm") or {}
    if srm.get("flagged"):
        expected: Mapping[str, Any] = srm.get("expected") or {}
        observed: Mapping[str, Any] = srm.get("observed") or {}
        banners.append(
            {
                "level": "critical",
                "title": "Sample ratio mismatch",
                "text": (
                    "The arms' sizes do not match the configured split (SRM test "
                    f"{fmt_p_eq(srm.get('p_value'))}). Assignment or logging may be broken: "
                    "do not trust the comparisons below until this is explained."
                ),
                "items": [
                    f"{arm}: {fmt_count(observed.get(arm))} units observed, "
                    f"{fmt_share(expected.get(arm))} expected"
                    for arm in [*expected, *[a for a in observed if a not in expected]]
                ],
            }
        )
    validation: Mapping[str, Any] = results.get("validation") or {}
    failed: Sequence[Mapping[str, Any]] = validation.get("failed_expectations") or []
    items = [_expectation_text(f) for f in failed]
    if validation.get("success") is False:
        banners.append(
            {
                "level": "critical",
                "title": "Data validation failed",
                "text": (
                    f"{len(failed)} of {fmt_count(validation.get('expectations_evaluated'))} "
                    "data checks failed. The numbers below were computed from data that broke "
                    "the contract; treat them with suspicion."
                ),
                "items": items,
            }
        )
    elif failed:
        banners.append(
            {
                "level": "warning",
                "title": "Data validation warnings",
                "text": f"{len(failed)} non-critical data check(s) failed.",
                "items": items,
            }
        )
    return banners


def _expectation_text(failed: Mapping[str, Any]) -> str:
    column = failed.get("column")
    where = f"{failed.get('table')}.{column}" if column else str(failed.get("table"))
    count = failed.get("unexpected_count")
    rows = f", {fmt_count(count)} unexpected row(s)" if count is not None else ""
    return f"[{failed.get('severity')}] {where}: {failed.get('expectation')}{rows}"


def _comparison_row(comparison: Mapping[str, Any]) -> dict[str, Any]:
    kind = comparison.get("kind")
    details: list[str] = []
    if comparison.get("method"):
        details.append(str(comparison["method"]))
    cuped: Mapping[str, Any] = comparison.get("cuped") or {}
    if cuped.get("applied"):
        reduction = cuped.get("variance_reduction")
        share = f" (variance {fmt_lift(-reduction)})" if isinstance(reduction, int | float) else ""
        details.append(f"CUPED applied{share}")
    sequential: Mapping[str, Any] = comparison.get("sequential") or {}
    if fmt_ci(sequential.get("lift_ci")) != fmt_ci(None):
        details.append(
            f"always-valid CI {fmt_ci(sequential.get('lift_ci'))}, "
            f"{fmt_p_eq(sequential.get('p_value'))}"
        )
    note = comparison.get("note")
    if note:
        details.append(str(note))
    verdict = str(comparison.get("verdict") or "inconclusive")
    return {
        "label": comparison.get("label") or comparison.get("metric"),
        "metric": comparison.get("metric"),
        "goal": _GOAL_TEXT.get(str(comparison.get("goal")), ""),
        "control": comparison.get("control"),
        "treatment": comparison.get("treatment"),
        "n_control": comparison.get("n_control"),
        "n_treatment": comparison.get("n_treatment"),
        "mean_control": fmt_value(comparison.get("mean_control"), kind),
        "mean_treatment": fmt_value(comparison.get("mean_treatment"), kind),
        "lift": comparison.get("lift"),
        "lift_ci": comparison.get("lift_ci"),
        "p_value": comparison.get("p_value"),
        "p_value_adjusted": comparison.get("p_value_adjusted"),
        "verdict": verdict,
        "verdict_class": verdict if verdict in VERDICT_MARKS else "unknown",
        "details": details,
        "note": note,
    }


def _descriptive(results: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive list pivoted to one row per metric, one column per arm."""
    entries: Sequence[Mapping[str, Any]] = results.get("descriptive") or []
    arms = [a["name"] for a in _arms(results)]
    arms += [str(e.get("variant")) for e in entries if str(e.get("variant")) not in arms]
    arms = list(dict.fromkeys(arms))
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        key = str(entry.get("metric"))
        row = rows.setdefault(key, {"label": entry.get("label") or key, "cells": {}})
        row["cells"][str(entry.get("variant"))] = {
            "value": fmt_value(entry.get("value")),
            "n": entry.get("n"),
        }
    used = [a for a in arms if any(a in r["cells"] for r in rows.values())]
    return {
        "arms": used,
        "rows": [
            {"label": r["label"], "cells": [r["cells"].get(a) for a in used]} for r in rows.values()
        ],
    }


def _confidence(alpha: object) -> str:
    if isinstance(alpha, int | float) and 0 < alpha < 1:
        return f"{(1 - alpha) * 100:.4g}%"
    return "1 \u2212 alpha"


def render_report(results: Mapping[str, Any], plotly_src: str) -> str:
    """The HTML report of one run.

    ``plotly_src`` is the relative URL of the shared ``plotly.min.js`` (for a
    report published at ``<out>/<experiment>/<run>/report.html``:
    ``"../../assets/plotly.min.js"``).
    """
    version = results.get("schema_version")
    if version != SUPPORTED_SCHEMA_VERSION:
        msg = f"unsupported results schema_version {version!r} (expected 1)"
        raise ValueError(msg)
    src = _check_plotly_src(plotly_src)
    experiment: Mapping[str, Any] = results.get("experiment") or {}
    comparisons: Sequence[Mapping[str, Any]] = results.get("comparisons") or []
    srm: Mapping[str, Any] = results.get("srm") or {}
    data: Mapping[str, Any] = results.get("data") or {}
    decision: Mapping[str, Any] = results.get("decision") or {}
    context = {
        "title": experiment.get("name") or results.get("experiment_id"),
        "experiment": experiment,
        "experiment_id": results.get("experiment_id"),
        "run_id": results.get("run_id"),
        "analysis_date": results.get("analysis_date"),
        "generated_at": results.get("generated_at"),
        "arms": _arms(results),
        "recommendation": decision.get("recommendation") or "no decision",
        "reasons": decision.get("reasons") or [],
        "banners": _banners(results),
        "scorecard": [
            {"category": category, "rows": [_comparison_row(c) for c in items]}
            for category, items in ordered_comparisons(comparisons)
        ],
        "has_sequential": any(
            (c.get("sequential") or {}).get("lift_ci") is not None for c in comparisons
        ),
        "unplotted": [_comparison_row(c) for c in comparisons if not lift_is_plottable(c)],
        "forest_html": _figure_html(forest_plot(results), "forest-plot") if comparisons else None,
        "units_html": _figure_html(units_bar(results), "units-bar") if data.get("units") else None,
        "descriptive": _descriptive(results),
        "data": data,
        "srm": srm,
        "validation": results.get("validation") or {},
        "failed_expectations": [
            _expectation_text(f)
            for f in (results.get("validation") or {}).get("failed_expectations") or []
        ],
        "confidence": _confidence(experiment.get("alpha")),
        "plotly_src": src,
    }
    return _environment().get_template("report.html").render(context)


def render_index(entries: Sequence[Mapping[str, Any]], plotly_src: str | None = None) -> str:
    """The site index: one card per experiment, latest run first.

    ``entries`` has the shape returned by
    :func:`analysis.report.publish.collect_index_entries`.  The index has no
    chart, so it loads plotly.js only when ``plotly_src`` is given.
    """
    src = _check_plotly_src(plotly_src) if plotly_src is not None else None
    return (
        _environment()
        .get_template("index.html")
        .render(entries=list(entries), plotly_src=src, goal_text=_GOAL_TEXT)
    )
