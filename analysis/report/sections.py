"""The report's sections as plain template contexts, picked from the results.

Each function reads the results (:class:`~analysis.results.model.Results`)
and returns dicts and lists of numbers and strings for the jinja templates.
Nothing is estimated: values are chosen, compared with the thresholds the
results carry (``planned_mde``, ``alpha``) and formatted.  Strings are left
raw here; the templates escape them.  The scorecard rows are in
:mod:`analysis.report.sections_comparisons`, the health banners in
:mod:`analysis.report.health`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from analysis.report.checks import check_item
from analysis.report.formatting import underpowered
from analysis.report.text import (
    fmt_ci,
    fmt_count,
    fmt_date_time,
    fmt_days,
    fmt_lift,
    fmt_number,
    fmt_p,
    fmt_pct,
    fmt_value,
    parse_date,
    parse_datetime,
)
from analysis.results.model import Results
from analysis.results.records import ComparisonRecord, HeterogeneityRecord, TrendRecord

__all__ = [
    "arms",
    "descriptive",
    "exposure_rows",
    "header",
    "heterogeneity_rows",
    "power_rows",
    "validation_context",
]


def _arms_text(c: ComparisonRecord | HeterogeneityRecord | TrendRecord) -> str:
    return f"{c.treatment} vs {c.control}"


# --------------------------------------------------------------------------- header


def arms(results: Results) -> list[dict[str, Any]]:
    """Each arm: name, planned share, AI or not, control or not, units analysed."""
    variants = results.experiment.variants
    units = results.data.units
    names = [*variants, *[u for u in units if u not in variants]]
    return [
        {
            "name": name,
            "share": variants[name].share if name in variants else None,
            "ai": variants[name].ai if name in variants else None,
            "is_control": name == results.experiment.control,
            "units": units.get(name),
        }
        for name in names
    ]


def header(results: Results) -> dict[str, Any]:
    """Dates in words: how far the experiment has run, and how fresh the results are."""
    start = parse_date(results.experiment.start)
    end = parse_date(results.experiment.end)
    as_of = parse_date(results.analysis_date)
    generated = parse_datetime(results.generated_at)
    progress = None
    if start is not None and as_of is not None:
        day = (as_of - start).days + 1
        if end is not None:
            total = (end - start).days + 1
            left = (end - as_of).days
            progress = f"day {day} of {total}" + (
                f", {left} day{'s' if left != 1 else ''} to go"
                if left > 0
                else ", planned end reached"
            )
        else:
            progress = f"day {day}, no planned end"
    freshness = None
    if as_of is not None and generated is not None:
        data_end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
        hours = (generated - data_end).total_seconds() / 3600
        if hours >= 0:
            lag = f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
            freshness = f"{lag} after the end of the data"
        else:
            freshness = "before the end of the analysed day (the last day is partial)"
    return {
        "progress": progress,
        "data_until": f"end of {as_of.isoformat()} (UTC)" if as_of else None,
        "generated": fmt_date_time(results.generated_at),
        "generated_iso": generated.isoformat() if generated else None,
        "freshness": freshness,
    }


def descriptive(results: Results) -> dict[str, Any]:
    """The descriptive list pivoted to one row per metric, one column per arm."""
    entries = results.descriptive
    names = [a["name"] for a in arms(results)]
    names += [str(e.variant) for e in entries if str(e.variant) not in names]
    names = list(dict.fromkeys(names))
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        key = str(entry.metric)
        row = rows.setdefault(key, {"label": entry.label or key, "cells": {}})
        row["cells"][str(entry.variant)] = {"value": fmt_value(entry.value), "n": entry.n}
    used = [a for a in names if any(a in r["cells"] for r in rows.values())]
    return {
        "arms": used,
        "rows": [
            {"label": r["label"], "cells": [r["cells"].get(a) for a in used]} for r in rows.values()
        ],
    }


# --------------------------------------------------------------------------- tables


def _days_left(results: Results) -> int | None:
    end = parse_date(results.experiment.end)
    as_of = parse_date(results.analysis_date)
    return (end - as_of).days if end is not None and as_of is not None else None


def power_rows(results: Results) -> list[dict[str, Any]]:
    """MDE now, planned MDE and days to go, per comparison with a power result.

    ``late`` marks comparisons that need more days than the experiment has left.
    """
    left = _days_left(results)
    rows = []
    for c in results.comparisons:
        power = c.power
        if not power.model_fields_set:  # a record without a power entry
            continue
        days = power.days_to_planned_mde
        rows.append(
            {
                "label": c.label or c.metric,
                "arms": _arms_text(c),
                "role": c.role,
                "mde": fmt_pct(power.mde_relative),
                "planned": fmt_pct(power.planned_mde),
                "days": fmt_days(days),
                "late": left is not None and days is not None and days > left,
                "underpowered": underpowered(c),
                "reason": power.reason,
            }
        )
    return rows


def heterogeneity_rows(
    results: Results, metrics: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Heterogeneity tests: those of ``metrics`` (in that order), then all the others."""
    labels = {str(s.metric): s.label for s in results.segments} | {
        c.metric: c.label for c in results.comparisons
    }
    alpha = results.experiment.alpha
    level = alpha if alpha is not None else 0.05
    rows = []
    for h in results.heterogeneity:
        p = h.p_value
        rows.append(
            {
                "metric": str(h.metric),
                "label": labels.get(str(h.metric)) or h.metric,
                "dimension": h.dimension,
                "arms": _arms_text(h),
                "q": fmt_number(h.q),
                "df": fmt_count(h.df),
                "p": fmt_p(p),
                "i2": fmt_pct(h.i2, 0),
                "differs": p is not None and p < level,
                "reason": h.reason,
            }
        )
    shown = [r for m in metrics for r in rows if r["metric"] == m]
    others = [r for r in rows if r["metric"] not in metrics]
    return shown, others


