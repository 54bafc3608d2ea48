"""Keep the per-day partial aggregates between runs, so a night pays only for what changed.

The partials of :mod:`analysis.partials` are stored per day of events, as
``<cache_dir>/<day>-<digest>.parquet`` beside a manifest ``<day>.json`` that
names the file and the key of every *cohort* (units first exposed on the same
UTC date) in it. The rows of day D and cohort A depend only on the events of
D of A's units and on those units' first ``assigned_at``; the key hashes
exactly that (a polars hash of every used column of every row, order-free),
plus the partial spec (aggregates, window, pre-period), the cache format and
the polars version.

Cohorts, not days alone, because of the pre-period: units exposed tonight
bring their events of the last ``pre_window_days`` days into the experiment.
Keyed by day only, all of those days would be recomputed every night; keyed
by (day, cohort), tonight's cohort is computed and yesterday's cohorts are
read back.

A run:

1. fingerprints every (day, cohort) of the events (one polars pass, no
   aggregation);
2. keeps the rows of every (day, cohort) whose key matches its manifest;
3. computes the partials of the rest in one query, over the events of their
   days only, and rewrites those days' files (atomically: new file, then
   manifest, then the old file is removed);
4. forgets days that are gone from the data (a deleted day) up to the
   analysis date.

Winsorised numerators are not stored: per-event caps depend on every event
of the window and move whenever a night brings data, so the partials stay
uncapped and each run recomputes the capped numerators from its events
(:func:`analysis.metrics.capped_numerators`; the cost is in
docs/statistics.md, "Winsorisation").

Nothing found on disk is trusted. The manifest records the day file's size,
row count and SHA-256 (of the bytes as written); a day file is used only if
it matches all three. A missing, truncated or replaced file, or a manifest
that is not what this module writes, is logged as a warning naming the file
and its day is recomputed and rewritten: the next run is clean again. Files
are written to a temporary name and renamed, so a running reader never
sees a half-written file under its final name; they are not synced to disk,
since a file lost or torn by a crash fails its check and is recomputed.

``refresh=True`` (``proof run --no-cache``) ignores every stored partial,
recomputes all of them and writes them afresh. Results equal a full
recompute: that is tested, with a new day, a day changed after the fact and
a day deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from analysis.keys import fingerprint_sums, row_hash
from analysis.measurement import Window
from analysis.metrics import clean_assignments
from analysis.partials import PartialSpec, exposures, partials
from analysis.sources.read import Tables

log = logging.getLogger(__name__)

#: Bump when the manifest's layout changes (2: the day file's size, rows and sha256).
CACHE_FORMAT = 2
_SHA256 = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class CacheUse:
    """What a run took from the cache and what it computed, in (day, cohort) partitions."""

    reused: int
    computed: int
    days_written: int
    days_forgotten: int

    @property
    def summary(self) -> str:
        return (
            f"partial aggregates: {self.reused} (day, cohort) partitions reused, "
            f"{self.computed} computed, {self.days_written} day files written"
            + (f", {self.days_forgotten} deleted days forgotten" if self.days_forgotten else "")
        )


def partials_cache_dir(out_dir: Path | str, experiment_id: str) -> Path:
    """Where an experiment's partials are kept: ``<out>/.cache/partials/<id>``."""
    return Path(out_dir) / ".cache" / "partials" / experiment_id


def partition_keys(
    events: pl.LazyFrame, units: pl.LazyFrame, spec: PartialSpec, until: dt.date
) -> pl.DataFrame:
    """``(day, cohort, key)`` of every partition of the events up to ``until``."""
    exposed = exposures(units)
    start = pl.col("assigned_at") - pl.duration(days=spec.pre_days)
    in_range = (pl.col("ts") >= start) & (pl.col("day") <= until)
    if spec.window_days is not None:
        in_range = in_range & (
            pl.col("ts") < pl.col("assigned_at") + pl.duration(days=spec.window_days)
        )
    rows = (
        events.filter(pl.col("event").is_in(spec.events))
        .select("unit_id", "ts", "event", "value", "label")
        .join(exposed, on="unit_id", how="inner")
        .with_columns(pl.col("ts").dt.date().alias("day"))
        .filter(in_range)
        .with_columns(row_hash("unit_id", "ts", "event", "value", "label"))
        .group_by("day", "cohort")
        .agg(fingerprint_sums("n"))
    )
    cohorts = (
        exposed.with_columns(row_hash("unit_id", "assigned_at"))
        .group_by("cohort")
        .agg(fingerprint_sums("n"))
    )
    found = rows.join(cohorts, on="cohort", how="left", suffix="_units").collect(engine="streaming")
    prefix = f"{CACHE_FORMAT}|{spec.digest}|{pl.__version__}"
    keys = [
        hashlib.sha256(f"{prefix}|{'|'.join(str(v) for v in row)}".encode()).hexdigest()[:20]
        for row in found.select(pl.exclude("day", "cohort")).iter_rows()
    ]
    return found.select("day", "cohort").with_columns(pl.Series("key", keys, dtype=pl.String))


