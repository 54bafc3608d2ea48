"""The sqlglot builders the SQL wing shares: quoted names, literals, null-safe predicates.

Every identifier is quoted and every literal built here: no input is pasted
into SQL text.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
from sqlglot import exp

from analysis.suites.load import SuiteError

__all__ = [
    "all_of",
    "case",
    "cast",
    "clipped",
    "column",
    "cte",
    "double",
    "double_literal",
    "eq",
    "false_if_null",
    "finite",
    "flag",
    "hours",
    "integer",
    "literal",
    "log10",
    "lt",
    "micros_between",
    "named",
    "not_null",
    "number",
    "quoted",
    "ref",
    "source_column",
    "string",
    "table",
    "text",
    "text_order",
    "union_all",
    "utc_timestamp",
    "whole_periods",
    "window",
    "with_ctes",
]


def column(name: str, table: str | None = None) -> exp.Column:
    """A quoted column, optionally qualified by ``table``."""
    return exp.column(name, table=table, quoted=True)


def source_column(name: str, columns: Mapping[str, str], table: str | None) -> exp.Column:
    """The source's column of a contract name (``columns``: contract name -> source name)."""
    return exp.column(columns.get(name, name), table=table, quoted=True)


def literal(value: Any) -> exp.Expr:
    """A SQL literal of a rule's bound or value; a timestamp must carry its zone.

    Raises:
        SuiteError: a timezone-naive datetime, or a value with no SQL literal.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise SuiteError(f"timezone-naive bound {value.isoformat()} in a rule")
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("TIMESTAMPTZ"))
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise SuiteError(f"no SQL literal for {value!r}")


def false_if_null(predicate: exp.Expr) -> exp.Expr:
    """``COALESCE((predicate), FALSE)``."""
    return exp.func("COALESCE", exp.paren(predicate), exp.false())


def finite(value: exp.Expr) -> exp.Expr:
    """TRUE for a finite number, FALSE for NaN, +inf and -inf, NULL for NULL.

    PostgreSQL and DuckDB order NaN above every number, +inf included.
    """
    infinity = [exp.cast(exp.Literal.string(v), exp.DataType.build("DOUBLE"))
                for v in ("-Infinity", "Infinity")]  # fmt: skip
    return exp.and_(
        exp.GT(this=value.copy(), expression=infinity[0]),
        exp.LT(this=value.copy(), expression=infinity[1]),
    )


def text_order(name: str, dtype: pl.DataType | None, dialect: str) -> exp.Expr:
    """Sort key of a column as polars orders it: text by bytes (COLLATE "C"; Spark's
    default collation, UTF8_BINARY, already orders by bytes and knows no "C")."""
    quoted = column(name)
    if dialect != "spark" and (dtype is None or isinstance(dtype, pl.String)):
        return exp.Collate(this=quoted, expression=exp.Identifier(this="C", quoted=True))
    return quoted


def with_ctes(query: exp.Select, ctes: Sequence[tuple[str, exp.Expr]]) -> exp.Select:
    """``query`` with the common table expressions ``ctes`` (name, body), in order.

    The names are written as given (unquoted): they are the module's own
    constants, never input. Each node is copied once: sqlglot's builder copies
    the whole query at every CTE by default, quadratic in their number (2.8 s
    of sqlglot per push-down plan of about 20 CTEs per query).
    """
    query = query.copy()
    for name, body in ctes:
        query = query.with_(name, as_=body.copy(), copy=False)
    return query


# --------------------------------------------------------------------------- aggregation builders
# Used by the aggregation modules (analysis.sql.aggregate*): names and literals as
# sqlglot nodes, window arithmetic on exact hours, and the few expressions whose
# floating-point result must equal polars' bit for bit (see each docstring).


def quoted(name: str) -> exp.Identifier:
    """A quoted identifier (a table, column, alias or CTE name)."""
    return exp.to_identifier(name, quoted=True)


def cte(name: str) -> str:
    """A CTE name for :func:`with_ctes`, quoted (the text sqlglot reads back as one identifier)."""
    return quoted(name).sql()


def ref(name: str, alias: str | None = None) -> exp.Table:
    """A CTE by name, optionally aliased."""
    table = exp.Table(this=quoted(name))
    if alias is not None:
        table.set("alias", exp.TableAlias(this=quoted(alias)))
    return table


def table(name: str) -> exp.Table:
    """``catalog.schema.table`` (each part optional but the last), every part quoted.

    Raises:
        ValueError: an empty part, or more than three.
    """
    parts = name.split(".")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(
            f"table name {name!r} is not 'table', 'schema.table' or 'catalog.schema.table'"
        )
    found = exp.Table(this=quoted(parts[-1]))
    if len(parts) >= 2:
        found.set("db", quoted(parts[-2]))
    if len(parts) == 3:
        found.set("catalog", quoted(parts[0]))
    return found


def named(expression: exp.Expr, alias: str) -> exp.Expr:
    """``expression AS "alias"``."""
    return exp.alias_(expression, quoted(alias))


def string(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def integer(value: int) -> exp.Expr:
    return exp.Literal.number(value)


def number(value: float) -> exp.Expr:
    """A finite number as a numeric literal (a filter's ``value_equals``).

    Raises:
        ValueError: NaN or an infinity (no portable literal, and never equal).
    """
    if not math.isfinite(value):
        raise ValueError(f"value_equals must be a finite number, got {value!r}")
    return exp.convert(float(value))


def double_literal(value: float) -> exp.Cast:
    """``CAST('<repr>' AS DOUBLE)``: exactly the double ``value`` in every dialect.

    A numeric literal is a DECIMAL in PostgreSQL and DuckDB, and a decimal
    converted to double is not always the nearest double; text read as a
    double is (``repr`` round-trips).
    """
    return cast(exp.Literal.string(repr(float(value))), "double")


def cast(expression: exp.Expr, to: str) -> exp.Cast:
    """``CAST(expression AS to)``; ``to`` is a type name written in code, never input."""
    return exp.cast(expression, exp.DataType.build(to))


def double(expression: exp.Expr) -> exp.Cast:
    return cast(expression, "double")


def text(expression: exp.Expr) -> exp.Cast:
    return cast(expression, "varchar")


def eq(a: exp.Expr, b: exp.Expr) -> exp.EQ:
    return exp.EQ(this=a, expression=b)


def lt(a: exp.Expr, b: exp.Expr) -> exp.LT:
    return exp.LT(this=a, expression=b)


def not_null(expression: exp.Expr) -> exp.Expr:
    return exp.not_(exp.Is(this=expression, expression=exp.Null()))


def all_of(*conditions: exp.Expr) -> exp.Expr:
    return exp.and_(*conditions)


def case(condition: exp.Expr, then: exp.Expr, otherwise: exp.Expr) -> exp.Case:
    return exp.Case().when(condition, then).else_(otherwise)


def flag(condition: exp.Expr) -> exp.Case:
    """1 where the condition holds, else 0 (integers are portable, booleans are not)."""
    return case(condition, integer(1), integer(0))


def clipped(value: exp.Expr, low: exp.Expr, high: exp.Expr) -> exp.Case:
    """``value`` clipped to ``[low, high]``; NULL stays NULL, a NULL bound does not clip.

    A ``CASE``, not ``GREATEST``/``LEAST``: those skip NULLs in PostgreSQL and
    return NULL in other dialects.
    """
    above = exp.GT(this=value, expression=high)
    return exp.Case().when(lt(value, low), low).when(above, high).else_(value)


def log10(value: exp.Expr) -> exp.Expr:
    """``LN(value) / LN(10)``: polars' ``log10`` (it divides natural logarithms).

    ``LOG10`` of PostgreSQL and DuckDB calls the C library's ``log10``, which
    differs from polars in the last bit for about half of all values.
    """
    return exp.Div(this=exp.Ln(this=value), expression=exp.Ln(this=double(integer(10))))


def hours(days: int) -> exp.Interval:
    """``days`` as an interval of hours.

    Hours, not days: day arithmetic on zoned timestamps follows the session's
    time zone (23- or 25-hour days); the polars path adds exact 24-hour days.
    """
    return exp.Interval(this=exp.Literal.string(str(days * 24)), unit=exp.var("HOUR"))


def utc_timestamp(moment: dt.datetime) -> exp.Cast:
    """A zoned timestamp literal in UTC, ``'YYYY-MM-DD HH:MM:SS+00:00'`` (read by every dialect)."""
    text_ = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    return cast(exp.Literal.string(text_), "timestamptz")


def micros_between(start: exp.Expr, end: exp.Expr, dialect: str) -> exp.Expr:
    """Microseconds elapsed from ``start`` to ``end`` (zoned timestamps), exactly.

    PostgreSQL has no microsecond difference function: the epoch of the
    interval (a NUMERIC, exact) times a million. Elsewhere sqlglot's
    ``TIMESTAMPDIFF(MICROSECOND, ...)`` (DuckDB's ``DATE_DIFF``: elapsed
    time, whatever the session's time zone). Trino and Presto count
    milliseconds (their timestamps' default precision), times a thousand.
    """
    if dialect in ("postgres", "redshift"):
        elapsed = exp.paren(exp.Sub(this=end, expression=start))
        epoch = exp.Extract(this=exp.var("EPOCH"), expression=elapsed)
        return cast(exp.Mul(this=epoch, expression=integer(1_000_000)), "bigint")
    if dialect in ("trino", "presto"):  # date_diff knows milliseconds at most (their precision)
        millis = exp.TimestampDiff(this=end, expression=start, unit=exp.var("MILLISECOND"))
        return exp.Mul(this=millis, expression=integer(1000))
    if dialect == "snowflake":  # its TIMESTAMPDIFF reads back as DATEDIFF, the same function
        return exp.DateDiff(this=end, expression=start, unit=exp.var("MICROSECOND"))
    return exp.TimestampDiff(this=end, expression=start, unit=exp.var("MICROSECOND"))


def whole_periods(start: exp.Expr, end: exp.Expr, days: int, dialect: str) -> exp.Expr:
    """Whole periods of ``days`` × 24 hours from ``start`` to ``end``, floored, as a BIGINT.

    polars' ``(end - start).dt.total_days() // days`` (for ``end >= start``),
    and the UTC day number when ``start`` is a midnight. Through a double:
    exact, as microseconds below 2^53 are, and a quotient one microsecond
    short of a whole number stays below it.
    """
    period = double(integer(days * 86_400_000_000))
    quotient = exp.Div(this=double(micros_between(start, end, dialect)), expression=period)
    return cast(exp.Floor(this=quotient), "bigint")


def window(
    function: exp.Expr, partition: Sequence[exp.Expr], order: Sequence[exp.Expr] = ()
) -> exp.Window:
    """``function OVER (PARTITION BY partition ORDER BY order)``."""
    over = exp.Window(this=function, partition_by=list(partition))
    if order:
        over.set("order", exp.Order(expressions=[exp.Ordered(this=o) for o in order]))
    return over


def union_all(queries: Sequence[exp.Query]) -> exp.Query:
    result: exp.Query = queries[0]
    for query in queries[1:]:
        result = exp.union(result, query, distinct=False)
    return result
