"""The expectation suites of ``expectations/*.json``, filled in for one experiment.

A suite is GX's own serialised form (``name``, ``expectations[]`` of ``type``,
``kwargs``, ``meta``), committed with the code and never re-saved by a run.
Experiment-dependent values are placeholders the loader fills from a dict of
run parameters (:func:`run_params`):

- ``{"$param": "variants"}`` anywhere in ``kwargs`` or ``meta`` is replaced by
  the parameter's value;
- ``"$each": "value_ranges"`` as a key of ``kwargs`` repeats the expectation
  once per item of that list parameter, each item's keys merged into ``kwargs``
  (an empty list drops the expectation).

``meta`` says what a failure means: ``severity`` (``critical`` stops the run
before any statistic, ``warning`` is reported), ``row_level`` (the failing rows
are quarantined with ``reason``), ``critical_share`` (a warning whose failing
share of the rows is above it becomes critical), ``engine: proof`` (a
cross-table check Proof evaluates itself; GX never sees it), ``non_finite``
(the rule that catches a float column's NaN, +inf and -inf values: the other
range and set rules of the column judge only its finite values, and GX's
adapters show them the column with those values as null) and ``explain``
(one sentence for people, with ``{param}`` fields).

This module does not import GX: :func:`failing_rows` translates the row-level
expectations into polars predicates for the quarantine, so that the suite file
is the one definition of both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from analysis.config import EventAggregate, Experiment, Metric, ValidationOptions, ValueRule

DEFAULT_SUITE_DIR = Path(__file__).resolve().parent.parent / "expectations"

Severity = Literal["critical", "warning"]

#: ``meta`` key :func:`load_suite` sets on the range and set rules of a column
#: that has a ``non_finite`` rule (:attr:`Expectation.finite_only`).
FINITE_ONLY = "finite_only"
_VALUE_RULES = ("expect_column_values_to_be_between", "expect_column_values_to_be_in_set")

#: The ``row_condition`` grammar the suites use (GX's pandas parser reads it too).
_CONDITION = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*("(?:[^"\\]|\\.)*")\s*$')
_FORMAT_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: Per-event value rules used unless ``validation.value_ranges`` replaces them.
#: ``task_completed``'s maximum comes from ``validation.task_completed_max_seconds``.
BASE_VALUE_RULES: Mapping[str, ValueRule] = {
    "ai_edited": ValueRule(min=0, max=1),
    "trust_survey": ValueRule(values=[1, 2, 3, 4, 5, 6, 7]),
    "feedback": ValueRule(values=[-1, 1]),
    "ai_latency": ValueRule(min=0),
    "ai_cost": ValueRule(min=0),
}


class SuiteError(ValueError):
    """A suite file is malformed, or names a parameter the run does not provide."""


class MissingParameterError(SuiteError):
    """An expectation names a parameter the run does not provide."""


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expectation of a suite, its placeholders filled.

    ``key`` is stable for a given suite file and config (``<table>.<n>`` or
    ``<table>.<n>.<item>`` for ``$each`` copies): results of different batches
    and cached partitions are merged by it.
    """

    key: str
    table: str
    type: str
    kwargs: Mapping[str, Any]
    meta: Mapping[str, Any]

    @property
    def severity(self) -> Severity:
        return "warning" if self.meta.get("severity") == "warning" else "critical"

    @property
    def row_level(self) -> bool:
        return bool(self.meta.get("row_level"))

    @property
    def reason(self) -> str | None:
        reason = self.meta.get("reason")
        return str(reason) if reason is not None else None

    @property
    def non_finite(self) -> bool:
        """True for the rule that catches its column's NaN, +inf and -inf values."""
        return bool(self.meta.get("non_finite"))

    @property
    def finite_only(self) -> bool:
        """True for a range or set rule of a column that has a ``non_finite`` rule.

        It judges the finite values only: NaN, +inf and -inf pass it, as nulls
        do, and are the ``non_finite`` rule's (set by :func:`load_suite`).
        """
        return bool(self.meta.get(FINITE_ONLY))

    @property
    def engine(self) -> str:
        return str(self.meta.get("engine", "gx"))

    @property
    def column(self) -> str | None:
        column = self.kwargs.get("column")
        if column is None and "column_list" in self.kwargs:
            return ",".join(self.kwargs["column_list"])
        return None if column is None else str(column)

    @property
    def condition(self) -> str | None:
        condition = self.kwargs.get("row_condition")
        return None if condition is None else str(condition)

    @property
    def critical_share(self) -> float | None:
        share = self.meta.get("critical_share")
        return None if share is None else float(share)

    @property
    def explain(self) -> str | None:
        text = self.meta.get("explain")
        return None if text is None else str(text)

    def gx_config(self) -> dict[str, Any]:
        """The JSON-able configuration GX receives (datetimes as ISO 8601 text)."""
        return {
            "type": self.type,
            "kwargs": jsonable(dict(self.kwargs)),
            "meta": {"proof_key": self.key},
        }

    def with_kwargs(self, kwargs: Mapping[str, Any]) -> Expectation:
        return Expectation(self.key, self.table, self.type, dict(kwargs), self.meta)


