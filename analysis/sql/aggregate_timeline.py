"""The two timelines as SQL: the daily cumulative moments, and the moments by week since exposure.

Both read ``in_window`` (:mod:`analysis.sql.aggregate_plan`) and return raw
sums only, a few rows per arm and day or week; :mod:`analysis.sql.aggregate_read`
turns them into moments exactly as :mod:`analysis.timeline` does.

* :func:`daily_increments` — :func:`analysis.timeline.daily_moments`: per
  unit and UTC day (numbered from the experiment's start) the in-window ``x``
  and ``y`` of the primary metric, their running totals per unit, and per
  (arm, day) the sums of the changes of ``x``, ``y``, ``x²``, ``y²`` and
  ``xy``; and the units arriving per (arm, day).
* :func:`weekly_sums` — :func:`analysis.timeline.weekly_moments`: per (arm,
  week since exposure) the sums of ``x``, ``y``, ``x²``, ``y²`` and ``xy``
  over the units whose week w is fully observed and have events in it, and
  the units per number of fully observed weeks (the units without events in
  a week add zeros, so the arm's ``n`` per week is all that the sums need).

Days and weeks are whole 24-hour periods counted in microseconds
(:func:`~analysis.sql.expressions.whole_periods`), never the session's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from analysis.config.experiments import EventAggregate, Metric
from analysis.sql.aggregate_plan import Cte, Scope, kept, windowed_events
from analysis.sql.aggregate_units import agg_key, event_mask
from analysis.sql.expressions import (
    all_of,
    case,
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
    union_all,
    whole_periods,
    window,
    with_ctes,
)
from analysis.timeline import timeline_parts

WEEK_DAYS = 7


@dataclass(frozen=True)
class TimelineMetric:
    """A metric a timeline sums: its name and whether it is a ratio (reads ``y``)."""

    name: str
    ratio: bool


def _summed(agg: EventAggregate) -> exp.Expr:
    """The part's sum over a group of events, 0 without any (a count, or a sum of values)."""
    mask = event_mask(agg)
    inner = flag(mask) if agg.agg == "count" else case(mask, column("value"), double(exp.Null()))
    return double(exp.Coalesce(this=exp.Sum(this=inner), expressions=[integer(0)]))


def _indicator(value: exp.Expr) -> exp.Expr:
    """``(value > 0)`` as 1.0 or 0.0 (a proportion's per-unit value)."""
    return case(exp.GT(this=value, expression=integer(0)), double(integer(1)), double(integer(0)))


def _sums(x: str, y: str) -> list[exp.Expr]:
    """``SUM(x), SUM(y), SUM(x*x), SUM(y*y), SUM(x*y)``."""
    cx, cy = column(x), column(y)
    return [
        exp.Sum(this=cx),
        exp.Sum(this=cy),
        exp.Sum(this=exp.Mul(this=cx, expression=cx.copy())),
        exp.Sum(this=exp.Mul(this=cy, expression=cy.copy())),
        exp.Sum(this=exp.Mul(this=cx.copy(), expression=cy.copy())),
    ]


def numbered(*expressions: exp.Expr) -> list[exp.Expr]:
    """Each expression named ``c0``, ``c1``, ... (drivers refuse duplicate column names)."""
    return [named(e, f"c{i}") for i, e in enumerate(expressions)]


def _counts(key: str, source: str, width: int, where: exp.Expr) -> exp.Select:
    """``1, variant, key, COUNT(*)`` and NULLs up to ``width`` sums, per (variant, key)."""
    return (
        sqlglot.select(
            *numbered(
                integer(1),
                column("variant"),
                column(key),
                double(exp.Count(this=exp.Star())),
                *[double(exp.Null()) for _ in range(width - 1)],
            )
        )
        .from_(ref(source))
        .where(where)
        .group_by(column("variant"), column(key))
    )


