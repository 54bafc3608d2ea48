"""Row conditions of the suites, and the rows a per-row rule fails, as polars predicates.

A ``row_condition`` is ``column=="value"`` (:func:`condition_text`,
:func:`parse_condition`), a grammar GX's pandas parser reads too.
:func:`failing_rows` translates a row-level expectation into a polars
predicate for the quarantine, with GX's semantics, so that the suite file is
the one definition of both.
"""

from __future__ import annotations

import json
import re

import polars as pl

from analysis.suites.load import Expectation, SuiteError

#: The ``row_condition`` grammar the suites use (GX's pandas parser reads it too).
_CONDITION = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*("(?:[^"\\]|\\.)*")\s*$')


def condition_text(column: str, value: str) -> str:
    """A ``row_condition`` for GX's pandas parser: ``event=="task_completed"``."""
    return f"{column}=={json.dumps(value)}"


def parse_condition(text: str) -> tuple[str, str]:
    """``(column, value)`` of a condition written by :func:`condition_text`."""
    match = _CONDITION.match(text)
    if match is None:
        raise SuiteError(f'row_condition {text!r}: only column=="value" is supported')
    return match.group(1), str(json.loads(match.group(2)))


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