def _manifest_path(cache_dir: Path, day: dt.date) -> Path:
    return cache_dir / f"{day.isoformat()}.json"


class _DamagedError(ValueError):
    """A cache file that is not what this module wrote."""


def _checked_manifest(data: Any, day: dt.date) -> dict[str, Any] | None:
    """``data`` if it is a manifest of ``day`` in this format; None for another format."""
    if not isinstance(data, dict):
        raise _DamagedError(f"not a JSON object but {type(data).__name__}")
    if data.get("format") != CACHE_FORMAT:
        return None  # written by another version of this module: recomputed silently
    name, cohorts, sha = data.get("file"), data.get("cohorts"), data.get("sha256")
    if data.get("day") != day.isoformat():
        raise _DamagedError(f"it is the manifest of day {data.get('day')!r}")
    if not (
        isinstance(name, str)
        and name.startswith(f"{day.isoformat()}-")
        and name.endswith(".parquet")
        and Path(name).name == name
    ):
        raise _DamagedError(f"it names {name!r}, not a file of this day")
    if not isinstance(cohorts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in cohorts.items()
    ):
        raise _DamagedError("its cohorts are not a mapping of dates to keys")
    for field in ("rows", "bytes"):
        value = data.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _DamagedError(f"its {field} is {value!r}")
    if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= _SHA256):
        raise _DamagedError(f"its sha256 is {sha!r}")
    return data


