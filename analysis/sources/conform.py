"""Conform a source's tables to the contract's column names and types, or fail clearly.

A missing column or a type that cannot be converted without guessing raises
:class:`~analysis.sources.errors.SourceSchemaError` naming the table, column,
expected and found type. :func:`require_columns` makes the same check on the
columns a query filters or joins on, before the query runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from analysis import schema
from analysis.sources.errors import SourceSchemaError


def conform(lf: pl.LazyFrame, source: str, table: str, columns: Mapping[str, str]) -> pl.LazyFrame:
    """Rename mapped columns and cast to the contract's types, or fail clearly.

    Safe conversions are made (integers to float, other time zones to UTC,
    other time units to microseconds, categoricals to strings); anything that
    would need a guess — above all timezone-naive timestamps — is an error.
    """
    found_schema = lf.collect_schema()
    renames = {src: dst for dst, src in columns.items() if src in found_schema and src != dst}
    if renames:
        lf = lf.rename(renames)
        found_schema = lf.collect_schema()
    expected_schema = schema.TABLES[table]
    exprs: list[pl.Expr] = []
    for column, expected in expected_schema.items():
        if column not in found_schema:
            if column in schema.OPTIONAL_COLUMNS[table]:
                exprs.append(pl.lit(None, dtype=expected).alias(column))
                continue
            present = ", ".join(found_schema.names())
            mapped = f" (mapped from {columns[column]!r})" if column in columns else ""
            raise SourceSchemaError(
                source, table, column + mapped, str(expected), f"no such column; has: {present}"
            )
        exprs.append(_cast(pl.col(column), found_schema[column], expected, source, table, column))
    if table == "assignments":
        # Any other column is a segment dimension; dimensions are strings.
        for column, dtype in found_schema.items():
            if column not in expected_schema:
                exprs.append(
                    pl.col(column).cast(pl.String) if dtype != pl.String else pl.col(column)
                )
    return lf.select(exprs)


def _cast(
    expr: pl.Expr,
    found: pl.DataType,
    expected: pl.DataType,
    source: str,
    table: str,
    column: str,
) -> pl.Expr:
    def fail(why: str = "") -> SourceSchemaError:
        return SourceSchemaError(source, table, column, str(expected), f"{found}{why}")

    if found == expected:
        return expr
    if isinstance(expected, pl.String):
        if isinstance(found, pl.Categorical | pl.Enum | pl.Null):
            return expr.cast(pl.String)
        raise fail()
    if isinstance(expected, pl.Float64):
        if found.is_numeric() or isinstance(found, pl.Null):
            return expr.cast(pl.Float64)
        raise fail()
    if isinstance(expected, pl.Datetime):
        if isinstance(found, pl.Null):
            return expr.cast(expected)
        if isinstance(found, pl.String):
            raise fail(
                " (text that is not a timestamp: write ISO 8601 with an offset, e.g."
                " 2026-10-01T12:00:00Z; a CSV file without rows has no values to read it from)"
            )
        if not isinstance(found, pl.Datetime):
            raise fail()
        if found.time_zone is None:
            raise fail(
                " (timezone-naive timestamps: store them with a time zone, e.g. as UTC;"
                " Proof does not guess which zone they are in)"
            )
        return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    raise fail()


#: Columns the source queries filter or join on, per table: checked before querying.
_QUERY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "assignments": ("experiment_id", "unit_id"),
    "events": ("unit_id", "ts"),
}


def require_columns(source: str, role: str, found: list[str], columns: Mapping[str, str]) -> None:
    """A column the query needs is missing: say so as the contract check would."""
    for column in _QUERY_COLUMNS[role]:
        mapped = columns.get(column, column)
        if mapped not in found:
            via = f" (mapped from {mapped!r})" if mapped != column else ""
            raise SourceSchemaError(
                source,
                role,
                column + via,
                str(schema.TABLES[role][column]),
                f"no such column; has: {', '.join(found)}",
            )
