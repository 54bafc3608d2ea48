"""Events as they land in production: one parquet file per ingestion day.

A pipeline upstream of Proof writes, each day, the events it received that day.
Most happened that day; some happened days before and arrive late; a few carry
a wrong timestamp, far in the future. :func:`landing_days` gives each event the
day it lands on, and :func:`write_landing_files` writes the files a ``parquet``
source globs (``events-YYYY-MM-DD.parquet``). The bench and the tests of the
nightly walk read this shape: a partition keyed by the UTC day of ``ts`` would
change with every late event and explode with every future one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import polars as pl

from analysis.devtools.simulate.model import SimulatedData

#: Share of events that land 1..MAX_LATE_DAYS days after they happened.
LATE_SHARE = 0.05
MAX_LATE_DAYS = 3
#: Share of events whose timestamp is wrong: moved 1..FUTURE_DAYS days ahead.
FUTURE_SHARE = 0.001
FUTURE_DAYS = 3650


def landing_days(
    events: pl.DataFrame,
    seed: int,
    *,
    late_share: float = LATE_SHARE,
    future_share: float = FUTURE_SHARE,
) -> pl.DataFrame:
    """``events`` with a ``landed`` date column, and a few ``ts`` moved into the future.

    The landing day is the UTC day of the true ``ts`` plus a lateness (0, or
    1..MAX_LATE_DAYS days for ``late_share`` of the rows); a future-dated row
    lands on its true day but carries a ``ts`` up to FUTURE_DAYS ahead. Rows
    without ``ts`` land on the first day.
    """
    rng = np.random.default_rng([seed, 31])
    n = events.height
    late = np.where(rng.random(n) < late_share, rng.integers(1, MAX_LATE_DAYS + 1, n), 0)
    future = rng.random(n) < future_share
    ahead = rng.integers(1, FUTURE_DAYS + 1, n)
    first = events.get_column("ts").min()
    first_day = first.date() if isinstance(first, dt.datetime) else dt.date(1970, 1, 1)
    day = pl.col("ts").dt.date().fill_null(pl.lit(first_day))
    return events.with_columns(
        (day + pl.duration(days=pl.lit(pl.Series(late)))).alias("landed"),
        pl.when(pl.Series(future))
        .then(pl.col("ts") + pl.duration(days=pl.lit(pl.Series(ahead))))
        .otherwise(pl.col("ts"))
        .alias("ts"),
    )


def write_landing_files(
    folder: Path, data: SimulatedData, through: dt.date, seed: int, **shares: float
) -> int:
    """``assignments.parquet`` and one ``events-<day>.parquet`` per day landed up to ``through``.

    Assignments are those made before the end of ``through`` (the units a
    pipeline had seen by then); events that would land after ``through`` have
    not landed yet. Each file is written under a temporary name, then renamed.
    Returns the number of event files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    end = dt.datetime.combine(through + dt.timedelta(days=1), dt.time(), dt.UTC)
    assignments = data.assignments.filter(pl.col("assigned_at") < end)
    _atomic_parquet(assignments, folder / "assignments.parquet")
    landed = landing_days(data.events, seed, **shares).filter(pl.col("landed") <= through)
    parts = landed.partition_by("landed", as_dict=True, include_key=False)
    for (day,), rows in sorted(parts.items()):
        assert isinstance(day, dt.date)
        _atomic_parquet(rows, folder / f"events-{day.isoformat()}.parquet")
    return len(parts)


def _atomic_parquet(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)