@dataclass(frozen=True, slots=True)
class Suite:
    """A table's suite for one run."""

    table: str
    expectations: tuple[Expectation, ...]
    index_columns: tuple[str, ...]
    digest: str  # sha256 of the suite file: enters every cache key

    def gx(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expectations if e.engine == "gx")

    def proof(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expectations if e.engine == "proof")

    def row_level(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expectations if e.row_level)

    def by_reason(self, reason: str) -> Expectation | None:
        return next((e for e in self.expectations if e.reason == reason), None)


def jsonable(value: Any) -> Any:
    """Datetimes and dates as ISO text, tuples as lists, everything else as is."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------- parameters


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def condition_text(column: str, value: str) -> str:
    """A ``row_condition`` for GX's pandas parser: ``event=="task_completed"``."""
    return f"{column}=={json.dumps(value)}"


def parse_condition(text: str) -> tuple[str, str]:
    """``(column, value)`` of a condition written by :func:`condition_text`."""
    match = _CONDITION.match(text)
    if match is None:
        raise SuiteError(f'row_condition {text!r}: only column=="value" is supported')
    return match.group(1), str(json.loads(match.group(2)))


def value_rules(options: ValidationOptions) -> dict[str, ValueRule]:
    """Per-event value rules: the defaults, then the experiment's ``value_ranges``."""
    rules: dict[str, ValueRule] = {
        "task_completed": ValueRule(min=0, max=options.task_completed_max_seconds),
        **BASE_VALUE_RULES,
    }
    rules.update(options.value_ranges)
    return dict(sorted(rules.items()))