def _read_manifest(cache_dir: Path, day: dt.date) -> dict[str, Any] | None:
    """The manifest of ``day``, None if there is none usable (a damaged one is logged)."""
    path = _manifest_path(cache_dir, day)
    try:
        return _checked_manifest(json.loads(path.read_text(encoding="utf-8")), day)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning(
            "ignoring unreadable partials manifest %s (%s): recomputing day %s",
            path, exc, day.isoformat(),
        )  # fmt: skip
        return None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _damage(cache_dir: Path, manifest: Mapping[str, Any]) -> str | None:
    """Why the day file of ``manifest`` cannot be used, or None if it is the file written."""
    path = cache_dir / manifest["file"]
    try:
        size = path.stat().st_size
        if size != manifest["bytes"]:
            what = "truncated" if size < manifest["bytes"] else "grown"
            return f"{what}: {size} bytes, the manifest says {manifest['bytes']}"
        if _sha256(path) != manifest["sha256"]:
            return "changed since it was written: its sha256 differs from the manifest's"
        rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    except FileNotFoundError:
        return "missing"
    except (OSError, pl.exceptions.PolarsError) as exc:
        return f"unreadable: {exc}"
    if rows != manifest["rows"]:
        return f"wrong: {rows} rows, the manifest says {manifest['rows']}"
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` under ``path``: written to a temporary file, then renamed.

    Not synced to disk: every file is checked against its manifest before it
    is used, so a crash that loses written bytes costs a recompute (with a
    warning), never a wrong number; syncing cost 0.15-0.5 s a run.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store_day(
    cache_dir: Path, day: dt.date, rows: pl.DataFrame, cohorts: Mapping[str, str]
) -> None:
    digest = hashlib.sha256(json.dumps(cohorts, sort_keys=True).encode()).hexdigest()[:16]
    name = f"{day.isoformat()}-{digest}.parquet"
    buffer = io.BytesIO()
    rows.write_parquet(buffer)
    data = buffer.getvalue()
    _write_atomic(cache_dir / name, data)
    manifest = {
        "format": CACHE_FORMAT,
        "day": day.isoformat(),
        "file": name,
        "bytes": len(data),
        "rows": rows.height,
        "sha256": hashlib.sha256(data).hexdigest(),
        "cohorts": dict(cohorts),
    }
    text = json.dumps(manifest, indent=1, sort_keys=True)
    _write_atomic(_manifest_path(cache_dir, day), text.encode("utf-8"))
    for other in cache_dir.glob(f"{day.isoformat()}-*.parquet"):
        if other.name != name:  # the day's previous file, or one no manifest names
            other.unlink(missing_ok=True)


def _forget_missing_days(cache_dir: Path, present: set[dt.date], until: dt.date) -> int:
    forgotten = 0
    for path in cache_dir.glob("*.json"):
        try:
            day = dt.date.fromisoformat(path.stem)
        except ValueError:
            continue
        if day <= until and day not in present:
            for stored in cache_dir.glob(f"{day.isoformat()}-*.parquet"):
                stored.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            forgotten += 1
    return forgotten


def cached_partials(
    events: pl.LazyFrame,
    units: pl.LazyFrame,
    spec: PartialSpec,
    cache_dir: Path,
    until: dt.date,
    *,
    refresh: bool = False,
) -> tuple[pl.LazyFrame, CacheUse]:
    """The partials of ``events`` up to ``until``, reusing every unchanged (day, cohort).

    ``events`` must be deduplicated (the quarantine split's used rows are).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = partition_keys(events, units, spec, until)
    wanted: dict[dt.date, dict[str, str]] = {}
    for day, cohort, key in keys.iter_rows():
        wanted.setdefault(day, {})[cohort.isoformat()] = key
    manifests: dict[dt.date, dict[str, Any] | None] = {}
    reuse: dict[dt.date, set[str]] = {}
    missing: list[tuple[dt.date, dt.date]] = []
    for day, cohorts in wanted.items():
        manifest = None if refresh else _read_manifest(cache_dir, day)
        stored = manifest["cohorts"] if manifest is not None else {}
        kept = {c for c, k in cohorts.items() if stored.get(c) == k}
        if manifest is not None and kept:
            damage = _damage(cache_dir, manifest)
            if damage is not None:
                log.warning(
                    "partials cache file %s is %s: recomputing day %s "
                    "(this run rewrites it; `proof run --no-cache` rebuilds every day)",
                    cache_dir / manifest["file"], damage, day.isoformat(),
                )  # fmt: skip
                manifest, kept = None, set()
        manifests[day], reuse[day] = manifest, kept
        missing += [(day, dt.date.fromisoformat(c)) for c in cohorts if c not in kept]
    computed = _compute(events, units, spec, missing)
    frames: list[pl.LazyFrame] = []
    written = 0
    for day, cohorts in sorted(wanted.items()):
        manifest = manifests[day]
        kept = reuse[day]
        if manifest is not None and kept == set(cohorts):
            frames.append(pl.scan_parquet(cache_dir / manifest["file"]))
            continue
        fresh = computed.filter(pl.col("day") == day)
        if kept and manifest is not None:
            old = pl.read_parquet(cache_dir / manifest["file"]).filter(
                pl.col("cohort").is_in([dt.date.fromisoformat(c) for c in kept])
            )
            fresh = pl.concat([old, fresh.select(old.columns)])
        _store_day(cache_dir, day, fresh, cohorts)
        written += 1
        frames.append(fresh.lazy())
    forgotten = _forget_missing_days(cache_dir, set(wanted), until)
    n_reused = sum(len(c) for c in reuse.values())
    use = CacheUse(n_reused, len(missing), written, forgotten)
    if not frames:
        return _compute(events, units, spec, []).lazy(), use
    return pl.concat(frames, how="vertical"), use


def cached_partials_of(
    tables: Tables,
    spec: PartialSpec,
    cache_dir: Path,
    as_of: dt.date,
    *,
    refresh: bool = False,
) -> tuple[pl.LazyFrame, CacheUse]:
    """:func:`cached_partials` of deduplicated ``tables``, units as the analysis sees them.

    The flow passes the quarantine's ``partial_inputs()``: the used rows plus
    the crossed-over units' rows, so that a crossover does not invalidate the
    partitions of its unit (the merge leaves crossed-over units out anyway).
    """
    units = clean_assignments(tables.assignments, Window(as_of)).collect().lazy()
    return cached_partials(tables.events, units, spec, cache_dir, as_of, refresh=refresh)


def _compute(
    events: pl.LazyFrame,
    units: pl.LazyFrame,
    spec: PartialSpec,
    missing: list[tuple[dt.date, dt.date]],
) -> pl.DataFrame:
    """The partials of the missing (day, cohort) partitions, in one query."""
    wanted = pl.DataFrame(
        {"day": [d for d, _ in missing], "cohort": [c for _, c in missing]},
        schema={"day": pl.Date, "cohort": pl.Date},
    )
    days = sorted({d for d, _ in missing})
    # Only the missing partitions' events are aggregated: a night misses tonight's day
    # of every cohort but only tonight's cohort of the days before (its pre-period).
    picked = (
        events.filter(pl.col("ts").dt.date().is_in(days))
        .join(exposures(units).select("unit_id", "cohort"), on="unit_id", how="inner")
        .join(wanted.lazy(), left_on=[pl.col("ts").dt.date(), "cohort"],
              right_on=["day", "cohort"], how="semi")
        .drop("cohort")
    )  # fmt: skip
    return partials(picked, units, spec).collect(engine="streaming")
