"""The experiment's rows inside the database, as queries: what both the quarantine and GX read.

:func:`experiment_queries` selects the rows :func:`analysis.sources.read.read_experiment`
reads, with the source's columns renamed to the contract's names;
:func:`count_rows` and :func:`event_coverage` count them where they live.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl
from sqlglot import exp

from analysis import schema
from analysis.partitions.batches import MAX_EXAMPLES
from analysis.sources.coverage import EventCoverage
from analysis.sql.database import Database, SqlTable
from analysis.sql.expressions import column, literal, text_order

__all__ = ["count_rows", "event_coverage", "experiment_queries"]

_UNIT_KEY = "__proof_unit"  # the experiment's distinct units, joined to its events
#: The type a column absent from the source is read as (only optional columns may be).
_NULL_TYPES: Mapping[str, str] = {"str": "TEXT", "Timestamp": "TIMESTAMPTZ", "float64": "DOUBLE"}


def _contract_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "Timestamp"
    return "float64" if isinstance(dtype, pl.Float64) else "str"


def _select(table: SqlTable) -> exp.Select:
    """Every column of ``table`` under its contract name (absent optional ones as NULL)."""
    contract = schema.TABLES[table.role]
    items: list[exp.Expr] = []
    for name, source in table.columns.items():
        if source is None:
            null_type = _NULL_TYPES[_contract_type(contract[name])]
            value: exp.Expr = exp.cast(exp.null(), exp.DataType.build(null_type))
        else:
            value = exp.column(source, quoted=True)
        items.append(exp.alias_(value, name, quoted=True))
    return exp.select(*items).from_(table.table())


def experiment_queries(
    tables: Mapping[str, SqlTable],
    experiment_id: str,
    null_units: tuple[dt.datetime, dt.datetime] | None = None,
) -> dict[str, exp.Select]:
    """The experiment's assignments and the events of its units, columns renamed.

    The same rows as :func:`analysis.sources.read.read_experiment` reads: assignments
    ``WHERE experiment_id = <id>``, events whose unit is in one of those rows,
    and with ``null_units`` (``suites.params.experiment_period``) the events without a
    unit whose ``ts`` is in that period (one scan: a left join to the distinct
    units, since an ``IN`` inside an ``OR`` would not be planned as a join).
    """
    a, e = tables["assignments"], tables["events"]
    exp_col = exp.column(a.source_column("experiment_id") or "experiment_id", quoted=True)
    unit_a = exp.column(a.source_column("unit_id") or "unit_id", quoted=True)
    unit_e = exp.column(e.source_column("unit_id") or "unit_id", quoted=True)
    of_experiment = exp_col.eq(exp.Literal.string(experiment_id))
    assignments = _select(a).where(of_experiment)
    if null_units is None:
        units = exp.select(unit_a).from_(a.table()).where(of_experiment)
        return {"assignments": assignments, "events": _select(e).where(unit_e.isin(query=units))}
    key = exp.column(_UNIT_KEY, table="__proof_units", quoted=True)
    units = (
        exp.select(exp.alias_(unit_a, _UNIT_KEY, quoted=True))
        .distinct()
        .from_(a.table())
        .where(of_experiment)
    )
    ts_e = exp.column(e.source_column("ts") or "ts", quoted=True)
    since, until = null_units
    unitless = exp.and_(unit_e.is_(exp.null()), ts_e >= literal(since), ts_e < literal(until))
    events = (
        _select(e)
        .join(units.subquery("__proof_units"), on=unit_e.eq(key), join_type="left")
        .where(exp.or_(exp.not_(key.is_(exp.null())), exp.paren(unitless)))
    )
    return {"assignments": assignments, "events": events}


def count_rows(db: Database, queries: Mapping[str, exp.Select]) -> dict[str, int]:
    """Rows of each query, in one round trip."""
    counts = exp.select(
        *[
            exp.alias_(exp.select(exp.Count(this=exp.Star())).from_(q.subquery("t")).subquery(), t)
            for t, q in queries.items()
        ]
    )
    row = db.fetch(counts.sql(dialect=db.dialect)).row(0)
    return {t: int(n) for t, n in zip(queries, row, strict=True)}


def event_coverage(db: Database, queries: Mapping[str, exp.Select]) -> EventCoverage:
    """Events of the experiment's rows whose unit no assignment row names (as the polars path)."""
    units = exp.select(column("unit_id")).from_(queries["assignments"].subquery("a"))
    units = units.where(exp.not_(column("unit_id").is_(exp.null())))
    orphan = exp.not_(column("unit_id").isin(query=units))
    named = exp.not_(column("unit_id").is_(exp.null()))
    events = queries["events"].subquery("e")
    counts = (
        exp.select(
            exp.Count(this=exp.Star()),
            exp.func("COALESCE", exp.Sum(this=exp.Case().when(orphan, exp.Literal.number(1))), 0),
        )
        .from_(events)
        .where(named)
    )
    examples = (
        exp.select(column("unit_id"))
        .from_(queries["events"].subquery("e"))
        .where(exp.and_(named, orphan))
        .group_by(column("unit_id"))
        .order_by(exp.Ordered(this=text_order("unit_id", None, db.dialect)))
        .limit(MAX_EXAMPLES)
    )
    row = db.fetch(counts.sql(dialect=db.dialect)).row(0)
    found = db.fetch(examples.sql(dialect=db.dialect)).to_series()
    return EventCoverage(int(row[0]), int(row[1] or 0), tuple(str(u) for u in found))
