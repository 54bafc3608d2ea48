"""The report's sections as plain template contexts, picked from a results dict.

Each function reads results (``results.json``, schema_version 1) and returns
dicts and lists of numbers and strings for the jinja templates.  Nothing is
estimated: values are chosen, compared with the thresholds the results carry
(``planned_mde``, ``alpha``) and formatted.  Strings are left raw here; the
templates escape them.  The health banners are in :mod:`analysis.report.health`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from analysis.report.figures import underpowered
from analysis.report.formatting import (
    BASIS_TEXT,
    VERDICT_MARKS,
    basis_view,
    finite,
    fmt_chance,
    fmt_ci,
    fmt_count,
    fmt_date_time,
    fmt_days,
    fmt_lift,
    fmt_number,
    fmt_p,
    fmt_p_eq,
    fmt_pct,
    fmt_value,
    parse_date,
    parse_datetime,
    why_inconclusive,
)
from analysis.report.health import check_item

_DASH: Final = "\u2013"

__all__ = [
    "GOAL_TEXT",
    "arms",
    "comparison_row",
    "descriptive",
    "exposure_rows",
    "family_sizes",
    "header",
    "heterogeneity_rows",
    "power_rows",
    "validation_context",
]

GOAL_TEXT: Final[Mapping[str, str]] = {
    "increase": "\u2191 higher is better",
    "decrease": "\u2193 lower is better",
}


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _arms_text(c: Mapping[str, Any]) -> str:
    return f"{c.get('treatment')} vs {c.get('control')}"


# --------------------------------------------------------------------------- header


def arms(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each arm: name, planned share, AI or not, control or not, units analysed."""
    experiment = _mapping(results.get("experiment"))
    variants = _mapping(experiment.get("variants"))
    units = _mapping(_mapping(results.get("data")).get("units"))
    names = [*variants, *[u for u in units if u not in variants]]
    return [
        {
            "name": name,
            "share": _mapping(variants.get(name)).get("share"),
            "ai": _mapping(variants.get(name)).get("ai"),
            "is_control": name == experiment.get("control"),
            "units": units.get(name),
        }
        for name in names
    ]


def header(results: Mapping[str, Any]) -> dict[str, Any]:
    """Dates in words: how far the experiment has run, and how fresh the results are."""
    experiment = _mapping(results.get("experiment"))
    start = parse_date(experiment.get("start"))
    end = parse_date(experiment.get("end"))
    as_of = parse_date(results.get("analysis_date"))
    generated = parse_datetime(results.get("generated_at"))
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
        "generated": fmt_date_time(results.get("generated_at")),
        "generated_iso": generated.isoformat() if generated else None,
        "freshness": freshness,
    }


# --------------------------------------------------------------------------- comparisons


def noninferiority(c: Mapping[str, Any]) -> dict[str, str] | None:
    """A guardrail's non-inferiority status in words, or None without a margin."""
    ni = c.get("noninferiority")
    if not isinstance(ni, Mapping):
        return None
    margin = ni.get("margin")
    goal = c.get("goal")
    allowed = (
        f"may rise by at most {fmt_pct(margin)}"
        if goal == "decrease"
        else f"may fall by at most {fmt_pct(margin)}"
    )
    level = ni.get("level")
    interval = (
        f"the {'always-valid ' if ni.get('basis') == 'sequential' else ''}"
        f"{fmt_pct(level, 0)} interval"
        if finite(level)
        else "the interval"
    )
    bound = f"{fmt_lift(ni.get('bound'))} (the end of {interval})"
    if ni.get("passed"):
        return {
            "status": "better",
            "mark": "\u2713",
            "title": "passed",
            "text": f"passed: it {allowed}, and the worst plausible change is {bound}",
        }
    if ni.get("inferior"):
        return {
            "status": "worse",
            "mark": VERDICT_MARKS["worse"],
            "title": "failed (inferior)",
            "text": f"failed: it {allowed}, and the change is shown to go beyond that "
            f"(the best plausible change is still beyond it; worst {bound})",
        }
    reason = f" ({ni['reason']})" if ni.get("reason") else ""
    return {
        "status": "inconclusive",
        "mark": VERDICT_MARKS["inconclusive"],
        "title": "not yet shown",
        "text": f"not yet shown: it {allowed}, but the worst plausible change is {bound}{reason}",
    }


