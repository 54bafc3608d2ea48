"""Every row of an experiment labelled with its quarantine reason, as SQL.

:func:`labelled_rows` is the query behind :mod:`analysis.sql.quarantine`: each row
of the experiment's assignments and events with ``__proof_reason``, the first
reason of :func:`analysis.quarantine.split` that applies (NULL: the row is
used) — the row-level rules of the suites (:mod:`analysis.sql.rules`), then
crossovers, duplicate assignments, the events of crossed-over and quarantined
units and duplicate event ids.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlglot import exp

from analysis import schema
from analysis.config.experiments import Experiment
from analysis.quarantine import (
    CROSSOVER,
    DUPLICATE_ASSIGNMENT,
    DUPLICATE_EVENT_ID,
    UNIT_ASSIGNMENT_QUARANTINED,
    UNIT_CROSSED_OVER,
)
from analysis.sql.database import SqlTable
from analysis.sql.expressions import column, false_if_null, literal, text_order, with_ctes
from analysis.sql.rows import experiment_queries
from analysis.sql.rules import reason_case
from analysis.suites.load import Suite
from analysis.suites.params import experiment_period

__all__ = ["WORK", "labelled_rows"]

#: The reason column of the labelled rows (NULL: used).
WORK = "__proof_reason"


def _extra_copies(
    prefix: str,
    source: str,
    columns: Sequence[str],
    candidate: exp.Expr,
    key: str,
    order: Sequence[str],
    reason: str,
    dialect: str,
) -> list[tuple[str, exp.Expr]]:
    """CTEs labelling the copies beyond the first of each repeated ``key`` among candidates.

    The first copy is the one ``quarantine._extra_copies`` keeps: by ``order``,
    text by bytes (``COLLATE "C"``), nulls last. Only the rows of repeated keys
    are sorted (a hash aggregate finds them); ``<prefix>_final`` holds every row.
    """
    contract = {**schema.TABLES["assignments"], **schema.TABLES["events"]}
    repeated = f"{prefix}_repeated"
    keys = (
        exp.select(column(key))
        .from_(source)
        .where(candidate.copy())
        .group_by(column(key))
        .having(exp.Count(this=exp.Star()) > 1)
    )
    in_repeated = exp.and_(
        candidate.copy(), column(key).isin(query=exp.select(column(key)).from_(repeated))
    )
    rank = exp.Window(
        this=exp.RowNumber(),
        partition_by=[column(key)],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=text_order(c, contract.get(c), dialect), nulls_first=False)
                for c in order
            ]
        ),
    )
    rest = (
        exp.select(*[column(c) for c in columns], column(WORK))
        .from_(source)
        .where(exp.not_(false_if_null(in_repeated.copy())))
    )
    copies = (
        exp.select(
            *[column(c) for c in columns],
            exp.alias_(exp.Case().when(rank > 1, exp.Literal.string(reason)), WORK),
        )
        .from_(source)
        .where(in_repeated)
    )
    return [(repeated, keys), (f"{prefix}_final", exp.union(rest, copies, distinct=False))]


def labelled_rows(
    tables: Mapping[str, SqlTable],
    suites: Mapping[str, Suite],
    experiment: Experiment,
    as_of: dt.date,
    dialect: str,
) -> dict[str, exp.Select]:
    """Every row of each table with ``__proof_reason`` (NULL: used), as quarantine.split,
    for the database of ``dialect`` (how it orders text by bytes)."""
    queries = experiment_queries(tables, experiment.id, experiment_period(experiment, as_of))
    end = literal(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC))
    a_cols = list(tables["assignments"].columns)
    e_cols = list(tables["events"].columns)

    def star(columns: Sequence[str]) -> list[exp.Expr]:
        return [column(c) for c in columns]

    in_time = exp.and_(exp.not_(column("assigned_at").is_(exp.null())), column("assigned_at") < end)
    a_rules = exp.select(*star(a_cols), exp.alias_(reason_case(suites["assignments"]), WORK))
    crossed = (
        exp.select(column("unit_id"))
        .from_("a_raw")
        .where(
            exp.and_(
                exp.not_(column("unit_id").is_(exp.null())),
                exp.not_(column("variant").is_(exp.null())),
                in_time,
            )
        )
        .group_by(column("unit_id"))
        .having(exp.Count(this=exp.Distinct(expressions=[column("variant")])) > 1)
    )
    in_crossed = column("unit_id").isin(query=exp.select(column("unit_id")).from_("crossed"))
    a_cross = exp.select(
        *star(a_cols),
        exp.alias_(
            exp.func(
                "COALESCE",
                column(WORK),
                exp.Case().when(in_crossed, exp.Literal.string(CROSSOVER)),
            ),
            WORK,
        ),
    ).from_("a_rules")
    others = [c for c in a_cols if c not in ("unit_id", "assigned_at")]
    ctes: list[tuple[str, exp.Expr]] = [
        ("a_raw", queries["assignments"]),
        ("a_rules", a_rules.from_("a_raw")),
        ("crossed", crossed),
        ("a_cross", a_cross),
        *_extra_copies(
            "a",
            "a_cross",
            a_cols,
            exp.and_(column(WORK).is_(exp.null()), in_time),
            "unit_id",
            ["assigned_at", *others],
            DUPLICATE_ASSIGNMENT,
            dialect,
        ),
    ]
    units = exp.not_(column("unit_id").is_(exp.null()))
    kept = (
        exp.select(column("unit_id"))
        .from_("a_final")
        .where(exp.and_(column(WORK).is_(exp.null()), units))
    )
    lost = (
        exp.select(column("unit_id"))
        .from_("a_final")
        .where(
            exp.and_(
                units,
                exp.not_(column("unit_id").isin(query=kept)),
                exp.not_(in_crossed),
            )
        )
    )
    e_reason = exp.func(
        "COALESCE",
        reason_case(suites["events"]),
        exp.Case()
        .when(in_crossed, exp.Literal.string(UNIT_CROSSED_OVER))
        .when(
            column("unit_id").isin(query=exp.select(column("unit_id")).from_("lost")),
            exp.Literal.string(UNIT_ASSIGNMENT_QUARANTINED),
        ),
    )
    e_rules = exp.select(*star(e_cols), exp.alias_(e_reason, WORK)).from_("e_raw")
    e_candidate = exp.and_(
        column(WORK).is_(exp.null()), exp.not_(column("event_id").is_(exp.null()))
    )
    e_others = [c for c in e_cols if c not in ("event_id", "ts")]
    e_ctes = [
        *ctes,
        ("lost", lost),
        ("e_raw", queries["events"]),
        ("e_rules", e_rules),
        *_extra_copies(
            "e",
            "e_rules",
            e_cols,
            e_candidate,
            "event_id",
            ["ts", *e_others],
            DUPLICATE_EVENT_ID,
            dialect,
        ),
    ]
    return {
        "assignments": with_ctes(exp.select(exp.Star()).from_("a_final"), ctes),
        "events": with_ctes(exp.select(exp.Star()).from_("e_final"), e_ctes),
        "crossed": with_ctes(exp.select(exp.Count(this=exp.Star())).from_("crossed"), ctes),
    }