def daily_increments(s: Scope, metric: Metric) -> exp.Query | None:
    """Rows ``(part, variant, day, ...)``: part 0 the day's changes, part 1 arrivals.

    Part 0: ``sx, sy, sxx, syy, sxy`` (the sums of the changes of the units'
    cumulative values on that day); part 1: units whose first day (the later
    of their exposure and the start) is that day, in the first sum. Days are
    numbered from the experiment's start. None: the metric has no timeline.
    """
    parts = timeline_parts(metric)
    if parts is None:
        return None
    x_part, y_part = parts
    names = sorted({x_part.event, *([y_part.event] if y_part else [])})
    day = whole_periods(s.start, column("ts"), 1, s.dialect)
    events = (
        sqlglot.select(
            column("unit_id"),
            column("variant"),
            column("event"),
            column("value"),
            column("label"),
            named(day, "day"),
        )
        .from_(ref("in_window"))
        .where(
            all_of(eq(column("pre"), integer(0)), exp.GTE(this=column("ts"), expression=s.start))
        )
    )
    keys = [column("unit_id"), column("variant"), column("day")]
    y = _summed(y_part) if y_part is not None else double(integer(0))
    cells = (
        sqlglot.select(*keys, named(_summed(x_part), "x"), named(y, "y"))
        .from_(ref("daily_events"))
        .group_by(*keys)
    )
    unit, by_day = [column("unit_id")], [column("day")]
    running = sqlglot.select(
        column("variant"),
        column("day"),
        named(window(exp.Sum(this=column("x")), unit, by_day), "cx"),
        named(window(exp.Sum(this=column("y")), unit, by_day), "cy"),
        column("x"),
        column("y"),
    ).from_(ref("daily_cells"))
    cx: exp.Expr = column("cx")
    cy: exp.Expr = column("cy")
    px: exp.Expr = exp.Sub(this=cx.copy(), expression=column("x"))
    py: exp.Expr = exp.Sub(this=cy.copy(), expression=column("y"))
    if metric.kind == "proportion":
        cx, px = _indicator(cx), _indicator(px)
    changes = sqlglot.select(
        column("variant"),
        column("day"),
        named(cx, "cx"),
        named(cy, "cy"),
        named(px, "px"),
        named(py, "py"),
    ).from_(ref("daily_running"))
    diffs = {
        "dx": exp.Sub(this=column("cx"), expression=column("px")),
        "dy": exp.Sub(this=column("cy"), expression=column("py")),
        "dxx": exp.Sub(this=_square("cx"), expression=_square("px")),
        "dyy": exp.Sub(this=_square("cy"), expression=_square("py")),
        "dxy": exp.Sub(this=_product("cx", "cy"), expression=_product("px", "py")),
    }
    changed = (
        sqlglot.select(
            *numbered(
                integer(0),
                column("variant"),
                column("day"),
                *[exp.Sum(this=e) for e in diffs.values()],
            )
        )
        .from_(ref("daily_changes"))
        .group_by(column("variant"), column("day"))
    )
    since_start = whole_periods(s.start, column("assigned_at"), 1, s.dialect)
    first = case(exp.GT(this=since_start, expression=integer(0)), since_start, integer(0))
    exposed = (
        sqlglot.select(column("variant"), named(first, "first"))
        .from_(ref("units"))
        .where(kept(column("crossover")))
    )
    last_day = integer((s.window.as_of - s.experiment.start).days)
    arrived = _counts(
        "first", "daily_exposed", 5, exp.LTE(this=column("first"), expression=last_day)
    )
    ctes = [
        *windowed_events(s, names),
        (cte("daily_events"), events),
        (cte("daily_cells"), cells),
        (cte("daily_running"), running),
        (cte("daily_changes"), changes),
        (cte("daily_exposed"), exposed),
    ]
    return with_ctes(sqlglot.select(exp.Star()).from_(_union("daily", [changed, arrived])), ctes)


def _square(name: str) -> exp.Expr:
    return exp.Mul(this=column(name), expression=column(name))


def _product(a: str, b: str) -> exp.Expr:
    return exp.Mul(this=column(a), expression=column(b))


def _union(name: str, queries: Sequence[exp.Select]) -> exp.Subquery:
    return exp.Subquery(this=union_all(queries), alias=exp.TableAlias(this=quoted(name)))