def exposure_rows(results: Results) -> tuple[list[dict[str, Any]], str | None]:
    """The trend of the lift per week of exposure, and a caveat shared by every row."""
    trends = results.exposure_trend
    reasons = {t.reason for t in trends if t.reason}
    shared = reasons.pop() if len(reasons) == 1 and all(t.reason for t in trends) else None
    rows = [
        {
            "label": t.label or t.metric,
            "arms": _arms_text(t),
            "weeks": len(t.buckets),
            "slope": f"{fmt_lift(t.slope)} per week" if t.slope is not None else "\u2013",
            "slope_ci": fmt_ci(t.slope_ci),
            "p": fmt_p(t.p_value),
            "reason": None if shared else t.reason,
        }
        for t in trends
    ]
    return rows, shared


# --------------------------------------------------------------------------- validation page


def validation_context(results: Results) -> dict[str, Any]:
    """Everything the data quality page shows: checks, failures, cleaning counts.

    Each check carries its plain words (``words``, from
    :func:`analysis.report.checks.check_words`) and its GX name (``expectation``).

    ``validation.expectations`` (every expectation with its ``success``), when the
    results carry it, is listed in full; otherwise only the failed ones are.
    """
    validation = results.validation
    data = results.data
    failed = validation.failed_expectations
    evaluated = validation.expectations_evaluated
    passed = evaluated - len(failed) if evaluated is not None and evaluated >= len(failed) else None
    return {
        "success": validation.success,
        "evaluated": evaluated,
        "passed": passed,
        "failed": [
            {
                **check_item(f),
                "table": f.table,
                "column": f.column,
                "condition": f.condition,
                "expectation": f.expectation,
                "severity": f.severity,
                "critical": f.severity == "critical",
                "unexpected_count": f.unexpected_count,
                "examples": list(f.examples[:20]),
            }
            for f in failed
        ],
        "all": [
            {
                **check_item(e),
                "table": e.table,
                "column": e.column,
                "condition": e.condition,
                "expectation": e.expectation,
                "severity": e.severity,
                "success": e.success,
                "unexpected_count": e.unexpected_count,
            }
            for e in validation.expectations
        ],
        "rows": list(validation.rows.items()),
        "cleaning": [
            (
                "Rows quarantined by validation",
                data.quarantined_rows,
                "rows the data checks set aside (for example assignments to an arm the "
                "config does not list)",
            ),
            (
                "Duplicate events dropped",
                data.duplicates_dropped,
                "repeated event_id (delivery retries): one copy kept",
            ),
            (
                "Units excluded as crossovers",
                data.crossovers_excluded,
                "units assigned to more than one arm, excluded from every metric",
            ),
        ],
        "events": data.events,
    }
