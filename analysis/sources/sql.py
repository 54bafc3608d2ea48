"""The SQL Proof sends a source: sqlglot trees, rendered in the source's dialect.

Every identifier (the tables, the ``columns:`` mapping) is quoted and escaped,
every value a literal, so nothing in a config is ever pasted into SQL. The
queries select one experiment's assignments and the events of its units
(:func:`_events_query`), and count the events no assignment names
(:func:`_coverage_queries`).
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse

from sqlglot import exp

from analysis.config.sources import DatabaseSource, DuckDBSource, FileSource, SqlSource
from analysis.sources.errors import SourceError

_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

AnySource = DuckDBSource | FileSource | SqlSource
#: ``(since, until)``: the events without a unit_id with ``since <= ts < until`` are read too.
Period = tuple[dt.datetime, dt.datetime]


def _sql_table(source: str, table: str, name: str) -> exp.Table:
    """``[schema.]table`` as a quoted table; any other text is refused, naming it."""
    if not _SQL_NAME.match(name):
        raise SourceError(f"source {source!r}: table name {name!r} for {table!r} is not valid")
    *schema_name, table_name = name.split(".")
    table_expr = exp.Table(this=_ident(table_name))
    if schema_name:
        table_expr.set("db", _ident(schema_name[0]))
    return table_expr


def _sql_name(source: str, table: str, name: str, dialect: str | None = None) -> str:
    return _sql_table(source, table, name).sql(dialect=dialect)


def _ident(name: str) -> exp.Identifier:
    """A quoted identifier: the dialect's quote inside it is escaped, never ends it."""
    return exp.to_identifier(name, quoted=True)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _aliased(table: exp.Table, alias: str) -> exp.Table:
    table = table.copy()
    table.set("alias", exp.TableAlias(this=_ident(alias)))
    return table


def _timestamp(value: dt.datetime) -> exp.Cast:
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("timestamptz"))


def sql_dialect(src: AnySource, uri: str | None = None) -> str | None:
    """sqlglot's dialect for ``src``: DuckDB's, the configured one, or the URI's
    (None: sqlglot's own, ANSI quoting)."""
    if isinstance(src, DuckDBSource):
        return "duckdb"
    if isinstance(src, SqlSource) and src.dialect is not None:
        return src.dialect
    if uri is None:
        return None
    from analysis.sql.aggregate_connect import DIALECTS  # it imports this package

    return DIALECTS.get(urllib.parse.urlsplit(uri).scheme.split("+")[0].lower())


def _events_query(
    source: str,
    src: AnySource,
    experiment_id: str,
    null_units: Period | None = None,
    dialect: str | None = None,
) -> tuple[str, str]:
    """SQL for the experiment's assignments and for the events of its units.

    With ``null_units``, also the events without a unit in that period: one
    scan, a hash join to the experiment's distinct units (an ``IN`` inside an
    ``OR`` would not be planned as a join).
    """
    assignments = _sql_table(source, "assignments", src.assignments)
    events = _sql_table(source, "events", src.events)
    exp_name = src.columns.get("experiment_id", "experiment_id")
    unit_name = src.columns.get("unit_id", "unit_id")
    of_experiment = _col(exp_name).eq(exp.Literal.string(experiment_id))
    q_assign = exp.select(exp.Star()).from_(assignments).where(of_experiment)
    if null_units is None:
        units = exp.select(_col(unit_name)).from_(assignments.copy()).where(of_experiment.copy())
        q_events = exp.select(exp.Star()).from_(events).where(_col(unit_name).isin(query=units))
        return q_assign.sql(dialect=dialect), q_events.sql(dialect=dialect)
    since, until = null_units
    units = (
        exp.select(exp.alias_(_col(unit_name), "__proof_unit", quoted=True))
        .distinct()
        .from_(assignments.copy())
        .where(of_experiment.copy())
    )
    key = _col("__proof_unit", "u")
    unit, ts = _col(unit_name, "e"), _col(src.columns.get("ts", "ts"), "e")
    unitless = exp.and_(
        unit.is_(exp.null()), ts.copy() >= _timestamp(since), ts.copy() < _timestamp(until)
    )
    q_events = (
        exp.select(exp.Column(this=exp.Star(), table=_ident("e")))
        .from_(_aliased(events, "e"))
        .join(units.subquery(_ident("u")), on=unit.copy().eq(key), join_type="left")
        .where(exp.or_(exp.not_(key.copy().is_(exp.null())), exp.paren(unitless)))
    )
    return q_assign.sql(dialect=dialect), q_events.sql(dialect=dialect)


def _coverage_queries(
    name: str,
    source: DatabaseSource,
    since: dt.datetime,
    until: dt.datetime,
    dialect: str | None,
) -> tuple[str, str]:
    """The counts of :func:`event_coverage`, and up to five units no assignment names."""
    unit_name = source.columns.get("unit_id", "unit_id")
    ts = _col(source.columns.get("ts", "ts"), "e")
    unit, key = _col(unit_name, "e"), _col("u", "a")
    units = exp.select(exp.alias_(_col(unit_name), "u", quoted=True)).distinct()
    relations = source.relations()
    units = units.from_(_sql_table(name, "assignments", relations["assignments"]))
    in_period = exp.and_(
        ts >= _timestamp(since), ts.copy() < _timestamp(until), exp.not_(unit.is_(exp.null()))
    )

    def joined(*columns: exp.Expr) -> exp.Select:
        return (
            exp.select(*columns)
            .from_(_aliased(_sql_table(name, "events", relations["events"]), "e"))
            .join(units.subquery(_ident("a")), on=unit.copy().eq(key.copy()), join_type="left")
            .where(in_period.copy())
        )

    no_assignment = key.copy().is_(exp.null())
    unassigned = exp.Sum(
        this=exp.Case().when(no_assignment, exp.Literal.number(1)).else_(exp.Literal.number(0))
    )
    q_counts = joined(
        exp.alias_(exp.Count(this=exp.Star()), "events", quoted=True),
        exp.alias_(
            exp.Coalesce(this=unassigned, expressions=[exp.Literal.number(0)]),
            "unassigned",
            quoted=True,
        ),
    )
    q_examples = (
        joined(exp.alias_(unit.copy(), "unit", quoted=True))
        .distinct()
        .where(no_assignment.copy())
        .order_by(exp.Literal.number(1))
        .limit(5)
    )
    return q_counts.sql(dialect=dialect), q_examples.sql(dialect=dialect)