def weekly_rows(s: Scope, metrics: Sequence[Metric]) -> tuple[list[Cte], list[TimelineMetric]]:
    """CTEs ending in ``weekly_rows`` — per unit and fully observed week with events:
    ``unit_id, variant, week`` and ``x<j>, y<j>`` per metric — beside ``weekly_units``
    (per kept unit its number of fully observed weeks). Empty without a timeline metric."""
    usable = [(m, parts) for m in metrics if (parts := timeline_parts(m)) is not None]
    if not usable:
        return [], []
    aggregates = {agg_key(p): p for _, parts in usable for p in parts if p is not None}
    index = {key: i for i, key in enumerate(sorted(aggregates))}
    names = sorted({a.event for a in aggregates.values()})
    week = whole_periods(column("assigned_at"), column("ts"), WEEK_DAYS, s.dialect)
    events = (
        sqlglot.select(
            column("unit_id"),
            column("event"),
            column("value"),
            column("label"),
            named(week, "week"),
        )
        .from_(ref("in_window"))
        .where(eq(column("pre"), integer(0)))
    )
    cells = (
        sqlglot.select(
            column("unit_id"),
            column("week"),
            *[named(_summed(aggregates[key]), f"s{i}") for key, i in index.items()],
        )
        .from_(ref("weekly_events"))
        .group_by(column("unit_id"), column("week"))
    )
    observed = whole_periods(column("assigned_at"), s.end, WEEK_DAYS, s.dialect)
    window_days = s.window.window_days
    if window_days is not None:
        closes = exp.Add(this=column("assigned_at"), expression=hours(window_days))
        observed = case(lt(closes, s.end), integer(window_days // WEEK_DAYS), observed)
    units = (
        sqlglot.select(
            column("unit_id"), column("variant"), named(cast(observed, "bigint"), "weeks")
        )
        .from_(ref("units"))
        .where(kept(column("crossover")))
    )
    values: list[exp.Expr] = [column("unit_id", "c"), column("variant", "u"), column("week", "c")]
    layout: list[TimelineMetric] = []
    for j, (m, (x_part, y_part)) in enumerate(usable):
        x: exp.Expr = column(f"s{index[agg_key(x_part)]}", "c")
        if m.kind == "proportion":
            x = _indicator(x)
        ratio = m.kind == "ratio" and y_part is not None
        y = column(f"s{index[agg_key(y_part)]}", "c") if ratio and y_part else double(integer(0))
        values += [named(x, f"x{j}"), named(y, f"y{j}")]
        layout.append(TimelineMetric(m.name, ratio))
    rows = (
        sqlglot.select(*values)
        .from_(ref("weekly_cells", "c"))
        .join(ref("weekly_units", "u"), on=eq(column("unit_id", "c"), column("unit_id", "u")))
        .where(lt(column("week", "c"), column("weeks", "u")))
    )
    ctes = [
        *windowed_events(s, names),
        (cte("weekly_events"), events),
        (cte("weekly_cells"), cells),
        (cte("weekly_units"), units),
        (cte("weekly_rows"), rows),
    ]
    return ctes, layout


def weekly_sums(
    s: Scope, metrics: Sequence[Metric]
) -> tuple[exp.Query | None, list[TimelineMetric]]:
    """Rows ``(part, variant, week, ...)``: part 0 five sums per metric, part 1 units per weeks.

    Part 0 per (arm, week): for each metric ``SUM(x), SUM(y), SUM(x²),
    SUM(y²), SUM(xy)`` over units with events in a fully observed week;
    part 1 per (arm, number of fully observed weeks > 0): the units, in the
    first sum. None (and no metrics) when no metric has a timeline.
    """
    ctes, layout = weekly_rows(s, metrics)
    if not layout:
        return None, []
    summed = (
        sqlglot.select(
            *numbered(
                integer(0),
                column("variant"),
                column("week"),
                *[e for j in range(len(layout)) for e in _sums(f"x{j}", f"y{j}")],
            )
        )
        .from_(ref("weekly_rows"))
        .group_by(column("variant"), column("week"))
    )
    counted = _counts(
        "weeks",
        "weekly_units",
        5 * len(layout),
        exp.GT(this=column("weeks"), expression=integer(0)),
    )
    query = with_ctes(sqlglot.select(exp.Star()).from_(_union("weekly", [summed, counted])), ctes)
    return query, layout
