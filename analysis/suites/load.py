"""Read a suite file (``expectations/<table>.json``) and fill its placeholders.

:func:`load_suite` fills ``{"$param": ...}`` from the run's parameters,
repeats an expectation per item of an ``"$each"`` list, and marks the range
and set rules of a column that has a ``non_finite`` rule ``finite_only``.
The result is a :class:`Suite` of :class:`Expectation`, each with a key that
is stable for a given suite file and config.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DEFAULT_SUITE_DIR = Path(__file__).resolve().parent.parent.parent / "expectations"

Severity = Literal["critical", "warning"]

#: ``meta`` key :func:`load_suite` sets on the range and set rules of a column
#: that has a ``non_finite`` rule (:attr:`Expectation.finite_only`).
FINITE_ONLY = "finite_only"
_VALUE_RULES = ("expect_column_values_to_be_between", "expect_column_values_to_be_in_set")

_FORMAT_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


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
