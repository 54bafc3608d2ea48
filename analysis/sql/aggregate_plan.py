"""The steps every aggregation query starts from, as SQL: units, events, each unit's window.

The database engine reproduces the polars path (:mod:`analysis.metrics`,
:mod:`analysis.partials`) inside the database, step by step, with sqlglot's
builders (never by pasting text). Each step is named after the polars
function it reproduces:

1. :func:`clean_assignments` — the experiment's assignments before the end of
   the analysis date; per unit the first row by ``assigned_at`` (its variant,
   time and dimensions), and whether the unit was seen in more than one
   variant (a crossover);
2. :func:`deduplicated_events` — events of the experiment's units, of the
   events a query reads, before the end of the analysis date; one row per
   ``event_id`` (the first by ``ts``, then the other columns: identical
   copies give identical aggregates);
3. :func:`in_window_events` — joined to the non-crossed-over units and limited
   to ``[assigned_at - pre_window_days, min(end, assigned_at + window_days))``.

Here too is the query that needs nothing more (:func:`cleaning_counts`).
Every identifier is quoted; the experiment id, event names and bounds are
literals built by sqlglot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from analysis import schema
from analysis.config.experiments import Experiment
from analysis.measurement import Window
from analysis.sql.expressions import (
    all_of,
    cast,
    column,
    cte,
    double,
    eq,
    flag,
    hours,
    integer,
    lt,
    named,
    quoted,
    ref,
    string,
    table,
    text,
    union_all,
    utc_timestamp,
    window,
    with_ctes,
)

Cte = tuple[str, exp.Query]
"""A common table expression: its (quoted) name and its query."""


@dataclass(frozen=True)
class Scope:
    """What every query of one run reads: the tables, the window, the dialect.

    ``columns`` maps contract names to the source's (``columns:`` of the
    source); over ``bases`` (relations with the contract's names) only the
    dimensions keep a mapping. ``dimensions`` are the segment dimensions,
    read as ``d0``, ``d1``, ... inside the queries. ``units``: a table that
    already holds :func:`analysis.sql.aggregate_units.unit_rows` (the
    per-unit table, kept once per run where the connection keeps rows), read
    instead of aggregating the events again; ``in_window``: likewise, a table
    that holds :func:`all_windowed_events`.
    """

    experiment: Experiment
    window: Window
    dialect: str
    columns: Mapping[str, str]
    assignments: exp.Table
    events: exp.Table
    bases: tuple[Cte, ...]
    dimensions: tuple[str, ...]
    has_value: bool
    unique_events: bool
    units: exp.Table | None = None
    in_window: exp.Table | None = None
    has_label: bool = True
    has_task_id: bool = True

    def source(self, contract_name: str) -> exp.Column:
        """The source's column of a contract column."""
        return column(self.columns.get(contract_name, contract_name))

    @property
    def dims(self) -> list[str]:
        return [f"d{i}" for i in range(len(self.dimensions))]

    @property
    def end(self) -> exp.Expr:
        """The end of the analysis date (exclusive)."""
        return utc_timestamp(self.window.end)

    @property
    def start(self) -> exp.Expr:
        """Midnight UTC of the experiment's first day (day 0 of the daily timeline)."""
        return utc_timestamp(dt.datetime.combine(self.experiment.start, dt.time(), dt.UTC))


def dimension_columns(columns: Mapping[str, str]) -> dict[str, str]:
    """The mapped columns that are not the contract's (segment dimensions)."""
    contract = {*schema.ASSIGNMENTS, *schema.EVENTS}
    return {k: v for k, v in columns.items() if k not in contract}


def make_scope(
    experiment: Experiment,
    as_of: dt.date,
    dialect: str,
    tables: Mapping[str, str],
    columns: Mapping[str, str],
    dimensions: Sequence[str],
    has_value: bool,
    bases: Mapping[str, exp.Query] | None,
    unique_events: bool,
    has_label: bool = True,
    has_task_id: bool = True,
) -> Scope:
    """The scope of a run's queries; over ``bases`` every contract column is there."""
    window = Window(as_of, experiment.window_days, experiment.pre_window_days)
    if bases is None:
        return Scope(
            experiment, window, dialect, columns, table(tables["assignments"]),
            table(tables["events"]), (), tuple(dimensions), has_value, unique_events,
            has_label=has_label, has_task_id=has_task_id,
        )  # fmt: skip
    return Scope(
        experiment, window, dialect, dimension_columns(columns), ref("base_assignments"),
        ref("base_events"), tuple((cte(f"base_{t}"), bases[t]) for t in ("assignments", "events")),
        tuple(dimensions), True, unique_events,
    )  # fmt: skip


def first(row_number: exp.Expr) -> exp.Expr:
    """``row_number < 2``, i.e. the first row.

    Written as an inequality on purpose: a planner without statistics on a
    computed column (PostgreSQL) takes ``= 1`` to keep 0.5% of the rows and
    picks nested loops that rescan the events; ``< 2`` is costed at a third.
    """
    return lt(row_number, integer(2))


def kept(crossover: exp.Expr) -> exp.Expr:
    """``crossover < 1``: a unit that did not cross over (an inequality, see :func:`first`)."""
    return lt(crossover, integer(1))


# --------------------------------------------------------------------------- units


def clean_assignments(s: Scope) -> list[Cte]:
    """CTEs ending in ``units``: one row per unit, its first assignment and ``crossover`` (0/1).

    As :func:`analysis.metrics.clean_assignments`; the dimensions are ``d0``, ``d1``, ...
    """
    src, dims = s.source, s.dims
    assigned = (
        sqlglot.select(
            named(src("unit_id"), "unit_id"),
            named(src("variant"), "variant"),
            named(src("assigned_at"), "assigned_at"),
            *[named(text(src(d)), alias) for d, alias in zip(s.dimensions, dims, strict=True)],
        )
        .from_(s.assignments)
        .where(
            all_of(eq(src("experiment_id"), string(s.experiment.id)), lt(src("assigned_at"), s.end))
        )
    )
    order = [column("assigned_at"), column("variant"), *[column(d) for d in dims]]
    ranked = sqlglot.select(
        exp.Star(), named(window(exp.RowNumber(), [column("unit_id")], order), "rn")
    ).from_(ref("assigned"))
    null_variant = exp.Max(this=flag(exp.Is(this=column("variant"), expression=exp.Null())))
    variants_seen = exp.Add(
        this=exp.Count(this=exp.Distinct(expressions=[column("variant")])), expression=null_variant
    )
    crossed = (
        sqlglot.select(
            named(column("unit_id"), "unit_id"),
            named(flag(exp.GT(this=variants_seen, expression=integer(1))), "crossover"),
        )
        .from_(ref("assigned"))
        .group_by(column("unit_id"))
    )
    units = (
        sqlglot.select(
            named(column("unit_id", "f"), "unit_id"),
            named(column("variant", "f"), "variant"),
            named(column("assigned_at", "f"), "assigned_at"),
            *[named(column(d, "f"), d) for d in dims],
            named(column("crossover", "c"), "crossover"),
        )
        .from_(ref("ranked", "f"))
        .join(ref("crossed", "c"), on=eq(column("unit_id", "f"), column("unit_id", "c")))
        .where(first(column("rn", "f")))
    )
    return [
        *s.bases,
        (cte("assigned"), assigned),
        (cte("ranked"), ranked),
        (cte("crossed"), crossed),
        (cte("units"), units),
    ]


def _experiment_units(s: Scope) -> exp.Select:
    return (
        sqlglot.select(s.source("unit_id"))
        .from_(s.assignments)
        .where(eq(s.source("experiment_id"), string(s.experiment.id)))
    )


def cleaning_counts(s: Scope, events: bool = True) -> exp.Query:
    """Units per (variant, crossover), events read and distinct event ids, units assigned.

    ``events=False`` leaves part 1 out: over a quarantine's kept rows, the
    quarantine counts the events read and the duplicates
    (:func:`analysis.quarantine.raw_cleaning`), and the events are then read once.

    Rows ``(part, variant, crossover, n, n_unique)``: part 0 counts units,
    part 1 the experiment's events (as :func:`analysis.metrics.cleaning_counts`),
    part 2 the distinct units assigned by the end of the analysis date, counted
    from the assignments rather than from ``units`` (how many rows the per-unit
    metric table must hold; :mod:`analysis.sql.aggregate_checks`).
    """
    unit_counts = (
        sqlglot.select(
            named(integer(0), "part"),
            named(column("variant"), "variant"),
            named(column("crossover"), "crossover"),
            named(cast(exp.Count(this=exp.Star()), "bigint"), "n"),
            named(cast(integer(0), "bigint"), "n_unique"),
        )
        .from_(ref("units"))
        .group_by(column("variant"), column("crossover"))
    )
    of_units = s.source("unit_id").isin(query=_experiment_units(s))
    rows_read = cast(exp.Count(this=exp.Star()), "bigint")
    no_unit = (integer(1), text(exp.Null()), cast(exp.Null(), "int"))
    if s.unique_events:
        event_counts = (
            sqlglot.select(*no_unit, rows_read, rows_read).from_(s.events).where(of_units)
        )
    else:
        # Rows and distinct ids from one row per event id (NULL ids form one group,
        # as they count once among the distinct ids): DuckDB's GROUP BY spills to
        # disk, where its COUNT(DISTINCT) must hold every id in memory.
        per_id = (
            sqlglot.select(named(exp.Count(this=exp.Star()), "copies"))
            .from_(s.events)
            .where(of_units)
            .group_by(s.source("event_id"))
        )
        copies = cast(exp.Sum(this=column("copies")), "bigint")
        event_counts = sqlglot.select(*no_unit, copies, rows_read).from_(
            exp.Subquery(this=per_id, alias=exp.TableAlias(this=quoted("ids")))
        )
    distinct_units = exp.Count(this=exp.Distinct(expressions=[s.source("unit_id")]))
    by_the_end = all_of(
        eq(s.source("experiment_id"), string(s.experiment.id)), lt(s.source("assigned_at"), s.end)
    )
    assigned = (
        sqlglot.select(
            integer(2), *no_unit[1:], cast(distinct_units, "bigint"), cast(integer(0), "bigint")
        )
        .from_(s.assignments)
        .where(by_the_end)
    )
    parts = [unit_counts, event_counts, assigned] if events else [unit_counts, assigned]
    counts = exp.Subquery(
        this=union_all(parts),
        alias=exp.TableAlias(this=quoted("counts")),
    )
    return with_ctes(sqlglot.select(exp.Star()).from_(counts), clean_assignments(s))


# --------------------------------------------------------------------------- events


def deduplicated_events(s: Scope, names: Sequence[str] | None) -> list[Cte]:
    """CTEs ``relevant`` and ``numbered``: the events ``names`` (None: all) of the
    experiment's units.

    ``numbered.rn < 2`` keeps one row per ``event_id`` (every row when the
    events are known to be unique).
    """
    src = s.source
    value = double(src("value")) if s.has_value else double(exp.Null())
    label = src("label") if s.has_label else cast(exp.Null(), "TEXT")
    task = src("task_id") if s.has_task_id else cast(exp.Null(), "TEXT")
    relevant = (
        sqlglot.select(
            named(src("event_id"), "event_id"),
            named(src("unit_id"), "unit_id"),
            named(src("ts"), "ts"),
            named(src("event"), "event"),
            named(value, "value"),
            named(label, "label"),
            named(task, "task_id"),
        )
        .from_(s.events)
        .where(
            all_of(
                *([] if names is None else [src("event").isin(*[string(n) for n in names])]),
                lt(src("ts"), s.end),
                src("unit_id").isin(query=_experiment_units(s)),
            )
        )
    )
    order = [column("ts"), column("unit_id"), column("event"), column("value"), column("label")]
    rank = integer(1) if s.unique_events else window(exp.RowNumber(), [column("event_id")], order)
    numbered = sqlglot.select(exp.Star(), named(rank, "rn")).from_(ref("relevant"))
    return [(cte("relevant"), relevant), (cte("numbered"), numbered)]


def in_window_events(s: Scope) -> Cte:
    """CTE ``in_window``: deduplicated events of kept units inside their window.

    Columns ``unit_id, variant, assigned_at, ts, event, value, label, task_id, pre``; ``pre``
    is 1 for the pre-period ``[assigned_at - pre_days, assigned_at)``, as
    :func:`analysis.metrics.in_window_events`.
    """
    at, ts = column("assigned_at", "u"), column("ts", "e")
    pre_days, window_days = s.window.pre_days, s.window.window_days
    start = at if pre_days == 0 else exp.Sub(this=at, expression=hours(pre_days))
    conditions = [
        first(column("rn", "e")),
        kept(column("crossover", "u")),
        exp.GTE(this=ts, expression=start),
        lt(ts, s.end),
    ]
    if window_days is not None:
        conditions.append(lt(ts, exp.Add(this=at, expression=hours(window_days))))
    query = (
        sqlglot.select(
            named(column("unit_id", "u"), "unit_id"),
            named(column("variant", "u"), "variant"),
            named(at, "assigned_at"),
            named(ts, "ts"),
            named(column("event", "e"), "event"),
            named(column("value", "e"), "value"),
            named(column("label", "e"), "label"),
            named(column("task_id", "e"), "task_id"),
            named(flag(lt(ts, at)), "pre"),
        )
        .from_(ref("numbered", "e"))
        .join(ref("units", "u"), on=eq(column("unit_id", "e"), column("unit_id", "u")))
        .where(all_of(*conditions))
    )
    return cte("in_window"), query


def windowed_events(s: Scope, names: Sequence[str]) -> list[Cte]:
    """Every CTE up to ``in_window`` for the events ``names`` (read from
    ``s.in_window`` when a table keeps them)."""
    if s.in_window is not None:
        named_events = column("event").isin(*[string(n) for n in names])
        kept_rows = sqlglot.select(exp.Star()).from_(s.in_window).where(named_events)
        return [*clean_assignments(s), (cte("in_window"), kept_rows)]
    return [*clean_assignments(s), *deduplicated_events(s, names), in_window_events(s)]


def all_windowed_events(s: Scope) -> exp.Query:
    """``in_window`` for every event: what a connection that keeps rows stores once
    (``Scope.in_window``) for all the queries of a run."""
    ctes = [*clean_assignments(s), *deduplicated_events(s, None), in_window_events(s)]
    return with_ctes(sqlglot.select(exp.Star()).from_(ref("in_window")), ctes)
