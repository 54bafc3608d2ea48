"""Writing simulated tables: a DuckDB file or a folder of parquet files, atomically.

Both writers *merge* by experiment: the rows of the experiments being written
replace those experiments' earlier rows, and every other experiment's rows are
kept as they are, so ``proof simulate -e one`` does not wipe the others.

Events carry no ``experiment_id`` (the contract ties them to units), so an
experiment's events are the events of its units: the writers drop the earlier
events of every unit assigned in a replaced experiment (before or now) and keep
all other events, including those without a unit.  When such a unit is also
assigned in a kept experiment its events cannot be told apart, and the writers
refuse with a :class:`ValueError` rather than guess.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from analysis.config.sources import DuckDBSource, FileSource, Source
from analysis.devtools.simulate.model import SimulatedData

log = logging.getLogger(__name__)

_PART = re.compile(r"part-\d{4}\.parquet")
_SHOWN = 5  # conflicting units named in an error message


@dataclass(frozen=True)
class WriteSummary:
    """What a writer did to its target.

    Attributes:
        target: the DuckDB file or the parquet folder.
        experiments: the experiments whose rows were replaced (sorted).
        assignments: assignment rows written for them.
        events: event rows written for them.
        kept_experiments: the other experiments whose rows were kept (sorted).
        kept_assignments: assignment rows kept (those of ``kept_experiments``,
            and any without an experiment id).
        kept_events: event rows kept (those of units not in ``experiments``).
    """

    target: Path
    experiments: tuple[str, ...]
    assignments: int
    events: int
    kept_experiments: tuple[str, ...]
    kept_assignments: int
    kept_events: int

    @property
    def message(self) -> str:
        """One line for a log or the console: what was written and what was kept."""
        wrote = (
            f"replaced the rows of {len(self.experiments)} experiment(s) "
            f"({', '.join(self.experiments) or 'none'}) in {self.target}"
        )
        if not (self.kept_assignments or self.kept_events):
            return f"{wrote}; no other rows to keep"
        return (
            f"{wrote}; kept {self.kept_assignments:,} assignments and {self.kept_events:,} "
            f"events of {len(self.kept_experiments)} other experiment(s)"
            + (f" ({', '.join(self.kept_experiments)})" if self.kept_experiments else "")
        )


def _replaced(data: SimulatedData, experiments: Collection[str] | None) -> tuple[str, ...]:
    """The experiment ids whose earlier rows are replaced: ``experiments`` or those in data."""
    present = set(data.assignments["experiment_id"].drop_nulls().unique().to_list())
    if experiments is None:
        return tuple(sorted(present))
    stray = present - set(experiments)
    if stray or data.assignments["experiment_id"].null_count():
        raise ValueError(
            f"data has assignments of experiment(s) {sorted(stray) or [None]} "
            f"outside experiments={sorted(experiments)}"
        )
    return tuple(sorted(set(experiments)))


def _conflict(units: Sequence[tuple[str, str]], replaced: Sequence[str], count: int) -> ValueError:
    shown = ", ".join(f"{u!r} (in {e!r})" for e, u in units[:_SHOWN])
    return ValueError(
        f"{count:,} unit(s) of the replaced experiment(s) {list(replaced)} are also assigned "
        f"in an experiment that would be kept, e.g. {shown}: their events cannot be told "
        "apart, so nothing was written. Write all these experiments together, or write to "
        "another target."
    )


def _check_schema(table: str, where: object, found: pl.Schema, wanted: pl.Schema) -> None:
    if found != wanted:
        raise ValueError(
            f"the existing {table} of {where} have columns {dict(found)}, not the contract's "
            f"{dict(wanted)}: cannot keep their rows; nothing was written"
        )


# --------------------------------------------------------------------------- DuckDB


def write_duckdb(
    path: Path, data: SimulatedData, experiments: Collection[str] | None = None
) -> WriteSummary:
    """Write the tables ``assignments`` and ``events`` of a DuckDB file, by experiment.

    The rows of ``experiments`` (default: the experiments in ``data``) are
    replaced by those of ``data``; the rows of other experiments, and other
    tables, are kept (see the module's docstring for events).  The file is
    written next to its destination and moved into place with :func:`os.replace`,
    so a reader never sees a half-written database, and an error leaves it as it
    was.  Raises ValueError when an existing table does not have the contract's
    columns, or when a replaced unit is also assigned in a kept experiment.
    """
    path = Path(path)
    replaced = _replaced(data, experiments)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        if path.exists():  # keep the other tables, including changes still in the WAL
            shutil.copyfile(path, tmp)
            wal = path.with_name(path.name + ".wal")
            if wal.exists():
                shutil.copyfile(wal, tmp.with_name(tmp.name + ".wal"))
        with duckdb.connect(str(tmp)) as con:
            con.execute("SET TimeZone = 'UTC'")
            summary = _merge_duckdb(con, path, data, replaced)
            con.execute("CHECKPOINT")
        os.replace(tmp, path)
        # its contents are in the new file: replaying it on the new file would corrupt it
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
    log.info(summary.message)
    return summary


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    (row,) = con.execute(sql, params).fetchall()  # fetchall: leaves no result open
    return int(row[0])


def _merge_duckdb(
    con: duckdb.DuckDBPyConnection, path: Path, data: SimulatedData, replaced: Sequence[str]
) -> WriteSummary:
    """Replace the rows of ``replaced`` in the open (temporary) database ``con``."""
    con.register("_new_assignments", data.assignments.to_arrow())
    con.register("_new_events", data.events.to_arrow())
    con.execute("CREATE TEMP TABLE _replaced (experiment_id VARCHAR)")
    con.executemany("INSERT INTO _replaced VALUES (?)", [[e] for e in replaced])
    for table in ("assignments", "events"):
        wanted = con.sql(f"DESCRIBE SELECT * FROM _new_{table}").fetchall()
        if not _scalar(
            con,
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE database_name = current_database() AND schema_name = 'main' "
            "AND table_name = ?",
            [table],
        ):
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM _new_{table} LIMIT 0')
        found = con.sql(f'DESCRIBE "{table}"').fetchall()
        if [r[:2] for r in found] != [r[:2] for r in wanted]:
            raise ValueError(
                f"the existing table {table} of {path} has columns "
                f"{[tuple(r[:2]) for r in found]}, not the contract's "
                f"{[tuple(r[:2]) for r in wanted]}: cannot keep its rows; nothing was written"
            )
    keep = "NOT coalesce(experiment_id IN (SELECT experiment_id FROM _replaced), false)"
    con.execute(
        "CREATE TEMP TABLE _units AS "
        "SELECT unit_id FROM assignments WHERE NOT (" + keep + ") AND unit_id IS NOT NULL "
        "UNION SELECT unit_id FROM _new_assignments WHERE unit_id IS NOT NULL"
    )
    clash = f"FROM assignments WHERE {keep} AND unit_id IN (SELECT unit_id FROM _units)"
    count = _scalar(con, f"SELECT count(DISTINCT unit_id) {clash}")
    if count:
        sample = con.sql(
            f"SELECT DISTINCT experiment_id, unit_id {clash} ORDER BY 2, 1 LIMIT {_SHOWN}"
        ).fetchall()
        raise _conflict(sample, replaced, count)
    keep_event = "NOT coalesce(unit_id IN (SELECT unit_id FROM _units), false)"
    kept_ids = [
        r[0]
        for r in con.sql(
            f"SELECT DISTINCT experiment_id FROM assignments WHERE {keep} "
            "AND experiment_id IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    kept_a = _scalar(con, f"SELECT count(*) FROM assignments WHERE {keep}")
    kept_e = _scalar(con, f"SELECT count(*) FROM events WHERE {keep_event}")
    for table, condition in (("assignments", keep), ("events", keep_event)):
        con.execute(
            f'CREATE OR REPLACE TABLE "{table}" AS '
            f'SELECT * FROM "{table}" WHERE {condition} '
            f"UNION ALL BY NAME SELECT * FROM _new_{table}"
        )
    for name in ("_new_assignments", "_new_events"):
        con.unregister(name)
    return WriteSummary(
        path,
        tuple(replaced),
        data.assignments.height,
        data.events.height,
        tuple(kept_ids),
        kept_a,
        kept_e,
    )


# --------------------------------------------------------------------------- parquet


def write_parquet(
    directory: Path,
    data: SimulatedData,
    files: int = 4,
    experiments: Collection[str] | None = None,
) -> WriteSummary:
    """Write ``assignments.parquet`` and ``events/part-0000.parquet`` … into ``directory``.

    The rows of ``experiments`` (default: the experiments in ``data``) are
    replaced by those of ``data``; the rows of other experiments already in the
    folder are kept, in their order, before the new ones (see the module's
    docstring for events).  The existing events are scanned lazily, not loaded.

    Events are split into ``files`` parts of about equal size.  Every file is
    first written under a hidden temporary name in its folder, and only when all
    are written are they renamed into place and stale parts from an earlier,
    larger write removed, so that an error leaves the folder as it was and a glob
    over ``events/`` reads exactly the merged data.  Raises ValueError when the
    existing files do not have the contract's columns, when ``events/`` holds
    parquet files not named ``part-NNNN.parquet`` (they would be read twice), or
    when a replaced unit is also assigned in a kept experiment.
    """
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    directory = Path(directory)
    replaced = _replaced(data, experiments)
    events_dir = directory / "events"
    assignments_path = directory / "assignments.parquet"
    old_parts = sorted(events_dir.glob("*.parquet")) if events_dir.is_dir() else []
    foreign = [p.name for p in old_parts if not _PART.fullmatch(p.name)]
    if foreign:
        raise ValueError(
            f"{events_dir} holds parquet files that this writer does not own: {foreign}; "
            "their rows could not be replaced or kept, so nothing was written. "
            "Move them away, or write to another folder."
        )

    if assignments_path.exists():
        old_assignments = pl.read_parquet(assignments_path)
        _check_schema(
            "assignments", assignments_path, old_assignments.schema, data.assignments.schema
        )
    else:
        old_assignments = data.assignments.clear()
    if old_parts:
        old_events = pl.scan_parquet(old_parts)
        _check_schema("events", events_dir, old_events.collect_schema(), data.events.schema)
    else:
        old_events = data.events.clear().lazy()

    is_replaced = pl.col("experiment_id").is_in(list(replaced)).fill_null(False)
    kept_assignments = old_assignments.filter(~is_replaced)
    units = (
        pl.concat([old_assignments.filter(is_replaced)["unit_id"], data.assignments["unit_id"]])
        .drop_nulls()
        .unique()
    )
    clash = (
        kept_assignments.filter(pl.col("unit_id").is_in(units.implode()).fill_null(False))
        .select("experiment_id", "unit_id")
        .unique()
        .sort("unit_id", "experiment_id")
    )
    if clash.height:
        raise _conflict(list(clash.head(_SHOWN).iter_rows()), replaced, clash["unit_id"].n_unique())
    kept_events = old_events.filter(~pl.col("unit_id").is_in(units.implode()).fill_null(False))
    kept_event_count = kept_events.select(pl.len()).collect().item()
    summary = WriteSummary(
        directory,
        tuple(replaced),
        data.assignments.height,
        data.events.height,
        tuple(sorted(kept_assignments["experiment_id"].drop_nulls().unique().to_list())),
        kept_assignments.height,
        kept_event_count,
    )

    events = pl.concat([kept_events, data.events.lazy()])
    size = -(-(kept_event_count + data.events.height) // files)  # ceil
    events_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []  # (temporary, final)

    def stage(target: Path) -> Path:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        staged.append((tmp, target))
        return tmp

    try:
        pl.concat([kept_assignments, data.assignments]).write_parquet(stage(assignments_path))
        for i in range(files):
            events.slice(i * size, size).sink_parquet(stage(events_dir / f"part-{i:04d}.parquet"))
        for tmp, target in staged:
            os.replace(tmp, target)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    wanted = {f"part-{i:04d}.parquet" for i in range(files)}
    for stale in old_parts:
        if stale.name not in wanted:
            stale.unlink(missing_ok=True)
    log.info(summary.message)
    return summary


# --------------------------------------------------------------------------- defaults


def default_target(sources: Mapping[str, Source], fmt: str) -> Path | None:
    """Where ``proof simulate`` writes without ``--out``: the ``warehouse`` DuckDB file
    (``fmt`` duckdb) or the folder of the ``files`` source (parquet); None when the
    config has no such source."""
    source = sources.get("warehouse" if fmt == "duckdb" else "files")
    if isinstance(source, DuckDBSource):
        return Path(source.path)
    if isinstance(source, FileSource):
        return Path(source.assignments).parent
    return None


def demo_data_missing(sources: Mapping[str, Source]) -> bool:
    """Whether ``proof demo`` must simulate: the ``warehouse`` source is a DuckDB file
    that does not exist yet."""
    warehouse = sources.get("warehouse")
    return isinstance(warehouse, DuckDBSource) and not Path(warehouse.path).exists()
