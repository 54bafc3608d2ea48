"""Health of a run in words: the banners above the results, and the index's short list.

A banner is a problem that must be seen before any number is read: a sample
ratio mismatch, failed or warning data checks, arms that differed before
exposure, a primary metric that cannot yet detect the planned effect.  The
thresholds are those the results carry (``srm.flagged``, ``pre_exposure.flagged``,
``power.planned_mde``); nothing is tested here.

Data checks are named in plain words (:func:`check_words`: "every event has a
unit", "each unit is in one arm only"), read from what results.json records of
each expectation (table, GX type, column, row condition and the suite's rule
name, ``meta.reason``); the GX name stays beside them in small print.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from analysis.report.figures import underpowered
from analysis.report.formatting import (
    finite,
    fmt_count,
    fmt_days,
    fmt_p,
    fmt_p_eq,
    fmt_pct,
    fmt_share,
    primary_metric,
)

__all__ = [
    "banners",
    "check_item",
    "check_words",
    "expectation_text",
    "failure_items",
    "health_checks",
    "health_problems",
]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


# --------------------------------------------------------------------------- data checks

#: What one row of a table is, in words.
_ROW_NOUN: Final[Mapping[str, str]] = {"assignments": "assignment", "events": "event"}
#: What a column holds, in words, with its article ("every event has a unit").
_COLUMN_NOUN: Final[Mapping[str, str]] = {
    "experiment_id": "an experiment id",
    "unit_id": "a unit",
    "variant": "an arm",
    "assigned_at": "an assignment time",
    "event_id": "an id",
    "ts": "a time",
    "event": "an event name",
    "value": "a value",
    "task_id": "a task id",
}
#: Checks named by the rule the suites give them (``meta.reason``), per table.
_RULE_WORDS: Final[Mapping[tuple[str, str], str]] = {
    ("assignments", "unknown_variant"): "every unit is assigned to an arm the experiment defines",
    ("assignments", "assigned_out_of_range"): (
        "units are assigned between the experiment's start and its end, never in the future"
    ),
    ("assignments", "crossover"): "each unit is in one arm only",
    ("assignments", "duplicate_assignment"): "each unit is assigned once",
    ("events", "duplicate_event_id"): "each event is recorded once (no repeated event id)",
    ("events", "ts_in_future"): "no event is timed after the run",
    ("events", "ts_before_window"): (
        "no event is older than the experiment's start minus its pre-period"
    ),
    ("events", "non_finite_value"): "every event value is a finite number (not NaN or infinite)",
}
#: Checks of a whole table, or of one column of a table, that carry no rule name.
_TABLE_WORDS: Final[Mapping[tuple[str, str, str | None], str]] = {
    ("assignments", "expect_table_row_count_to_be_between", None): "the experiment has assignments",
    ("events", "expect_table_row_count_to_be_between", None): "the experiment's units have events",
    ("events", "expect_unassigned_event_share_to_be_at_most", "unit_id"): (
        "almost every event of the experiment's period belongs to an assigned unit"
    ),
    ("unit_metrics", "expect_table_row_count_to_equal", None): (
        "every analysed unit has exactly one row of metrics"
    ),
    ("unit_metrics", "expect_column_values_to_not_be_null", "unit_id"): (
        "every row of metrics names its unit"
    ),
    ("unit_metrics", "expect_column_values_to_be_unique", "unit_id"): (
        "no unit has two rows of metrics"
    ),
    ("unit_metrics", "expect_column_values_to_be_in_set", "variant"): (
        "every unit's metrics are in an arm the experiment defines"
    ),
    ("unit_metrics", "expect_column_values_to_not_be_null", ""): (
        "every unit has a value of {column}"
    ),
    ("unit_metrics", "expect_column_values_to_be_between", ""): (
        "every unit's {column} is within its possible range"
    ),
}
#: Any other check, by its GX type: ``{table}`` and ``{column}`` are filled in.
_TYPE_WORDS: Final[Mapping[str, str]] = {
    "expect_table_row_count_to_be_between": "the {table} table has rows",
    "expect_table_row_count_to_equal": "the {table} table has the expected number of rows",
    "expect_column_to_exist": "the {table} table has a column {column}",
    "expect_column_values_to_be_of_type": "{column} values in {table} have the contract's type",
    "expect_column_values_to_not_be_null": "every row of {table} has a {column}",
    "expect_column_values_to_be_unique": "no {column} appears twice in {table}",
    "expect_compound_columns_to_be_unique": "no combination of {column} appears twice in {table}",
    "expect_column_values_to_be_in_set": "every {column} in {table} is one of its allowed values",
    "expect_column_values_to_be_between": "every {column} in {table} is within its allowed range",
}
_PARTS: Final[Mapping[str, str]] = {
    "num": "numerator",
    "den": "denominator",
    "pre": "before exposure",
}
_CONDITION: Final = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*"((?:[^"\\]|\\.)*)"\s*$')


def _metric_column(column: str) -> str:
    """A per-unit metric column in words: ``time_on_task__den__pre`` ->
    ``time_on_task (denominator, before exposure)``."""
    name, *parts = column.split("__")
    known = [_PARTS[p] for p in parts if p in _PARTS]
    return f"{name} ({', '.join(known)})" if known and len(known) == len(parts) else column


def _bound(value: object) -> str:
    if isinstance(value, bool) or not finite(value):
        return str(value)
    number = float(value)
    return f"{number:,.0f}" if number == int(number) else f"{number:,.6g}"


def _value_rule(record: Mapping[str, Any]) -> str:
    """A per-event value rule: ``every ai_latency event has a value in its allowed range``."""
    match = _CONDITION.match(str(record.get("condition") or ""))
    which = f"every {match.group(2)} event" if match else "every event"
    if record.get("expectation") == "expect_column_values_to_be_in_set":
        values = _list(record.get("value_set"))
        if values:
            return f"{which} has a value of {', '.join(_bound(v) for v in values)}"
        return f"{which} has one of its allowed values"
    low, high = record.get("min_value"), record.get("max_value")
    if finite(low) and finite(high):
        return f"{which} has a value between {_bound(low)} and {_bound(high)}"
    if finite(low):
        return f"{which} has a value of at least {_bound(low)}"
    if finite(high):
        return f"{which} has a value of at most {_bound(high)}"
    return f"{which} has a value in its allowed range"


def check_words(record: Mapping[str, Any]) -> str | None:
    """What a data check means, in plain words, or None for a check it does not know.

    ``record`` is an entry of ``validation.failed_expectations`` or
    ``validation.expectations`` (``table``, ``expectation``, ``column``,
    ``condition``, ``reason``); the bounds of a value rule (``min_value``,
    ``max_value``, ``value_set``) are named when the record carries them.
    Checks are recognised by the rule name the suites give (``meta.reason``),
    then by table, GX type and column.
    """
    table = str(record.get("table") or "")
    kind = str(record.get("expectation") or "")
    column = record.get("column")
    column_text = str(column) if column else ""
    reason = record.get("reason")
    if reason == "value_out_of_range" or (
        table == "events" and column == "value" and record.get("condition")
    ):
        return _value_rule(record)
    if isinstance(reason, str) and (table, reason) in _RULE_WORDS:
        return _RULE_WORDS[table, reason]
    if kind == "expect_column_values_to_not_be_null" and table in _ROW_NOUN:
        noun = _COLUMN_NOUN.get(column_text)
        if noun is not None:
            return f"every {_ROW_NOUN[table]} has {noun}"
    for key in ((table, kind, column or None), (table, kind, "")):
        if key in _TABLE_WORDS:
            return _TABLE_WORDS[key].format(column=_metric_column(column_text))
    if kind in _TYPE_WORDS and (column or "{column}" not in _TYPE_WORDS[kind]):
        return _TYPE_WORDS[kind].format(table=table, column=column_text.replace(",", " and "))
    return None


def _where(record: Mapping[str, Any]) -> str:
    column = record.get("column")
    where = f"{record.get('table')}.{column}" if column else str(record.get("table"))
    condition = record.get("condition")
    return f"{where} where {condition}" if condition else where


def check_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """A data check for the pages: its plain words, and the GX name for the small print."""
    words = check_words(record)
    gx = str(record.get("expectation"))
    return {
        "words": words or gx,
        "plain": words is not None,
        "gx": gx,
        "where": _where(record),
        "severity": record.get("severity"),
        "unexpected_count": record.get("unexpected_count"),
        "explain": record.get("explain"),
    }


def _failure_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """A failed check for a banner or the data section: words first, then how much broke."""
    item = check_item(record)
    count = record.get("unexpected_count")
    rows = f": {fmt_count(count)} row(s) broke it" if count is not None else ""
    item["text"] = f"{item['words']}{rows} ({record.get('severity')})"
    return item


def expectation_text(failed: Mapping[str, Any]) -> str:
    """``[critical] every event has a unit (events.unit_id, expect_...), 57 unexpected row(s)``."""
    item = check_item(failed)
    count = failed.get("unexpected_count")
    rows = f", {fmt_count(count)} unexpected row(s)" if count is not None else ""
    gx = f"{item['where']}, {item['gx']}" if item["plain"] else item["where"]
    return f"[{failed.get('severity')}] {item['words']} ({gx}){rows}"


def failure_items(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The failed data checks of a run, for the report's data section."""
    validation = _mapping(results.get("validation"))
    failed = _list(validation.get("failed_expectations"))
    return [_failure_item(f) for f in failed if isinstance(f, Mapping)]


