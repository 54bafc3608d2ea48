"""Quarantine, not deletion: rows that break a row-level rule are set aside, with a reason.

:func:`split` cuts an experiment's raw tables into the rows the analysis uses
and the rows it quarantines, so that per table

    rows in = rows used + rows quarantined

and every quarantined row keeps all its columns plus ``reason``. The per-row
rules are the ``row_level`` expectations of ``expectations/<table>.json``
(translated to polars by :func:`analysis.suites.conditions.failing_rows`); the rules
about groups of rows follow the contract:

assignments, in this order (a row gets the first reason that applies):
  ``null_<column>`` · ``unknown_variant`` · ``assigned_out_of_range`` ·
  ``crossover`` (every row of a unit assigned to two variants by the end of
  the analysis date) · ``duplicate_assignment`` (a unit's repeated rows in one
  variant; the first assignment is kept).
events:
  ``null_<column>`` · ``ts_in_future`` · ``ts_before_window`` ·
  ``non_finite_value`` (a NaN, +inf or -inf ``value``: no statistic can use
  it; range and set rules judge finite values only) ·
  ``value_out_of_range`` · ``unit_crossed_over`` (events of a crossed-over
  unit: excluded from every metric, so kept out of the used rows) ·
  ``unit_assignment_quarantined`` (events of a unit whose every assignment row
  was quarantined) · ``duplicate_event_id`` (copies beyond the one kept).

Which copy of a duplicate is kept does not depend on row order: the first by
``ts`` (``assigned_at``), then by every other column. Events whose unit has no
assignment row at all are not errors (they are not part of the experiment):
they stay in the used rows, where the analysis's join leaves them out, and are
counted in ``unassigned_events``. Rows after the analysis date are valid and
stay in the used rows too; the analysis windows leave them out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from analysis.config.experiments import Experiment
from analysis.keys import maybe_repeated
from analysis.measurement import Cleaning
from analysis.partitions.days import chunked_as
from analysis.sources.read import Tables
from analysis.suites.conditions import failing_rows
from analysis.suites.load import DEFAULT_SUITE_DIR, Suite, load_suite
from analysis.suites.params import run_params

REASON = "reason"
CROSSOVER = "crossover"
DUPLICATE_ASSIGNMENT = "duplicate_assignment"
UNIT_CROSSED_OVER = "unit_crossed_over"
UNIT_ASSIGNMENT_QUARANTINED = "unit_assignment_quarantined"
DUPLICATE_EVENT_ID = "duplicate_event_id"
_ROW = "__row"
_WORK = "__reason"  # the working column: an input may have its own "reason"
_UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
TABLES = ("assignments", "events")


@dataclass(frozen=True)
class QuarantineResult:
    """The rows an analysis uses, the rows it set aside, and every count.

    ``assignments``/``events`` are the used rows (the input's columns);
    ``quarantined[table]`` the set-aside rows with a ``reason`` column;
    ``counts[table]`` rows per reason; ``rows_in[table]`` rows read.
    """

    assignments: pl.DataFrame
    events: pl.DataFrame
    quarantined: Mapping[str, pl.DataFrame]
    counts: Mapping[str, Mapping[str, int]]
    rows_in: Mapping[str, int]
    crossover_units: int = 0
    unassigned_events: int = 0

    @property
    def rows_used(self) -> dict[str, int]:
        return {"assignments": self.assignments.height, "events": self.events.height}

    @property
    def rows_quarantined(self) -> dict[str, int]:
        return {t: frame.height for t, frame in self.quarantined.items()}

    def tables(self) -> Tables:
        """The used rows, as the lazy tables ``analysis.pipeline.measure`` takes."""
        return Tables(self.assignments.lazy(), self.events.lazy())

    def partial_inputs(self) -> Tables:
        """The rows per-day partials are computed from: the used rows and the crossed-over units'.

        Merging partials leaves crossed-over units out (they are not among the
        used assignments). Keeping their rows in the partials means a unit that
        crosses over tonight leaves the key of every (day, cohort) it had
        events in unchanged, instead of forcing those partitions to be
        recomputed (analysis.partials_cache). Duplicate copies among their
        events are dropped like the split drops them.
        """
        crossed = self._rows("assignments", CROSSOVER)
        crossed_events = self._rows("events", UNIT_CROSSED_OVER).unique(
            subset="event_id", keep="first", maintain_order=True
        )
        return Tables(
            pl.concat([self.assignments, crossed]).lazy(),
            pl.concat([self.events, crossed_events]).lazy(),
        )

    def _rows(self, table: str, reason: str) -> pl.DataFrame:
        """The quarantined rows of ``table`` set aside for ``reason``, in the input's columns."""
        columns = (self.assignments if table == "assignments" else self.events).columns
        column = _reason_column(columns)
        return self.quarantined[table].filter(pl.col(column) == reason).drop(column)

    def analysed_units(self, as_of: dt.date) -> int:
        """Units the analysis includes: used, assigned by the end of ``as_of``."""
        end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
        return int(
            self.assignments.filter(pl.col("assigned_at") < end).get_column("unit_id").n_unique()
        )

    def cleaning(self, cleaning: Cleaning) -> Cleaning:
        """``cleaning`` (measured on the used rows) with the counts of the raw rows.

        ``events`` = event rows read; ``duplicates_dropped`` = quarantined
        duplicate copies; ``crossovers_excluded`` = crossed-over units.
        """
        return raw_cleaning(cleaning, self.counts, self.rows_in, self.crossover_units)

    def summary(self) -> dict[str, Any]:
        """Counts for results.json (``data`` extensions) and logs."""
        return {
            "rows_in": dict(self.rows_in),
            "rows_used": self.rows_used,
            "rows_quarantined": self.rows_quarantined,
            "reasons": {t: dict(c) for t, c in self.counts.items()},
            "crossover_units": self.crossover_units,
            "unassigned_events": self.unassigned_events,
        }


def raw_cleaning(
    cleaning: Cleaning,
    counts: Mapping[str, Mapping[str, int]],
    rows_in: Mapping[str, int],
    crossover_units: int,
) -> Cleaning:
    """``cleaning`` (measured on the used rows) with the counts of a quarantine's raw rows.

    What :meth:`QuarantineResult.cleaning` reports, for any quarantine (e.g. the
    one run inside the database, ``analysis.sql.quarantine.SqlQuarantine``).
    """
    return replace(
        cleaning,
        events=rows_in.get("events", 0),
        duplicates_dropped=counts.get("events", {}).get(DUPLICATE_EVENT_ID, 0),
        crossovers_excluded=crossover_units,
    )


def _collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame if isinstance(frame, pl.DataFrame) else frame.collect(engine="streaming")


def collect_tables(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
) -> dict[str, pl.DataFrame]:
    """Read both tables once (a lazy frame over a database would query it per use).

    :func:`split` and ``validation.experiment.validate_experiment`` both take the result.
    """
    if isinstance(tables, Tables):
        tables = {"assignments": tables.assignments, "events": tables.events}
    return {t: _collect(tables[t]) for t in TABLES}


def _row_reasons(suite: Suite) -> list[pl.Expr]:
    """One ``when`` per per-row rule of the suite, in suite order."""
    return [
        pl.when(failing_rows(e)).then(pl.lit(e.reason))
        for e in suite.row_level()
        if e.type not in _UNIQUENESS
    ]


def _first_reason(exprs: list[pl.Expr]) -> pl.Expr:
    none = pl.lit(None, dtype=pl.String)
    return pl.coalesce([*exprs, none]).alias(_WORK) if exprs else none.alias(_WORK)


def _extra_copies(frame: pl.DataFrame, key: str, order: list[str]) -> pl.Series:
    """Row ids of the copies beyond the first of each repeated ``key`` among ``frame``."""
    # The rank below is over the exact key: rows kept by a hash collision alone rank 0.
    repeated = frame.filter(maybe_repeated(frame.get_column(key)))
    if repeated.is_empty():
        return repeated.get_column(_ROW)
    ranked = repeated.sort([key, *order], nulls_last=True)
    return ranked.filter(pl.int_range(pl.len()).over(key) > 0).get_column(_ROW)


def _with_row_ids(raw: pl.DataFrame) -> pl.DataFrame:
    """``raw`` with a first column of row numbers chunked as its own columns
    (:func:`~analysis.partitions.days.chunked_as`: the reasons of 10.7M events took
    0.28 s instead of 0.57 s)."""
    ids = pl.int_range(0, raw.height, dtype=pl.UInt32, eager=True).alias(_ROW)
    return pl.DataFrame([chunked_as(ids, raw), *raw.get_columns()])


def _set_reason(frame: pl.DataFrame, rows: pl.Series, reason: str) -> pl.DataFrame:
    hit = pl.col(_ROW).is_in(rows.implode()) & pl.col(_WORK).is_null()
    return frame.with_columns(
        pl.when(hit).then(pl.lit(reason)).otherwise(pl.col(_WORK)).alias(_WORK)
    )


def _split_assignments(
    raw: pl.DataFrame, suite: Suite, end: dt.datetime
) -> tuple[pl.DataFrame, pl.Series]:
    """Assignments with a reason per quarantined row, and the crossed-over units."""
    frame = _with_row_ids(raw).with_columns(_first_reason(_row_reasons(suite)))
    keyed = pl.col("unit_id").is_not_null() & pl.col("variant").is_not_null()
    in_time = pl.col("assigned_at").is_not_null() & (pl.col("assigned_at") < end)
    crossed = (
        frame.filter(keyed & in_time)
        .group_by("unit_id")
        .agg(pl.col("variant").n_unique().alias("n"))
        .filter(pl.col("n") > 1)
        .get_column("unit_id")
    )
    frame = frame.with_columns(
        pl.when(pl.col(_WORK).is_null() & pl.col("unit_id").is_in(crossed.implode()))
        .then(pl.lit(CROSSOVER))
        .otherwise(pl.col(_WORK))
        .alias(_WORK)
    )
    others = [c for c in raw.columns if c not in ("unit_id", "assigned_at")]
    candidates = frame.filter(pl.col(_WORK).is_null() & in_time)
    frame = _set_reason(
        frame, _extra_copies(candidates, "unit_id", ["assigned_at", *others]), DUPLICATE_ASSIGNMENT
    )
    return frame, crossed


def _split_events(
    raw: pl.DataFrame,
    suite: Suite,
    crossed: pl.Series,
    lost_units: pl.Series,
    repeats: pl.Series | None = None,
) -> pl.DataFrame:
    frame = _with_row_ids(raw)
    unit = pl.col("unit_id")
    by_unit = [
        pl.when(unit.is_in(crossed.implode())).then(pl.lit(UNIT_CROSSED_OVER)),
        pl.when(unit.is_in(lost_units.implode())).then(pl.lit(UNIT_ASSIGNMENT_QUARANTINED)),
    ]
    frame = frame.with_columns(_first_reason([*_row_reasons(suite), *by_unit]))
    others = [c for c in raw.columns if c not in ("event_id", "ts")]
    # Only ids that repeat somewhere can have extra copies: picking those few rows
    # first spares a copy of every other row wherever some row has a reason.
    if repeats is None:
        repeats = maybe_repeated(raw.get_column("event_id"))
    candidates = frame.filter(repeats & pl.col(_WORK).is_null() & pl.col("event_id").is_not_null())
    return _set_reason(
        frame, _extra_copies(candidates, "event_id", ["ts", *others]), DUPLICATE_EVENT_ID
    )


def _reason_column(columns: list[str]) -> str:
    """``reason``, or ``quarantine_reason`` when the input has a ``reason`` column."""
    return REASON if REASON not in columns else f"quarantine_{REASON}"


def _parts(frame: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    used = frame.filter(pl.col(_WORK).is_null()).select(columns)
    name = _reason_column(columns)
    set_aside = frame.filter(pl.col(_WORK).is_not_null()).select(
        *columns, pl.col(_WORK).alias(name)
    )
    return used, set_aside


def _counts(quarantined: pl.DataFrame, name: str) -> dict[str, int]:
    rows = quarantined.group_by(name).agg(pl.len().alias("n")).sort(name).iter_rows()
    return {str(reason): int(n) for reason, n in rows}


def split(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    event_id_repeats: pl.Series | None = None,
) -> QuarantineResult:
    """Split raw ``assignments`` and ``events`` into used and quarantined rows.

    ``now`` (default: the current time) bounds "not in the future"; ``as_of``
    bounds crossovers and duplicate assignments (as the analysis sees them).
    ``event_id_repeats``: :func:`analysis.keys.maybe_repeated` of the raw
    events' ``event_id``, when the caller has it (the validation needs it too).
    """
    now = now or dt.datetime.now(dt.UTC)
    raw = collect_tables(tables)
    params = run_params(experiment, as_of, now)
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    assignments, crossed = _split_assignments(
        raw["assignments"], load_suite("assignments", params, suite_dir), end
    )
    kept_units = assignments.filter(pl.col(_WORK).is_null()).get_column("unit_id").unique()
    all_units = assignments.get_column("unit_id").drop_nulls().unique()
    lost = all_units.filter(
        ~all_units.is_in(kept_units.implode()) & ~all_units.is_in(crossed.implode())
    )
    suite = load_suite("events", params, suite_dir)
    events = _split_events(raw["events"], suite, crossed, lost, event_id_repeats)

    used_a, out_a = _parts(assignments, raw["assignments"].columns)
    used_e, out_e = _parts(events, raw["events"].columns)
    unassigned = used_e.filter(~pl.col("unit_id").is_in(all_units.implode())).height
    return QuarantineResult(
        assignments=used_a,
        events=used_e,
        quarantined={"assignments": out_a, "events": out_e},
        counts={
            "assignments": _counts(out_a, _reason_column(raw["assignments"].columns)),
            "events": _counts(out_e, _reason_column(raw["events"].columns)),
        },
        rows_in={t: frame.height for t, frame in raw.items()},
        crossover_units=crossed.len(),
        unassigned_events=unassigned,
    )
