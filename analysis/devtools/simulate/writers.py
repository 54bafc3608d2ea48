"""Writing simulated tables: a DuckDB file or a folder of parquet files, atomically."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import duckdb
import polars as pl

from analysis.config.sources import DuckDBSource, FileSource, Source
from analysis.devtools.simulate.model import SimulatedData


def write_duckdb(path: Path, data: SimulatedData) -> None:
    """Create or replace the tables ``assignments`` and ``events`` in a DuckDB file.

    The file is written next to its destination and moved into place with
    :func:`os.replace`, so a reader never sees a half-written database; other
    tables of an existing database are kept (the file is copied first).
    """
    path = Path(path)
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
            for table, frame in (("assignments", data.assignments), ("events", data.events)):
                con.register("_incoming", frame.to_arrow())
                con.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM _incoming')
                con.unregister("_incoming")
            con.execute("CHECKPOINT")
        os.replace(tmp, path)
        # its contents are in the new file: replaying it on the new file would corrupt it
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def write_parquet(directory: Path, data: SimulatedData, files: int = 4) -> None:
    """Write ``assignments.parquet`` and ``events/part-0000.parquet`` … into ``directory``.

    Events are split into ``files`` parts of about equal size.  Each file is
    written under a temporary name and renamed, and stale parts from an earlier,
    larger write are removed so that a glob over ``events/`` reads exactly this
    data.
    """
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    directory = Path(directory)
    events_dir = directory / "events"
    events_dir.mkdir(parents=True, exist_ok=True)

    def put(frame: pl.DataFrame, target: Path) -> None:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    put(data.assignments, directory / "assignments.parquet")
    size = -(-data.events.height // files)  # ceil
    wanted = {f"part-{i:04d}.parquet" for i in range(files)}
    for i in range(files):
        put(data.events.slice(i * size, size), events_dir / f"part-{i:04d}.parquet")
    for stale in events_dir.glob("part-*.parquet"):
        if stale.name not in wanted:
            stale.unlink()


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