def _details(c: Mapping[str, Any], view: Mapping[str, Any]) -> list[tuple[str, str]]:
    cuped = _mapping(c.get("cuped"))
    sequential = _mapping(c.get("sequential"))
    bayes = _mapping(c.get("bayes"))
    power = _mapping(c.get("power"))
    out = [
        ("Units", f"{fmt_count(c.get('n_treatment'))} ({c.get('treatment')}) vs "
                  f"{fmt_count(c.get('n_control'))} ({c.get('control')})"),
        ("Fixed-horizon test", f"{c.get('method') or _DASH}: lift {fmt_lift(c.get('lift'))} "
                               f"{fmt_ci(c.get('lift_ci'))}, {fmt_p_eq(c.get('p_value'))}, "
                               f"adjusted {fmt_p_eq(c.get('p_value_adjusted'))}"),
    ]  # fmt: skip
    if cuped.get("applied"):
        reduction = cuped.get("variance_reduction")
        out.append(
            (
                "CUPED",
                f"applied ({cuped.get('method') or 'pre-period covariate'}): "
                f"{fmt_pct(reduction)} less variance; lift {fmt_lift(cuped.get('lift'))} "
                f"{fmt_ci(cuped.get('lift_ci'))}",
            )
        )
    elif cuped:
        out.append(("CUPED", f"not applied: {cuped.get('reason') or 'no reason given'}"))
    if sequential.get("lift_ci") is not None or sequential.get("reason"):
        out.append(
            (
                "Always-valid (sequential)",
                f"CI {fmt_ci(sequential.get('lift_ci'))}, {fmt_p_eq(sequential.get('p_value'))}"
                if sequential.get("lift_ci") is not None
                else f"not available: {sequential.get('reason')}",
            )
        )
    out.append(
        (
            "Verdict basis",
            f"{BASIS_TEXT.get(view['basis'], view['basis'])}, adjusted {fmt_p_eq(view['p_value'])}",
        )
    )
    if finite(bayes.get("chance_to_win")):
        out.append(
            (
                "Bayesian reading",
                f"chance to win {fmt_chance(bayes.get('chance_to_win'))}, expected loss "
                f"{fmt_pct(bayes.get('expected_loss'), 2)}, credible interval "
                f"{fmt_ci(bayes.get('credible_interval'))}; prior: {bayes.get('prior') or _DASH}",
            )
        )
    elif bayes.get("reason"):
        out.append(("Bayesian reading", f"not available: {bayes['reason']}"))
    if finite(power.get("mde_relative")):
        days = fmt_days(power.get("days_to_planned_mde"))
        out.append(
            (
                "Power",
                f"detectable now \u00b1{fmt_pct(power.get('mde_relative'))}, planned "
                f"\u00b1{fmt_pct(power.get('planned_mde'))}; time to the planned MDE: {days}",
            )
        )
    elif power.get("reason"):
        out.append(("Power", str(power["reason"])))
    ni = noninferiority(c)
    if ni is not None:
        out.append(("Non-inferiority", ni["text"]))
    if c.get("note"):
        out.append(("Note", str(c["note"])))
    return out