def _primary(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    comparisons = [c for c in _list(results.get("comparisons")) if isinstance(c, Mapping)]
    marked = [c for c in comparisons if c.get("role") == "primary"]
    if marked:
        return marked
    name = primary_metric(results)
    return [c for c in comparisons if c.get("metric") == name]


def _arms_text(c: Mapping[str, Any]) -> str:
    return f"{c.get('treatment')} vs {c.get('control')}"


def banners(results: Mapping[str, Any], validation_href: str | None) -> list[dict[str, Any]]:
    """Health problems that must be seen before any number is read, worst first."""
    found: list[dict[str, Any]] = []
    srm = _mapping(results.get("srm"))
    if srm.get("flagged"):
        expected = _mapping(srm.get("expected"))
        observed = _mapping(srm.get("observed"))
        found.append(
            {
                "level": "critical",
                "id": "srm",
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
                "link": None,
            }
        )
    validation = _mapping(results.get("validation"))
    failed = [f for f in _list(validation.get("failed_expectations")) if isinstance(f, Mapping)]
    link = (
        {"href": validation_href, "text": "See the data quality page"} if validation_href else None
    )
    if validation.get("success") is False:
        found.append(
            {
                "level": "critical",
                "id": "validation",
                "title": "Data validation failed",
                "text": (
                    f"{len(failed)} of {fmt_count(validation.get('expectations_evaluated'))} "
                    "data checks failed. The numbers below were computed from data that broke "
                    "the contract; treat them with suspicion."
                ),
                "items": [_failure_item(f) for f in failed],
                "link": link,
            }
        )
    elif failed:
        found.append(
            {
                "level": "warning",
                "id": "validation",
                "title": "Data validation warnings",
                "text": f"{len(failed)} non-critical data check(s) failed.",
                "items": [_failure_item(f) for f in failed],
                "link": link,
            }
        )
    pre = _mapping(results.get("pre_exposure"))
    flagged = [str(f) for f in _list(pre.get("flagged"))]
    if flagged:
        adjusted = _mapping(pre.get("p_values_adjusted"))
        found.append(
            {
                "level": "warning",
                "id": "pre-exposure",
                "title": "Arms differed before the experiment",
                "text": (
                    "Before anyone saw the feature, these metrics already differed between "
                    "arms more than chance allows. Randomisation or the data may be broken; "
                    "a difference after exposure may be partly old."
                ),
                "items": [f"{key}: adjusted p = {fmt_p(adjusted.get(key))}" for key in flagged],
                "link": None,
            }
        )
    weak = [c for c in _primary(results) if underpowered(c)]
    if weak:
        found.append(
            {
                "level": "warning",
                "id": "power",
                "title": "Primary metric underpowered",
                "text": (
                    "With the units so far, the test cannot yet reliably detect the effect the "
                    "experiment was planned for. An inconclusive result is expected; it is not "
                    "evidence of no effect."
                ),
                "items": [
                    f"{c.get('label') or c.get('metric')}, {_arms_text(c)}: detectable now "
                    f"\u00b1{fmt_pct(_mapping(c.get('power')).get('mde_relative'))}, planned "
                    f"\u00b1{fmt_pct(_mapping(c.get('power')).get('planned_mde'))}; time to the "
                    f"planned MDE: {fmt_days(_mapping(c.get('power')).get('days_to_planned_mde'))}"
                    for c in weak
                ],
                "link": {"href": "#power", "text": "See the power section"},
            }
        )
    return found


def health_checks(results: Mapping[str, Any]) -> list[str]:
    """The checks that passed, in words, for the reassuring line under the verdict."""
    passed: list[str] = []
    srm = _mapping(results.get("srm"))
    if srm and not srm.get("flagged") and finite(srm.get("p_value")):
        passed.append(f"arm sizes as planned (SRM {fmt_p_eq(srm.get('p_value'))})")
    validation = _mapping(results.get("validation"))
    if validation.get("success") is True and not validation.get("failed_expectations"):
        passed.append(
            f"all {fmt_count(validation.get('expectations_evaluated'))} data checks passed"
        )
    pre = _mapping(results.get("pre_exposure"))
    if pre and not pre.get("flagged"):
        passed.append(f"arms alike before exposure ({fmt_count(pre.get('tested'))} checks)")
    primary = _primary(results)
    powered = [c for c in primary if finite(_mapping(c.get("power")).get("mde_relative"))]
    if powered and not any(underpowered(c) for c in powered):
        passed.append("primary metric powered for the planned effect")
    return passed


_SHORT_PROBLEMS: Final[Mapping[str, str]] = {
    "srm": "sample ratio mismatch",
    "pre-exposure": "arms differed before exposure",
    "power": "primary metric underpowered",
}


def health_problems(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """The report's health banners in a few words each, for the index."""
    problems = []
    for banner in banners(results, None):
        if banner["id"] == "validation":
            text = (
                "data validation failed"
                if banner["level"] == "critical"
                else "data validation warnings"
            )
        else:
            text = _SHORT_PROBLEMS.get(banner["id"], str(banner["title"]).lower())
        problems.append({"level": banner["level"], "text": text})
    return problems
