"""The quarantine of :func:`analysis.quarantine.split`, computed inside the database.

:func:`quarantine_sql` labels every row with the first quarantine reason that
applies (:func:`analysis.sql.labels.labelled_rows`, as
:func:`analysis.quarantine.split` does) and reads back only the quarantined
rows (as polars frames, with ``reason``) and the counts. :func:`labelled_query`
is the query of every row with its reason (NULL for a used row);
:func:`used_rows` the rows a run uses, as queries (a push-down run aggregates
them); :func:`kept_rows` reads those rows into the
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

from analysis.config.experiments import Experiment
from analysis.quarantine import (
    REASON,
    TABLES,
    QuarantineResult,
)
from analysis.sources.conform import conform
from analysis.sources.errors import SourceError
from analysis.sql.database import Database, SqlTable, why
from analysis.sql.expressions import column
from analysis.sql.labels import WORK, labelled_rows
from analysis.sql.rows import count_rows, experiment_queries
from analysis.suites.load import DEFAULT_SUITE_DIR, Suite, load_suite
from analysis.suites.params import experiment_period, run_params

__all__ = ["SqlQuarantine", "kept_rows", "labelled_query", "quarantine_sql", "used_rows"]


def _suites(
    experiment: Experiment, as_of: dt.date, now: dt.datetime, suite_dir: Path
) -> dict[str, Suite]:
    params = run_params(experiment, as_of, now)
    return {t: load_suite(t, params, suite_dir) for t in TABLES}


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
    return labelled_rows(db.tables, suites, experiment, as_of, db.dialect)[table]


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
    suites = _suites(experiment, as_of, now, suite_dir)
    labelled = labelled_rows(tables, suites, experiment, as_of, db.dialect)
    return _rows(tables, labelled, used_only=True)


def _rows(
    tables: Mapping[str, SqlTable], labelled: Mapping[str, exp.Query], *, used_only: bool
) -> dict[str, exp.Select]:
    """Each table's columns from its labelled rows: those used (reason NULL), or all."""
    found = {}
    for table in TABLES:
        query = exp.select(*[column(c) for c in tables[table].columns])
        query = query.from_(labelled[table].subquery("l"))
        found[table] = query.where(column(WORK).is_(exp.null())) if used_only else query
    return found


@dataclass(frozen=True)
class SqlQuarantine:
    """What the database set aside: only the quarantined rows come back.

    ``rows[table]``: the quarantined rows, every column (contract names and
    types, an assignments table's segment dimensions) plus ``reason`` (or
    ``quarantine_reason`` when the input has a ``reason`` column);
    ``counts[table]``: rows per reason; ``rows_in[table]``: rows of the experiment;
    ``database``: the handle (and description of the tables) it ran on, which
    :func:`used_rows` and :func:`kept_rows` of the same run take;
    ``labelled[table]``: every row with its reason, as a relation (the
    temporary table that keeps them on the run's connection, or the query).
    """

    rows: Mapping[str, pl.DataFrame]
    counts: Mapping[str, Mapping[str, int]]
    rows_in: Mapping[str, int]
    crossover_units: int = 0
    queries: Mapping[str, str] = field(default_factory=dict, repr=False)
    database: Database = field(kw_only=True, repr=False, compare=False)
    labelled: Mapping[str, exp.Query] = field(default_factory=dict, repr=False, compare=False)

    def used(self) -> dict[str, exp.Select]:
        """The rows a run uses (:func:`used_rows`), read from :attr:`labelled`."""
        return _rows(self.database.tables, self.labelled, used_only=True)

    def read_rows(self) -> dict[str, exp.Select]:
        """Every row the quarantine read (``experiment_queries``'s), from :attr:`labelled`."""
        return _rows(self.database.tables, self.labelled, used_only=False)

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
    ``quarantine/<table>.parquet`` as today. On a connection that keeps rows
    (``db.connection``), the labelled rows are kept once, for the counts and
    for the rest of the run (:meth:`SqlQuarantine.used`).
    """
    now = now or dt.datetime.now(dt.UTC)
    suites = _suites(experiment, as_of, now, suite_dir)
    tables = db.tables
    labelled: dict[str, exp.Query] = dict(
        labelled_rows(tables, suites, experiment, as_of, db.dialect)
    )
    keep = db.connection.keep if db.connection is not None else None
    if keep is not None:
        for table in TABLES:
            try:
                labelled[table] = keep(f"proof_labelled_{table}", labelled[table].sql(db.dialect))
            except Exception as exc:  # the drivers raise many types; say which, never the URI
                raise SourceError(
                    f"source {db.source!r}: the quarantine of the {table} failed inside the "
                    f"database ({why(exc, db.uri)})"
                ) from None
    rows: dict[str, pl.DataFrame] = {}
    counts: dict[str, dict[str, int]] = {}
    texts: dict[str, str] = {}
    for table in TABLES:
        columns = list(tables[table].columns)
        name = _reason_column(columns)
        out = (
            exp.select(*[column(c) for c in columns], column(WORK))
            .from_(labelled[table].subquery("l"))
            .where(exp.not_(column(WORK).is_(exp.null())))
            .order_by(*[exp.Ordered(this=column(c), nulls_first=False) for c in columns])
        )
        texts[table] = out.sql(dialect=db.dialect)
        frame = db.fetch(texts[table])
        reason = frame.get_column(WORK).alias(name)
        conformed = conform(frame.drop(WORK).lazy(), db.source, table, {}).collect()
        rows[table] = conformed.with_columns(reason)
        per_reason = reason.value_counts(sort=False)
        counts[table] = {str(r): int(n) for r, n in sorted(per_reason.iter_rows())}
    period = experiment_period(experiment, as_of)
    rows_in = count_rows(db, experiment_queries(tables, experiment.id, period))
    crossed = db.fetch(labelled["crossed"].sql(dialect=db.dialect)).item()
    return SqlQuarantine(
        rows, counts, rows_in, int(crossed or 0), texts, database=db, labelled=labelled
    )


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