def family_sizes(comparisons: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many comparisons were adjusted together, per role (analysis.comparisons).

    Holm runs within the primary and within the secondary metrics × arms, over
    the comparisons with a p-value of the verdict's basis; guardrails are not
    adjusted, so they have no family here.
    """
    sizes: dict[str, int] = {}
    for c in comparisons:
        role = str(c.get("role"))
        if role in ("primary", "secondary") and basis_view(c)["raw_p_value"] is not None:
            sizes[role] = sizes.get(role, 0) + 1
    return sizes


def comparison_row(
    c: Mapping[str, Any], *, alpha: object = None, family_size: int | None = None
) -> dict[str, Any]:
    """One scorecard row: the basis lift and interval, the verdict, and every detail.

    ``alpha`` (the experiment's, 0.05 when not given) and ``family_size`` (how many
    comparisons were adjusted together) let :func:`why_inconclusive` say why an
    inconclusive verdict sits beside an interval that excludes 0 (``why``).
    """
    kind = c.get("kind")
    view = basis_view(c)
    verdict = str(c.get("verdict") or "inconclusive")
    details = _details(c, view)
    why = why_inconclusive(
        c, alpha=float(alpha) if finite(alpha) else 0.05, family_size=family_size
    )
    if why is not None:
        details.insert(0, ("Why inconclusive", why))
    bayes = _mapping(c.get("bayes"))
    title = "\n".join(f"{name}: {text}" for name, text in details)
    return {
        "label": c.get("label") or c.get("metric"),
        "metric": c.get("metric"),
        "role": c.get("role"),
        "goal": GOAL_TEXT.get(str(c.get("goal")), ""),
        "control": c.get("control"),
        "treatment": c.get("treatment"),
        "n_control": c.get("n_control"),
        "n_treatment": c.get("n_treatment"),
        "mean_control": fmt_value(c.get("mean_control"), kind),
        "mean_treatment": fmt_value(c.get("mean_treatment"), kind),
        "lift": view["lift"],
        "lift_ci": view["ci"],
        "ci_kind": view["ci_kind"],
        "cuped": view["cuped"],
        "p_value": c.get("p_value"),
        "p_value_adjusted": view["p_value"],
        "chance_to_win": bayes.get("chance_to_win"),
        "verdict": verdict,
        "verdict_class": verdict if verdict in VERDICT_MARKS else "unknown",
        "noninferiority": noninferiority(c),
        "why": why,
        "details": details,
        "title": title,
        "note": c.get("note"),
    }


def descriptive(results: Mapping[str, Any]) -> dict[str, Any]:
    """The descriptive list pivoted to one row per metric, one column per arm."""
    entries = [e for e in _list(results.get("descriptive")) if isinstance(e, Mapping)]
    names = [a["name"] for a in arms(results)]
    names += [str(e.get("variant")) for e in entries if str(e.get("variant")) not in names]
    names = list(dict.fromkeys(names))
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        key = str(entry.get("metric"))
        row = rows.setdefault(key, {"label": entry.get("label") or key, "cells": {}})
        row["cells"][str(entry.get("variant"))] = {
            "value": fmt_value(entry.get("value")),
            "n": entry.get("n"),
        }
    used = [a for a in names if any(a in r["cells"] for r in rows.values())]
    return {
        "arms": used,
        "rows": [
            {"label": r["label"], "cells": [r["cells"].get(a) for a in used]} for r in rows.values()
        ],
    }


# --------------------------------------------------------------------------- tables


def _days_left(results: Mapping[str, Any]) -> int | None:
    end = parse_date(_mapping(results.get("experiment")).get("end"))
    as_of = parse_date(results.get("analysis_date"))
    return (end - as_of).days if end is not None and as_of is not None else None


def power_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """MDE now, planned MDE and days to go, per comparison with a power result.

    ``late`` marks comparisons that need more days than the experiment has left.
    """
    left = _days_left(results)
    rows = []
    for c in _list(results.get("comparisons")):
        power = _mapping(c.get("power"))
        if not power:
            continue
        rows.append(
            {
                "label": c.get("label") or c.get("metric"),
                "arms": _arms_text(c),
                "role": c.get("role"),
                "mde": fmt_pct(power.get("mde_relative")),
                "planned": fmt_pct(power.get("planned_mde")),
                "days": fmt_days(power.get("days_to_planned_mde")),
                "late": left is not None
                and finite(power.get("days_to_planned_mde"))
                and float(power["days_to_planned_mde"]) > left,
                "underpowered": underpowered(c),
                "reason": power.get("reason"),
            }
        )
    return rows


def heterogeneity_rows(
    results: Mapping[str, Any], metrics: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Heterogeneity tests: those of ``metrics`` (in that order), then all the others."""
    labels = {str(s.get("metric")): s.get("label") for s in _list(results.get("segments"))} | {
        str(c.get("metric")): c.get("label") for c in _list(results.get("comparisons"))
    }
    alpha = _mapping(results.get("experiment")).get("alpha")
    level = float(alpha) if finite(alpha) else 0.05
    rows = []
    for h in _list(results.get("heterogeneity")):
        if not isinstance(h, Mapping):
            continue
        p = h.get("p_value")
        rows.append(
            {
                "metric": str(h.get("metric")),
                "label": labels.get(str(h.get("metric"))) or h.get("metric"),
                "dimension": h.get("dimension"),
                "arms": _arms_text(h),
                "q": fmt_number(h.get("q")),
                "df": fmt_count(h.get("df")),
                "p": fmt_p(p),
                "i2": fmt_pct(h.get("i2"), 0),
                "differs": finite(p) and float(p) < level,
                "reason": h.get("reason"),
            }
        )
    shown = [r for m in metrics for r in rows if r["metric"] == m]
    others = [r for r in rows if r["metric"] not in metrics]
    return shown, others


def exposure_rows(results: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The trend of the lift per week of exposure, and a caveat shared by every row."""
    trends = [t for t in _list(results.get("exposure_trend")) if isinstance(t, Mapping)]
    reasons = {str(t.get("reason")) for t in trends if t.get("reason")}
    shared = reasons.pop() if len(reasons) == 1 and all(t.get("reason") for t in trends) else None
    rows = [
        {
            "label": t.get("label") or t.get("metric"),
            "arms": _arms_text(t),
            "weeks": len(_list(t.get("buckets"))),
            "slope": f"{fmt_lift(t.get('slope'))} per week" if finite(t.get("slope")) else "\u2013",
            "slope_ci": fmt_ci(t.get("slope_ci")),
            "p": fmt_p(t.get("p_value")),
            "reason": None if shared else t.get("reason"),
        }
        for t in trends
    ]
    return rows, shared


# --------------------------------------------------------------------------- validation page


def validation_context(results: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the data quality page shows: checks, failures, cleaning counts.

    Each check carries its plain words (``words``, from
    :func:`analysis.report.health.check_words`) and its GX name (``expectation``).

    ``validation.expectations`` (every expectation with its ``success``), when the
    results carry it, is listed in full; otherwise only the failed ones are.
    """
    validation = _mapping(results.get("validation"))
    data = _mapping(results.get("data"))
    failed = [f for f in _list(validation.get("failed_expectations")) if isinstance(f, Mapping)]
    evaluated = validation.get("expectations_evaluated")
    passed = (
        int(evaluated) - len(failed)
        if finite(evaluated) and int(evaluated) >= len(failed)
        else None
    )
    return {
        "success": validation.get("success"),
        "evaluated": evaluated,
        "passed": passed,
        "failed": [
            {
                **check_item(f),
                "table": f.get("table"),
                "column": f.get("column"),
                "condition": f.get("condition"),
                "expectation": f.get("expectation"),
                "severity": f.get("severity"),
                "critical": f.get("severity") == "critical",
                "unexpected_count": f.get("unexpected_count"),
                "examples": [str(e) for e in _list(f.get("examples"))][:20],
            }
            for f in failed
        ],
        "all": [
            {
                **check_item(e),
                "table": e.get("table"),
                "column": e.get("column"),
                "condition": e.get("condition"),
                "expectation": e.get("expectation"),
                "severity": e.get("severity"),
                "success": e.get("success"),
                "unexpected_count": e.get("unexpected_count"),
            }
            for e in _list(validation.get("expectations"))
            if isinstance(e, Mapping)
        ],
        "rows": [(str(k), v) for k, v in _mapping(validation.get("rows")).items()],
        "cleaning": [
            (
                "Rows quarantined by validation",
                data.get("quarantined_rows"),
                "rows the data checks set aside (for example assignments to an arm the "
                "config does not list)",
            ),
            (
                "Duplicate events dropped",
                data.get("duplicates_dropped"),
                "repeated event_id (delivery retries): one copy kept",
            ),
            (
                "Units excluded as crossovers",
                data.get("crossovers_excluded"),
                "units assigned to more than one arm, excluded from every metric",
            ),
        ],
        "events": data.get("events"),
    }
