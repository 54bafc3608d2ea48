"""The suites' row-level rules as SQL predicates (translated by sqlglot).

The same semantics as :func:`analysis.suites.conditions.failing_rows`:
:func:`failing_predicate` is TRUE for the rows breaking one rule,
:func:`reason_case` names the first rule a row breaks, and
:func:`passing_predicate` is "passes every row-level rule", for a push-down
analysis's WHERE. The group rules (crossovers, duplicates) are
:mod:`analysis.sql.quarantine`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from analysis.sql.expressions import false_if_null, finite, literal, source_column
from analysis.suites.conditions import parse_condition
from analysis.suites.load import Expectation, Suite, SuiteError

__all__ = ["failing_predicate", "passing_predicate", "reason_case"]

#: The row-level expectations that are group rules (a row repeats another), not per-row ones.
_UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def failing_predicate(
    expectation: Expectation, columns: Mapping[str, str] | None = None, table: str | None = None
) -> exp.Expr:
    """SQL that is TRUE (never NULL) for the rows breaking a per-row rule.

    The translation of :func:`analysis.suites.conditions.failing_rows` (nulls pass a
    range or a set, and so do NaN and ±inf for a ``finite_only`` rule; a
    ``row_condition`` that is NULL does not apply). A ``non_finite`` rule is
    the range of the finite floats, which NaN breaks as in polars.
    ``columns`` maps contract names to source names (the source's ``columns:``),
    ``table`` qualifies them.
    """
    names = columns or {}
    column = expectation.kwargs.get("column")
    if column is None or expectation.type in _UNIQUENESS:
        raise SuiteError(f"{expectation.key}: {expectation.type} is not a per-row rule")
    col = source_column(str(column), names, table)
    when: exp.Expr = exp.true()
    if expectation.condition is not None:
        on, value = parse_condition(expectation.condition)
        when = false_if_null(source_column(on, names, table).eq(exp.Literal.string(value)))
    kind = expectation.type
    if kind == "expect_column_values_to_not_be_null":
        return exp.and_(col.is_(exp.null()), when)
    present: exp.Expr = exp.not_(col.is_(exp.null()))
    if expectation.finite_only:
        present = exp.and_(present, false_if_null(finite(col)))
    if kind == "expect_column_values_to_be_in_set":
        allowed = [col.eq(literal(v)) for v in expectation.kwargs["value_set"]]
        inside = exp.or_(*allowed) if allowed else exp.false()
        return exp.and_(present, exp.not_(false_if_null(inside)), when)
    if kind == "expect_column_values_to_be_between":
        low, high = expectation.kwargs.get("min_value"), expectation.kwargs.get("max_value")
        outside: list[exp.Expr] = []
        if low is not None:
            strict = bool(expectation.kwargs.get("strict_min"))
            outside.append(exp.LTE(this=col, expression=literal(low)) if strict else
                           exp.LT(this=col, expression=literal(low)))  # fmt: skip
        if high is not None:
            strict = bool(expectation.kwargs.get("strict_max"))
            outside.append(exp.GTE(this=col, expression=literal(high)) if strict else
                           exp.GT(this=col, expression=literal(high)))  # fmt: skip
        if not outside:
            return exp.false()
        return exp.and_(present, false_if_null(exp.or_(*outside)), when)
    raise SuiteError(f"{expectation.key}: no SQL translation of {kind}")


def _row_rules(suite: Suite) -> list[Expectation]:
    """The suite's per-row rules, in suite order (the uniqueness rules left out)."""
    return [e for e in suite.row_level() if e.type not in _UNIQUENESS]


def reason_case(
    suite: Suite, columns: Mapping[str, str] | None = None, table: str | None = None
) -> exp.Expr:
    """The first row-level reason that applies (suite order), else NULL."""
    rules = _row_rules(suite)
    if not rules:
        return exp.cast(exp.null(), exp.DataType.build("TEXT"))
    case = exp.Case()
    for e in rules:
        case = case.when(failing_predicate(e, columns, table), exp.Literal.string(str(e.reason)))
    return case


def passing_predicate(
    suite: Suite, columns: Mapping[str, str] | None = None, table: str | None = None
) -> exp.Expr:
    """SQL that is TRUE for the rows that pass every row-level rule of ``suite``.

    A push-down analysis adds it to its WHERE (``.sql(dialect="postgres")``).
    Group rules (crossovers, duplicates) are not in it:
    :func:`analysis.sql.quarantine.labelled_query` has them.
    """
    fails = [failing_predicate(e, columns, table) for e in _row_rules(suite)]
    return exp.not_(exp.paren(exp.or_(*fails))) if fails else exp.true()
