"""Data checks in plain words: what an expectation of ``validation`` means.

Checks are named in plain words (:func:`check_words`: "every event has a
unit", "each unit is in one arm only"), read from what results.json records of
each expectation (table, GX type, column, row condition and the suite's rule
name, ``meta.reason``); the GX name stays beside them in small print
(:func:`check_item`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from analysis.report.text import finite, fmt_count
from analysis.results.model import ExpectationRecord

__all__ = ["as_expectation", "check_item", "check_words", "expectation_text", "failure_item"]

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
    "label": "a label",
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


def as_expectation(record: ExpectationRecord | Mapping[str, Any]) -> ExpectationRecord:
    """``record`` as the typed record: a dict (an entry of a parsed results.json) is validated."""
    if isinstance(record, ExpectationRecord):
        return record
    return ExpectationRecord.model_validate(record)


def _value_rule(record: ExpectationRecord) -> str:
    """A per-event value rule: ``every ai_latency event has a value in its allowed range``."""
    match = _CONDITION.match(record.condition or "")
    which = f"every {match.group(2)} event" if match else "every event"
    if record.expectation == "expect_column_values_to_be_in_set":
        if record.value_set:
            return f"{which} has a value of {', '.join(_bound(v) for v in record.value_set)}"
        return f"{which} has one of its allowed values"
    low, high = record.min_value, record.max_value
    if finite(low) and finite(high):
        return f"{which} has a value between {_bound(low)} and {_bound(high)}"
    if finite(low):
        return f"{which} has a value of at least {_bound(low)}"
    if finite(high):
        return f"{which} has a value of at most {_bound(high)}"
    return f"{which} has a value in its allowed range"


def check_words(record: ExpectationRecord | Mapping[str, Any]) -> str | None:
    """What a data check means, in plain words, or None for a check it does not know.

    ``record`` is an entry of ``validation.failed_expectations`` or
    ``validation.expectations`` (``table``, ``expectation``, ``column``,
    ``condition``, ``reason``); the bounds of a value rule (``min_value``,
    ``max_value``, ``value_set``) are named when the record carries them.
    Checks are recognised by the rule name the suites give (``meta.reason``),
    then by table, GX type and column.
    """
    r = as_expectation(record)
    table = r.table or ""
    kind = r.expectation or ""
    column = r.column or ""
    if r.reason == "value_out_of_range" or (
        table == "events" and column == "value" and r.condition
    ):
        return _value_rule(r)
    if r.reason is not None and (table, r.reason) in _RULE_WORDS:
        return _RULE_WORDS[table, r.reason]
    if kind == "expect_column_values_to_not_be_null" and table in _ROW_NOUN:
        noun = _COLUMN_NOUN.get(column)
        if noun is not None:
            return f"every {_ROW_NOUN[table]} has {noun}"
    for key in ((table, kind, column or None), (table, kind, "")):
        if key in _TABLE_WORDS:
            return _TABLE_WORDS[key].format(column=_metric_column(column))
    if kind in _TYPE_WORDS and (column or "{column}" not in _TYPE_WORDS[kind]):
        return _TYPE_WORDS[kind].format(table=table, column=column.replace(",", " and "))
    return None


def _where(record: ExpectationRecord) -> str:
    where = f"{record.table}.{record.column}" if record.column else str(record.table)
    return f"{where} where {record.condition}" if record.condition else where


def check_item(record: ExpectationRecord) -> dict[str, Any]:
    """A data check for the pages: its plain words, and the GX name for the small print."""
    words = check_words(record)
    gx = str(record.expectation)
    return {
        "words": words or gx,
        "plain": words is not None,
        "gx": gx,
        "where": _where(record),
        "severity": record.severity,
        "unexpected_count": record.unexpected_count,
        "explain": record.explain,
    }


def failure_item(record: ExpectationRecord) -> dict[str, Any]:
    """A failed check for a banner or the data section: words first, then how much broke."""
    item = check_item(record)
    count = record.unexpected_count
    rows = f": {fmt_count(count)} row(s) broke it" if count is not None else ""
    item["text"] = f"{item['words']}{rows} ({record.severity})"
    return item


def expectation_text(failed: ExpectationRecord) -> str:
    """``[critical] every event has a unit (events.unit_id, expect_...), 57 unexpected row(s)``."""
    item = check_item(failed)
    count = failed.unexpected_count
    rows = f", {fmt_count(count)} unexpected row(s)" if count is not None else ""
    gx = f"{item['where']}, {item['gx']}" if item["plain"] else item["where"]
    return f"[{failed.severity}] {item['words']} ({gx}){rows}"
