"""The quarantine of :func:`analysis.quarantine.split`, computed inside the database.

:func:`quarantine_sql` labels every row with the first quarantine reason that
applies — the row-level rules of the suites (:mod:`analysis.sql.rules`), then
crossovers, duplicate assignments, the events of crossed-over and quarantined
units and duplicate event ids, as :func:`analysis.quarantine.split` does — and
reads back only the quarantined rows (as polars frames, with ``reason``) and
the counts. :func:`labelled_query` is the query of every row with its reason
(NULL for a used row); :func:`used_rows` the rows a run uses, as queries (a
push-down run aggregates them); :func:`kept_rows` reads those rows into the
split the polars path makes.

Every function takes the run's :class:`~analysis.sql.database.Database`
(``Database.open``): the tables are described once per run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from sqlglot import exp

from analysis import schema
from analysis.config.experiments import Experiment
from analysis.quarantine import (
    CROSSOVER,
    DUPLICATE_ASSIGNMENT,
    DUPLICATE_EVENT_ID,
    REASON,
    TABLES,
    UNIT_ASSIGNMENT_QUARANTINED,
    UNIT_CROSSED_OVER,
    QuarantineResult,
)
from analysis.sources.conform import conform
from analysis.sql.database import Database, SqlTable
from analysis.sql.expressions import column, false_if_null, literal, text_order, with_ctes
from analysis.sql.rows import count_rows, experiment_queries
from analysis.sql.rules import reason_case
from analysis.suites.load import DEFAULT_SUITE_DIR, Suite, load_suite
from analysis.suites.params import experiment_period, run_params

__all__ = ["SqlQuarantine", "kept_rows", "labelled_query", "quarantine_sql", "used_rows"]

_WORK = "__proof_reason"


def _suites(
    experiment: Experiment, as_of: dt.date, now: dt.datetime, suite_dir: Path
) -> dict[str, Suite]:
    params = run_params(experiment, as_of, now)
    return {t: load_suite(t, params, suite_dir) for t in TABLES}


def _extra_copies(
    prefix: str,
    source: str,
    columns: Sequence[str],
    candidate: exp.Expr,
    key: str,
    order: Sequence[str],
    reason: str,
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
                exp.Ordered(this=text_order(c, contract.get(c)), nulls_first=False) for c in order
            ]
        ),
    )
    rest = (
        exp.select(*[column(c) for c in columns], column(_WORK))
        .from_(source)
        .where(exp.not_(false_if_null(in_repeated.copy())))
    )
    copies = (
        exp.select(
            *[column(c) for c in columns],
            exp.alias_(exp.Case().when(rank > 1, exp.Literal.string(reason)), _WORK),
        )
        .from_(source)
        .where(in_repeated)
    )
    return [(repeated, keys), (f"{prefix}_final", exp.union(rest, copies, distinct=False))]


def _labelled(
    tables: Mapping[str, SqlTable],
    suites: Mapping[str, Suite],
    experiment: Experiment,
    as_of: dt.date,
) -> dict[str, exp.Select]:
    """Every row of each table with ``__proof_reason`` (NULL: used), as quarantine.split."""
    queries = experiment_queries(tables, experiment.id, experiment_period(experiment, as_of))
    end = literal(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC))
    a_cols = list(tables["assignments"].columns)
    e_cols = list(tables["events"].columns)

    def star(columns: Sequence[str]) -> list[exp.Expr]:
        return [column(c) for c in columns]

    in_time = exp.and_(exp.not_(column("assigned_at").is_(exp.null())), column("assigned_at") < end)
    a_rules = exp.select(*star(a_cols), exp.alias_(reason_case(suites["assignments"]), _WORK))
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
                column(_WORK),
                exp.Case().when(in_crossed, exp.Literal.string(CROSSOVER)),
            ),
            _WORK,
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
            exp.and_(column(_WORK).is_(exp.null()), in_time),
            "unit_id",
            ["assigned_at", *others],
            DUPLICATE_ASSIGNMENT,
        ),
    ]
    units = exp.not_(column("unit_id").is_(exp.null()))
    kept = (
        exp.select(column("unit_id"))
        .from_("a_final")
        .where(exp.and_(column(_WORK).is_(exp.null()), units))
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
    e_rules = exp.select(*star(e_cols), exp.alias_(e_reason, _WORK)).from_("e_raw")
    e_candidate = exp.and_(
        column(_WORK).is_(exp.null()), exp.not_(column("event_id").is_(exp.null()))
    )
    e_others = [c for c in e_cols if c not in ("event_id", "ts")]
    e_ctes = [
        *ctes,
        ("lost", lost),
        ("e_raw", queries["events"]),
        ("e_rules", e_rules),
        *_extra_copies(
            "e", "e_rules", e_cols, e_candidate, "event_id", ["ts", *e_others], DUPLICATE_EVENT_ID
        ),
    ]
    return {
        "assignments": with_ctes(exp.select(exp.Star()).from_("a_final"), ctes),
        "events": with_ctes(exp.select(exp.Star()).from_("e_final"), e_ctes),
        "crossed": with_ctes(exp.select(exp.Count(this=exp.Star())).from_("crossed"), ctes),
    }


def labelled_query(
    db: Database,
    experiment: Experiment,
    as_of: dt.date,
    table: str,
    *,
    now: dt.datetime,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> exp.Select:
    """Every row of ``table`` (contract names) with ``__proof_reason``: NULL for a used row.

    ``WHERE "__proof_reason" IS NULL`` gives exactly the rows
    :func:`analysis.quarantine.split` uses, group rules included.
    """
    suites = _suites(experiment, as_of, now, suite_dir)
    return _labelled(db.tables, suites, experiment, as_of)[table]


def used_rows(
    db: Database,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> dict[str, exp.Select]:
    """The rows :func:`analysis.quarantine.split` uses, per table, as queries.

    :func:`labelled_query` ``WHERE "__proof_reason" IS NULL``, without the
    reason column: the contract's column names (an assignments table's other
    columns under their own names). ``now`` must be the ``now`` the
    quarantine ran with (it bounds ``ts_in_future``).
    """
    tables = db.tables
    labelled = _labelled(tables, _suites(experiment, as_of, now, suite_dir), experiment, as_of)
    return {
        table: exp.select(*[column(c) for c in tables[table].columns])
        .from_(labelled[table].subquery("l"))
        .where(column(_WORK).is_(exp.null()))
        for table in TABLES
    }


@dataclass(frozen=True)
class SqlQuarantine:
    """What the database set aside: only the quarantined rows come back.

    ``rows[table]``: the quarantined rows, every column (contract names and
    types, an assignments table's segment dimensions) plus ``reason`` (or
    ``quarantine_reason`` when the input has a ``reason`` column);
    ``counts[table]``: rows per reason; ``rows_in[table]``: rows of the experiment;
    ``database``: the handle (and description of the tables) it ran on, which
    :func:`used_rows` and :func:`kept_rows` of the same run take.
    """

    rows: Mapping[str, pl.DataFrame]
    counts: Mapping[str, Mapping[str, int]]
    rows_in: Mapping[str, int]
    crossover_units: int = 0
    queries: Mapping[str, str] = field(default_factory=dict, repr=False)
    database: Database = field(kw_only=True, repr=False, compare=False)

    @property
    def rows_quarantined(self) -> dict[str, int]:
        return {t: frame.height for t, frame in self.rows.items()}

    @property
    def quarantined(self) -> Mapping[str, pl.DataFrame]:
        """The quarantined rows per table, as ``QuarantineResult.quarantined``."""
        return self.rows


def _reason_column(columns: Sequence[str]) -> str:
    return REASON if REASON not in columns else f"quarantine_{REASON}"


def quarantine_sql(
    db: Database,
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> SqlQuarantine:
    """The quarantine of :func:`analysis.quarantine.split`, computed inside the database.

    Each row gets the first reason that applies, in the order of ``split``;
    only the quarantined rows are read back. The caller writes them with
    ``quarantine/<table>.parquet`` as today.
    """
    now = now or dt.datetime.now(dt.UTC)
    suites = _suites(experiment, as_of, now, suite_dir)
    tables = db.tables
    labelled = _labelled(tables, suites, experiment, as_of)
    rows: dict[str, pl.DataFrame] = {}
    counts: dict[str, dict[str, int]] = {}
    texts: dict[str, str] = {}
    for table in TABLES:
        columns = list(tables[table].columns)
        name = _reason_column(columns)
        out = (
            exp.select(*[column(c) for c in columns], column(_WORK))
            .from_(labelled[table].subquery("l"))
            .where(exp.not_(column(_WORK).is_(exp.null())))
            .order_by(*[exp.Ordered(this=column(c), nulls_first=False) for c in columns])
        )
        texts[table] = out.sql(dialect=db.dialect)
        frame = db.fetch(texts[table])
        reason = frame.get_column(_WORK).alias(name)
        conformed = conform(frame.drop(_WORK).lazy(), db.source, table, {}).collect()
        rows[table] = conformed.with_columns(reason)
        per_reason = reason.value_counts(sort=False)
        counts[table] = {str(r): int(n) for r, n in sorted(per_reason.iter_rows())}
    period = experiment_period(experiment, as_of)
    rows_in = count_rows(db, experiment_queries(tables, experiment.id, period))
    crossed = db.fetch(labelled["crossed"].sql(dialect=db.dialect)).item()
    return SqlQuarantine(rows, counts, rows_in, int(crossed or 0), texts, database=db)


def kept_rows(
    db: Database,
    experiment: Experiment,
    as_of: dt.date,
    held: SqlQuarantine,
    *,
    now: dt.datetime,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> QuarantineResult:
    """The split the polars path makes, from a quarantine that ran inside the database.

    Only the rows the quarantine keeps are read (:func:`used_rows`, with the
    quarantine's ``now``), conformed to the contract's types; the quarantined
    rows, counts and rows in are ``held``'s. The result is what
    :func:`analysis.quarantine.split` returns over the same rows (tested), so
    the per-day partials and every metric run on it unchanged.
    """
    queries = used_rows(db, experiment, as_of, now=now, suite_dir=suite_dir)
    used = {
        table: conform(
            db.fetch(query.sql(dialect=db.dialect)).lazy(), db.source, table, {}
        ).collect()
        for table, query in queries.items()
    }
    assigned = pl.concat(
        [used["assignments"].get_column("unit_id"), held.rows["assignments"].get_column("unit_id")]
    ).drop_nulls()
    unassigned = used["events"].filter(~pl.col("unit_id").is_in(assigned.implode())).height
    return QuarantineResult(
        assignments=used["assignments"],
        events=used["events"],
        quarantined=held.rows,
        counts=held.counts,
        rows_in=held.rows_in,
        crossover_units=held.crossover_units,
        unassigned_events=unassigned,
    )