def experiment_period(experiment: Experiment, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``(since, until)``: the experiment's period as of ``as_of``, ``since <= ts < until``.

    From 00:00 UTC of ``start`` minus the pre-period (``events_since``) to the
    end of ``as_of``. Events without a ``unit_id`` cannot be joined to any
    assignment: those whose ``ts`` falls in this period are read with the
    experiment's events, counted and quarantined (``null_unit_id``). The
    unassigned-event share is counted over the same period.
    """
    since = day_start(experiment.start) - dt.timedelta(days=experiment.pre_window_days)
    return since, day_start(as_of + dt.timedelta(days=1))


def share_params(options: ValidationOptions | None = None) -> dict[str, float]:
    """The shares of ``validation:`` the suites name (defaults without an experiment)."""
    options = options or ValidationOptions()
    return {
        "max_unassigned_event_share": options.max_unassigned_event_share,
        "max_unknown_variant_share": options.max_unknown_variant_share,
        "max_null_key_share": options.max_null_key_share,
    }


def run_params(
    experiment: Experiment,
    as_of: dt.date,
    now: dt.datetime,
    *,
    metrics: Sequence[Metric] = (),
    assigned_units: int | None = None,
) -> dict[str, Any]:
    """Every parameter the suites may name, for one run of one experiment.

    ``now`` bounds "not in the future"; ``as_of`` bounds nothing here: rows
    after the analysis date are valid, the analysis windows leave them out.
    """
    options = experiment.validation
    end = day_start(experiment.end + dt.timedelta(days=1)) if experiment.end else None
    rules = value_rules(options)
    params: dict[str, Any] = {
        "experiment_id": experiment.id,
        "as_of": as_of,
        "variants": list(experiment.variants),
        "start": day_start(experiment.start),
        "assigned_at_max": now if end is None else min(end, now),
        "events_since": experiment_period(experiment, as_of)[0],
        "now": now,
        **share_params(options),
        "value_ranges": [
            {"row_condition": condition_text("event", event), "min_value": r.min}
            | ({"max_value": r.max} if r.max is not None else {})
            for event, r in rules.items()
            if r.values is None
        ],
        "value_sets": [
            {"row_condition": condition_text("event", event), "value_set": list(r.values)}
            for event, r in rules.items()
            if r.values is not None
        ],
    }
    params |= unit_metric_params(metrics, rules, experiment.pre_window_days > 0)
    if assigned_units is not None:
        params["assigned_units"] = assigned_units
    return params


def _rule_bounds(rule: ValueRule | None) -> tuple[float | None, float | None]:
    if rule is None:
        return None, None
    if rule.values is not None:
        return min(rule.values), max(rule.values)
    return rule.min, rule.max


def _aggregate_range(
    agg: EventAggregate, rules: Mapping[str, ValueRule]
) -> tuple[bool, float | None, float | None]:
    """(defined for every unit, lower bound, upper bound) of a per-unit aggregate."""
    low, high = _rule_bounds(rules.get(agg.event))
    if agg.value_equals is not None:
        low = high = agg.value_equals
    if agg.agg == "count":
        return True, 0.0, None
    if agg.agg == "sum":
        return True, (0.0 if low is not None and low >= 0 else None), None
    return False, low, high


def unit_metric_params(
    metrics: Sequence[Metric], rules: Mapping[str, ValueRule], with_pre: bool
) -> dict[str, Any]:
    """Column lists of the per-unit metric table (``defined_columns``, ``column_ranges``)."""
    defined: list[dict[str, Any]] = []
    ranges: list[dict[str, Any]] = []

    def add(column: str, is_defined: bool, low: float | None, high: float | None) -> None:
        for suffix in ("", "__pre") if with_pre else ("",):
            if is_defined:
                defined.append({"column": column + suffix})
            if low is not None or high is not None:
                bounds = {"min_value": low} if low is not None else {}
                bounds |= {"max_value": high} if high is not None else {}
                ranges.append({"column": column + suffix} | bounds)

    for m in metrics:
        if m.kind == "ratio" and m.numerator is not None and m.denominator is not None:
            add(f"{m.name}__num", *_aggregate_range(m.numerator, rules))
            add(f"{m.name}__den", *_aggregate_range(m.denominator, rules))
        elif m.kind == "proportion":
            add(m.name, True, 0.0, 1.0)
        elif m.kind == "mean" and m.value is not None:
            add(m.name, *_aggregate_range(m.value, rules))
    return {"defined_columns": defined, "column_ranges": ranges}


# --------------------------------------------------------------------------- loading


def _fill(value: Any, params: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"$param"}:
            name = str(value["$param"])
            if name not in params:
                known = ", ".join(sorted(params)) or "none"
                raise MissingParameterError(f"{where}: unknown parameter {name!r} (known: {known})")
            return params[name]
        return {k: _fill(v, params, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, params, where) for v in value]
    return value


def _explain(text: Any, params: Mapping[str, Any]) -> Any:
    if not isinstance(text, str):
        return text
    return _FORMAT_FIELD.sub(lambda m: str(params.get(m.group(1), m.group(0))), text)


def load_suite(
    table: str,
    params: Mapping[str, Any],
    suite_dir: Path = DEFAULT_SUITE_DIR,
    *,
    strict: bool = True,
) -> Suite:
    """Read ``<suite_dir>/<table>.json`` and fill its placeholders from ``params``.

    ``strict=False`` leaves out the expectations whose parameters are not in
    ``params`` (validation without an experiment config); else they are an error.
    """
    path = suite_dir / f"{table}.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SuiteError(f"no expectation suite for table {table!r} at {path}") from None
    try:
        spec = json.loads(raw)
        templates = spec["expectations"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SuiteError(f"{path}: not a GX suite ({exc})") from None
    expectations: list[Expectation] = []
    for n, template in enumerate(templates):
        try:
            expectations += _expand(table, n, template, params, f"{path.name}: expectation {n}")
        except MissingParameterError:
            if strict:
                raise
    index = tuple(spec.get("meta", {}).get("index_columns", ()))
    expectations = _finite_only(expectations)
    return Suite(table, tuple(expectations), index, hashlib.sha256(raw).hexdigest())


def _finite_only(expectations: list[Expectation]) -> list[Expectation]:
    """The range and set rules of a column with a ``non_finite`` rule, marked ``finite_only``.

    NaN and ±inf values are that rule's alone: without the mark a range rule
    would count them too, and differently per engine (GX's pandas engine reads
    NaN as null, SQL and polars order it above every number).
    """
    caught = {e.column for e in expectations if e.non_finite}
    return [
        Expectation(e.key, e.table, e.type, e.kwargs, {**e.meta, FINITE_ONLY: True})
        if e.column in caught and not e.non_finite and e.type in _VALUE_RULES
        else e
        for e in expectations
    ]


def _expand(
    table: str, n: int, template: Mapping[str, Any], params: Mapping[str, Any], where: str
) -> list[Expectation]:
    """One template of a suite file, filled; several expectations for ``$each``."""
    where = f"{where} ({template.get('type')})"
    kwargs = dict(template.get("kwargs") or {})
    meta = {k: _fill(v, params, where) for k, v in (template.get("meta") or {}).items()}
    meta["explain"] = _explain(meta.get("explain"), params)
    each = kwargs.pop("$each", None)
    if each is None:
        copies: list[tuple[str, dict[str, Any]]] = [(f"{table}.{n}", kwargs)]
    else:
        items = _fill({"$param": each}, params, where)
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise SuiteError(f"{where}: $each parameter {each!r} is not a list of objects")
        copies = [(f"{table}.{n}.{i}", kwargs | dict(item)) for i, item in enumerate(items)]
    return [
        Expectation(key, table, str(template["type"]), _fill(body, params, where), meta)
        for key, body in copies
    ]


# --------------------------------------------------------------------------- row rules


def _condition_expr(expectation: Expectation) -> pl.Expr:
    if expectation.condition is None:
        return pl.lit(True)
    column, value = parse_condition(expectation.condition)
    return (pl.col(column) == value).fill_null(False)


def failing_rows(expectation: Expectation) -> pl.Expr:
    """True for the rows that break a per-row expectation (GX's semantics: nulls pass).

    Uniqueness expectations are not per-row rules: the quarantine handles them.
    A ``non_finite`` rule is a range of the finite floats (polars, like SQL,
    orders NaN above every number); a ``finite_only`` rule lets NaN and ±inf
    pass like nulls.
    """
    column = expectation.kwargs.get("column")
    if column is None:
        raise SuiteError(f"{expectation.key}: {expectation.type} is not a per-row rule")
    col = pl.col(str(column))
    when = _condition_expr(expectation)
    kind = expectation.type
    if kind == "expect_column_values_to_not_be_null":
        return col.is_null() & when
    present = col.is_not_null() & col.is_finite() if expectation.finite_only else col.is_not_null()
    if kind == "expect_column_values_to_be_in_set":
        # Equalities, not is_in: a literal takes the column's type (1 matches 1.0).
        allowed = pl.any_horizontal([col == v for v in expectation.kwargs["value_set"]] or [False])
        return (present & ~allowed).fill_null(False) & when
    if kind == "expect_column_values_to_be_between":
        low, high = expectation.kwargs.get("min_value"), expectation.kwargs.get("max_value")
        outside = pl.lit(False)
        if low is not None:
            strict = bool(expectation.kwargs.get("strict_min"))
            outside = outside | (col <= low if strict else col < low)
        if high is not None:
            strict = bool(expectation.kwargs.get("strict_max"))
            outside = outside | (col >= high if strict else col > high)
        return (present & outside).fill_null(False) & when
    raise SuiteError(f"{expectation.key}: no per-row translation of {kind}")
