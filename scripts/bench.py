"""Benchmark Proof stage by stage against a floor and a pandas baseline (``make bench``).

For each size (events), the script simulates smart-compose data into a DuckDB
file, then runs, each in a fresh process so peak memory is per stage:

* ``pipeline`` — Proof's own stages in one process, timed one by one: load
  (source → contract-typed frames), validate (quarantine split and GX, cold:
  no cached partitions), metrics (per-unit table,
  moments, timelines, segments), statistics (every comparison, results) and
  report (HTML); peak RSS is read per stage from the kernel's high-water mark,
  reset between stages (``/proc/self/clear_refs``);
* ``floor`` — the minimal polars query that computes only what the statistics
  need: deduplicated events joined to their units, windowed, per-unit counts of
  the primary metric's parts, per-arm moments;
* ``catalog floor`` — the fair minimum for Proof's whole job: the minimal polars
  query for every metric of the catalog (per-unit window and pre-period
  aggregates, per-arm moments and the cross sums of the delta method and
  CUPED, the p95 latency) with the contract's cleaning;
* ``pandas`` — the same numbers as an analyst would write them with pandas and
  scipy;
* ``cold run`` — the whole ``proof run --no-cache`` process (Python, imports,
  the flow's Prefect run, load, quarantine, GX, metrics, statistics, report,
  publish) on the same data, against one running ``prefect server`` started
  for the runs, as scheduled and UI runs have one (a run without
  ``PREFECT_API_URL`` starts a temporary server of its own, about 15 s more);
* ``push-down run`` — the whole ``proof run --no-cache`` process with the
  source's ``pushdown: true`` and ``memory_limit`` (PUSHDOWN_MEMORY): quarantine,
  GX and the aggregation inside DuckDB, which spills beyond the limit;
* ``spark run`` — the whole ``proof run --no-cache`` process on a ``spark``
  source (``local[2]``: a Spark session in the run's process with two worker
  threads) over the same rows exported to parquet, at sizes up to
  SPARK_MAX_EVENTS; the peak is the run's process tree (the JVM included);
* ``nightly run`` — the whole ``proof run`` process the morning after one new
  day landed: the night before ran on the data up to the day before, so its
  validation and partials are cached; the new day and the newly exposed
  cohort are computed;
* ``landing nightly run`` and ``landing cold run`` — the same, on the rows as
  they land in production: one parquet file per ingestion day, 5 % of events
  one to three days late, 0.1 % with a timestamp up to ten years ahead;
* ``imports`` — one process that only imports Proof's dependencies (polars,
  scipy, GX, Prefect, plotly): the floor of any whole run.

The targets (issue 17) are checked on the largest size, the cost of a nightly
run across sizes, and a whole run at the smallest size against ``imports``.

It prints a table and, with ``--write``, replaces the table in
docs/performance.md together with the machine it ran on. Rerun with
``make bench`` (sizes: ``--sizes 1e6 1e7 3e7``; ``--big`` adds 1e8, simulated
in slices, where the in-memory stages are not run (they would need more
memory than the machine has) and the whole runs are the push-down run and
the default path's cold run, stopped once its memory passes 16 GB).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_UNIT = 29.0  # smart-compose as simulated: about 29 events per unit up to AS_OF
AS_OF = dt.date(2026, 11, 25)


def peak_reset() -> None:
    with contextlib.suppress(OSError):  # not every kernel lets a process reset its peak
        Path("/proc/self/clear_refs").write_text("5")


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stage_pipeline(db: str) -> dict[str, Any]:
    import polars as pl

    from analysis.config.load import load_config
    from analysis.config.sources import DuckDBSource
    from analysis.engines.polars_measure import measure
    from analysis.pipeline import summarise
    from analysis.quarantine import collect_tables
    from analysis.report.render import render_report
    from analysis.results import to_json
    from analysis.settings import validation_workers
    from analysis.sources.read import read_experiment
    from analysis.validation.experiment import check_experiment

    config = load_config(ROOT / "configs")
    experiment = config.experiment("smart-compose")
    metrics = config.metrics_of(experiment)
    source = DuckDBSource(kind="duckdb", path=Path(db))
    out: dict[str, Any] = {}

    def timed(name: str, fn: Any) -> Any:
        peak_reset()
        start = time.perf_counter()
        value = fn()
        out[name] = {"seconds": time.perf_counter() - start, "peak_mib": peak_mib()}
        return value

    def load() -> dict[str, pl.DataFrame]:
        return collect_tables(read_experiment("bench", source, experiment.id))

    raw = timed("load", load)
    out["events"] = raw["events"].height
    workers = validation_workers()
    checked = timed("validate", lambda: check_experiment(raw, experiment, AS_OF, workers=workers))
    measurement = timed(
        "metrics",
        lambda: measure(
            checked.quarantine.tables(), experiment, metrics, AS_OF, unique_events=True
        ),
    )
    results = timed(
        "statistics",
        lambda: summarise(
            experiment, metrics, measurement, checked.report.summary(), "bench", AS_OF,
            dt.datetime.now(dt.UTC),
        ),
    )  # fmt: skip
    timed("report", lambda: (to_json(results), render_report(results, "plotly.min.js")))
    return out


def _floor_source(db: str) -> tuple[list[Any], Any]:
    """Two cursors on ``db`` (the events' and a spare) and smart-compose's assignments.

    The assignments are read once (one row per unit): a lazy DuckDB frame
    scanned twice in one plan would find its connection busy.
    """
    import duckdb
    import polars as pl

    con = duckdb.connect(db, read_only=True)
    cursors: list[Any] = [con.cursor(), con.cursor()]
    for cursor in cursors:
        cursor.execute("SET TimeZone='UTC'")
    query = "SELECT unit_id, variant, assigned_at FROM assignments WHERE experiment_id = ?"
    assigned = pl.from_arrow(cursors[0].sql(query, params=["smart-compose"]).to_arrow_table())
    assert isinstance(assigned, pl.DataFrame)
    return [con, *cursors], assigned


def stage_floor(db: str) -> dict[str, Any]:
    import polars as pl

    peak_reset()
    start = time.perf_counter()
    cursors, assigned = _floor_source(db)
    units = assigned.lazy()
    events = (
        cursors[2]
        .sql(
            "SELECT event_id, unit_id, ts, event FROM events WHERE event IN "
            "('task_started', 'task_completed')"
        )
        .pl(lazy=True)
    )
    end = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), dt.UTC)
    per_unit = (
        events.unique("event_id", keep="any")
        .join(units, on="unit_id")
        .filter((pl.col("ts") >= pl.col("assigned_at")) & (pl.col("ts") < end))
        .group_by("unit_id")
        .agg(
            (pl.col("event") == "task_completed").sum().cast(pl.Float64).alias("x"),
            (pl.col("event") == "task_started").sum().cast(pl.Float64).alias("y"),
        )
    )
    table = units.join(per_unit, on="unit_id", how="left").with_columns(
        pl.col("x").fill_null(0.0), pl.col("y").fill_null(0.0)
    )
    moments = (
        table.group_by("variant")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("x").mean().alias("mean_x"),
            pl.col("y").mean().alias("mean_y"),
            pl.col("x").var().alias("var_x"),
            pl.col("y").var().alias("var_y"),
            pl.cov("x", "y").alias("cov_xy"),
        )
        .collect(engine="streaming")
    )
    assert moments.height == 2
    return {"floor": {"seconds": time.perf_counter() - start, "peak_mib": peak_mib()}}


#: The catalog's event parts of smart-compose's metrics: (name, event, kind, value filter).
CATALOG_PARTS = (
    ("started", "task_started", "count", None),
    ("completed", "task_completed", "count", None),
    ("completed_s", "task_completed", "sum", None),
    ("abandoned", "task_abandoned", "count", None),
    ("retries", "retry", "count", None),
    ("shown", "ai_shown", "count", None),
    ("accepted", "ai_accepted", "count", None),
    ("edited", "ai_edited", "count", None),
    ("rejected", "ai_rejected", "count", None),
    ("votes", "feedback", "count", None),
    ("down", "feedback", "count", -1.0),
    ("trust_n", "trust_survey", "count", None),
    ("trust_sum", "trust_survey", "sum", None),
    ("tickets", "support_ticket", "count", None),
    ("cost", "ai_cost", "sum", None),
)
#: (numerator, denominator) of the ratio metrics: the delta method's cross sums.
CATALOG_RATIOS = (
    ("completed", "started"), ("abandoned", "started"), ("completed_s", "completed"),
    ("retries", "started"), ("accepted", "shown"), ("edited", "shown"), ("rejected", "shown"),
    ("down", "votes"), ("trust_sum", "trust_n"), ("cost", "completed"),
)  # fmt: skip


def stage_catalog_floor(db: str) -> dict[str, Any]:
    """The fair minimum for Proof's whole job: every metric of the catalog, cleaned.

    The contract's cleaning (one row per event id, no crossed-over units, no
    event without unit or ts), then per unit every event aggregate the catalog
    needs in the window and in the pre-period, per arm the moments and cross
    sums of the delta method and CUPED, and the p95 AI latency per arm.
    """
    import polars as pl

    peak_reset()
    start = time.perf_counter()
    cursors, assigned = _floor_source(db)
    crossed = assigned.group_by("unit_id").agg(pl.col("variant").n_unique().alias("k"))
    units = (
        assigned.lazy()
        .join(crossed.lazy().filter(pl.col("k") == 1), on="unit_id", how="semi")
        .group_by("unit_id")
        .agg(pl.col("variant").first(), pl.col("assigned_at").min())
    )
    events = cursors[2].sql("SELECT event_id, unit_id, ts, event, value FROM events").pl(lazy=True)
    end = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), dt.UTC)
    pre = dt.timedelta(days=14)
    joined = (
        events.filter(pl.col("unit_id").is_not_null() & pl.col("ts").is_not_null())
        .unique("event_id", keep="any")
        .join(units, on="unit_id")
        .filter((pl.col("ts") >= pl.col("assigned_at") - pre) & (pl.col("ts") < end))
        .with_columns((pl.col("ts") >= pl.col("assigned_at")).alias("post"))
    )

    def part(name: str, event: str, kind: str, equals: float | None, post: bool) -> pl.Expr:
        hit = (pl.col("event") == event) & (pl.col("post") == post)
        if equals is not None:
            hit = hit & (pl.col("value") == equals)
        value = pl.col("value").fill_null(0.0) if kind == "sum" else pl.lit(1.0)
        return pl.when(hit).then(value).otherwise(0.0).sum().alias(name + ("" if post else "_pre"))

    per_unit = joined.group_by("unit_id").agg(
        [part(n, e, k, v, post) for n, e, k, v in CATALOG_PARTS for post in (True, False)]
    )
    columns = [n + suffix for n, *_ in CATALOG_PARTS for suffix in ("", "_pre")]
    table = units.join(per_unit, on="unit_id", how="left").with_columns(
        pl.col(c).fill_null(0.0) for c in columns
    )
    sums = [pl.len().alias("n")]
    sums += [pl.col(c).sum().alias(f"s_{c}") for c in columns]
    sums += [(pl.col(c) ** 2).sum().alias(f"q_{c}") for c in columns]
    sums += [(pl.col(a) * pl.col(b)).sum().alias(f"x_{a}_{b}") for a, b in CATALOG_RATIOS]
    sums += [(pl.col(n) * pl.col(n + "_pre")).sum().alias(f"c_{n}") for n, *_ in CATALOG_PARTS]
    moments, latency = pl.collect_all(
        [
            table.group_by("variant").agg(sums),
            joined.filter(pl.col("post") & (pl.col("event") == "ai_latency"))
            .group_by("variant")
            .agg(pl.col("value").quantile(0.95).alias("p95")),
        ],
        engine="streaming",
    )
    assert moments.height == 2
    assert latency.height >= 1
    return {"catalog floor": {"seconds": time.perf_counter() - start, "peak_mib": peak_mib()}}


def stage_pandas(db: str) -> dict[str, Any]:
    import duckdb
    import numpy as np
    from scipy import stats

    peak_reset()
    start = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    con.execute("SET TimeZone='UTC'")
    units = con.sql("SELECT * FROM assignments WHERE experiment_id='smart-compose'").df()
    events = con.sql("SELECT * FROM events").df()
    events = events.drop_duplicates("event_id")
    merged = events.merge(units, on="unit_id")
    end = np.datetime64(f"{AS_OF + dt.timedelta(days=1)}T00:00:00")
    ts = merged["ts"].dt.tz_localize(None)
    merged = merged[(ts >= merged["assigned_at"].dt.tz_localize(None)) & (ts < end)]
    counts = merged.pivot_table(index="unit_id", columns="event", values="event_id",
                                aggfunc="count", fill_value=0)  # fmt: skip
    table = units.set_index("unit_id").join(counts).fillna(0)
    ai, control = table[table.variant == "ai"], table[table.variant == "control"]
    for metric in ("task_completed", "support_ticket"):
        stats.ttest_ind(ai[metric], control[metric], equal_var=False)
    return {"pandas": {"seconds": time.perf_counter() - start, "peak_mib": peak_mib()}}


def prepare_landing(db: str) -> dict[str, Any]:
    """``db``'s rows as files by ingestion day (late and future-dated events), for the nightly.

    ``<db>-lake/`` holds what had landed by the morning before (through the day
    before AS_OF); ``<db>-tonight/`` the file that lands tonight and the
    assignments as they stand tonight.
    """
    import shutil

    import duckdb

    from analysis.devtools.simulate.landing import write_landing_files
    from analysis.devtools.simulate.model import SimulatedData

    with duckdb.connect(db, read_only=True) as con:
        con.execute("SET TimeZone='UTC'")
        data = SimulatedData(
            con.sql("SELECT * FROM assignments").pl(), con.sql("SELECT * FROM events").pl()
        )
    base = Path(db).with_suffix("")
    lake, tonight, whole = (Path(f"{base}-{x}") for x in ("lake", "tonight", "whole"))
    write_landing_files(lake, data, AS_OF - dt.timedelta(days=1), seed=1)
    write_landing_files(whole, data, AS_OF, seed=1)
    tonight.mkdir(exist_ok=True)
    for name in (f"events-{AS_OF.isoformat()}.parquet", "assignments.parquet"):
        shutil.move(whole / name, tonight / name)
    shutil.rmtree(whole)
    return {}


STAGES = {
    "pipeline": stage_pipeline,
    "floor": stage_floor,
    "catalog floor": stage_catalog_floor,
    "pandas": stage_pandas,
}
PREPARE = {"landing": prepare_landing}


def _yesterday_copy(db: Path) -> Path:
    """The same warehouse as it stood the morning before: nothing from AS_OF on."""
    import duckdb

    target = db.with_name(db.stem + "-yesterday.duckdb")
    cut = f"TIMESTAMPTZ '{AS_OF.isoformat()} 00:00:00+00'"
    con = duckdb.connect(str(target))
    con.execute("SET TimeZone='UTC'")
    con.execute(f"ATTACH '{db}' AS today (READ_ONLY)")
    con.execute(
        f"CREATE TABLE assignments AS SELECT * FROM today.assignments WHERE assigned_at < {cut}"
    )
    con.execute(f"CREATE TABLE events AS SELECT * FROM today.events WHERE ts < {cut}")
    con.close()
    return target


@contextlib.contextmanager
def _prefect_server(home: Path) -> Iterator[str]:
    """A ``prefect server`` on a free local port, as scheduled runs have one; its API URL.

    Without it every ``proof run`` process starts a temporary server of its own
    (about 15 s here), which a nightly deployment served by ``proof serve`` never pays.
    """
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Prefect server did not start") from None
                time.sleep(1)
        yield api
    finally:
        server.terminate()
        server.wait(timeout=60)


#: The bound of the default path's memory at 100M events (issue 17), in MiB.
MEMORY_BOUND_MIB = 16 * 1024


def _group_rss_mib(group: int) -> float:
    """The resident memory of every process of a process group (from /proc), in MiB."""
    total_kib = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:  # the fields after the name: state, ppid, pgrp
                continue
            rss = (status.parent / "status").read_text().split("VmRSS:", 1)[1].split()[0]
        except (OSError, IndexError, ValueError):
            continue  # it ended while being read
        total_kib += int(rss)
    return total_kib / 1024


def _capped_run(command: list[str], cap_mib: float) -> dict[str, Any]:
    """``command`` as a process group, stopped once its resident memory passes ``cap_mib``:
    the peak sampled every 0.2 s, the wall time, and whether it was stopped."""
    import signal

    # Its log goes to a file, not a pipe: a full pipe would stop the run while it is watched.
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True,
        )  # fmt: skip
        peak = 0.0
        stopped = False
        while proc.poll() is None:
            peak = max(peak, _group_rss_mib(proc.pid))
            if peak > cap_mib:
                os.killpg(proc.pid, signal.SIGKILL)
                stopped = True
                break
            time.sleep(0.2)
        proc.wait()
        seconds = time.perf_counter() - start
        log.seek(0)
        err = log.read()
    if stopped:
        return {"seconds": seconds, "peak_mib": peak, "stopped": True}
    if proc.returncode != 0:
        lines = [x for x in err.splitlines() if x.strip()]
        return {"error": f"exit {proc.returncode}: {lines[-1] if lines else ''}"}
    return {"seconds": seconds, "peak_mib": peak}


def _proof_run(
    config_dir: Path, out: Path, as_of: dt.date, *extra: str, cap_mib: float | None = None
) -> dict[str, Any]:
    """One whole ``proof run`` process: wall time and its peak RSS (GNU time's %M).

    ``cap_mib``: stopped once its resident memory passes that many MiB (sampled).
    """
    import shutil

    command = [sys.executable, "-m", "flows.cli", "run", "-e", "smart-compose",
               "--as-of", as_of.isoformat(), "--config-dir", str(config_dir), "--out", str(out),
               *extra]  # fmt: skip
    if cap_mib is not None:
        return _capped_run(command, cap_mib)
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer is not None:
        command = [timer, "-f", "PEAK_KB %M", *command]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        log = out.with_name(out.name + ".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(done.stdout + done.stderr)
        noise = ("PEAK_KB", "Command exited with non-zero status")
        lines = [x for x in (done.stdout + done.stderr).splitlines() if not x.startswith(noise)]
        print(f"    failed; the run's output is in {log}", flush=True)
        return {"error": f"exit {done.returncode}: {lines[-1] if lines else ''}"}
    peaks = re.findall(r"PEAK_KB (\d+)", done.stderr)
    return {"seconds": seconds, "peak_mib": int(peaks[-1]) / 1024 if peaks else float("nan")}


#: DuckDB's memory limit for the push-down run (the source's ``memory_limit``).
PUSHDOWN_MEMORY = "8GB"
#: The largest size with a ``spark run`` (Spark is there for clusters; local[2] at 30M
#: events would take the bench's time without saying more).
SPARK_MAX_EVENTS = 1.2e7


def _as_parquet(db: Path, folder: Path) -> Path:
    """Both tables of the DuckDB file as parquet files under ``folder``."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("assignments", "events"):
            con.execute(f"COPY {table} TO '{folder / table}.parquet' (FORMAT parquet)")
    return folder


def spark_run(db: Path, tmp: Path) -> dict[str, Any]:
    """``proof run --no-cache`` on a ``spark`` source (``local[2]``) over ``db``'s rows."""
    files = _as_parquet(db, tmp / "lake")
    config_dir = _config_dir(
        tmp, "configs-spark",
        "    kind: spark\n    master: local[2]\n"
        f"    assignments: {files}/assignments.parquet\n"
        f"    events: {files}/events.parquet\n",
    )  # fmt: skip
    try:
        return _proof_run(config_dir, tmp / "reports-spark", AS_OF, "--no-cache")
    finally:
        import shutil

        shutil.rmtree(files, ignore_errors=True)


def _config_dir(tmp: Path, name: str, source: str) -> Path:
    import shutil

    config_dir = tmp / name
    shutil.rmtree(config_dir, ignore_errors=True)
    shutil.copytree(ROOT / "configs", config_dir)
    (config_dir / "sources.yaml").write_text(f"sources:\n  warehouse:\n{source}")
    return config_dir


def whole_runs(db: Path, tmp: Path, *, big: bool, spark: bool = True) -> dict[str, Any]:
    """``cold run`` (``--no-cache``), ``nightly run`` (one new day) and ``push-down run``
    (``--no-cache``, the whole run inside DuckDB under a memory limit), as whole
    processes; ``big``: the push-down run, and the cold run stopped once its memory
    passes 16 GB (the others need more memory than the machine has)."""
    import shutil

    live = tmp / "live.duckdb"
    config_dir = _config_dir(tmp, "configs", f"    kind: duckdb\n    path: {live}\n")
    pushed = _config_dir(
        tmp, "configs-pushdown",
        f"    kind: duckdb\n    path: {db}\n    pushdown: true\n"
        f"    memory_limit: {PUSHDOWN_MEMORY}\n",
    )  # fmt: skip
    out = tmp / "reports"
    shutil.rmtree(out, ignore_errors=True)
    with _prefect_server(tmp / "prefect") as api:
        os.environ["PREFECT_API_URL"] = api
        try:
            print("  push-down run…", flush=True)
            found = {
                "push-down run": _proof_run(pushed, tmp / "reports-pushdown", AS_OF, "--no-cache")
            }
            if big:
                # The default path at this size, stopped at the bound: past it, this
                # machine would run out of memory (it has 24 GB).
                print("  cold run (default path, stopped above 16 GB)…", flush=True)
                found["cold run"] = _proof_run(
                    _config_dir(tmp, "configs-big", f"    kind: duckdb\n    path: {db}\n"),
                    out, AS_OF, "--no-cache", cap_mib=MEMORY_BOUND_MIB,
                )  # fmt: skip
                return found
            if spark and _events_in(db) <= SPARK_MAX_EVENTS:
                print("  spark run…", flush=True)
                found["spark run"] = spark_run(db, tmp)
            print("  cold run, nightly run…", flush=True)
            shutil.copyfile(db, live)
            cold = _proof_run(config_dir, out, AS_OF, "--no-cache")
            yesterday = _yesterday_copy(db)
            shutil.rmtree(out, ignore_errors=True)
            shutil.move(yesterday, live)
            warmup = _proof_run(config_dir, out, AS_OF - dt.timedelta(days=1))
            shutil.copyfile(db, live)
            nightly = _proof_run(config_dir, out, AS_OF) if "error" not in warmup else warmup
            live.unlink(missing_ok=True)
            print("  files by ingestion day: nightly run, cold run…", flush=True)
            found |= landing_runs(db, tmp)
            print("  importing the dependencies…", flush=True)
            found["imports"] = _imports()
        finally:
            del os.environ["PREFECT_API_URL"]
            live.unlink(missing_ok=True)
    return found | {"cold run": cold, "nightly run": nightly}


#: What a Proof run cannot start without: the whole-run floor of the smallest size.
IMPORTS = "import polars, scipy, great_expectations, prefect, plotly"


def _imports() -> dict[str, Any]:
    """One process that imports Proof's own dependencies, timed like a run."""
    import shutil

    command = [sys.executable, "-W", "ignore", "-c", IMPORTS]
    timer = shutil.which("time")
    if timer is not None:
        command = [timer, "-f", "PEAK_KB %M", *command]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    seconds = time.perf_counter() - start
    peaks = re.findall(r"PEAK_KB (\d+)", done.stderr)
    return {"seconds": seconds, "peak_mib": int(peaks[-1]) / 1024 if peaks else float("nan")}


def landing_runs(db: Path, tmp: Path) -> dict[str, Any]:
    """The nightly and cold runs on files by ingestion day, with late and future events.

    As data lands in production: one parquet file per ingestion day; 5 % of
    events land one to three days late and 0.1 % carry a timestamp up to ten
    years ahead (``analysis/devtools/simulate/landing.py``). The night before
    ran on the files landed by then; tonight one file lands.
    """
    import shutil

    done = _run_stage("landing", str(db))
    if "error" in done:
        return {"landing nightly run": done, "landing cold run": done}
    base = db.with_suffix("")
    lake, tonight = Path(f"{base}-lake"), Path(f"{base}-tonight")
    config_dir = _config_dir(
        tmp, "configs-landing",
        f"    kind: parquet\n    assignments: {lake}/assignments.parquet\n"
        f"    events: {lake}/events-*.parquet\n",
    )  # fmt: skip
    out = tmp / "reports-landing"
    shutil.rmtree(out, ignore_errors=True)
    try:
        warmup = _proof_run(config_dir, out, AS_OF - dt.timedelta(days=1))
        for landed in tonight.iterdir():
            shutil.move(landed, lake / landed.name)
        nightly = _proof_run(config_dir, out, AS_OF) if "error" not in warmup else warmup
        cold = _proof_run(config_dir, tmp / "reports-landing-cold", AS_OF, "--no-cache")
    finally:
        shutil.rmtree(lake, ignore_errors=True)
        shutil.rmtree(tonight, ignore_errors=True)
    return {"landing nightly run": nightly, "landing cold run": cold}


def _run_stage(stage: str, db: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--db", db],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    payload: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return payload


#: Above this many events the data is simulated in slices of units (one slice
#: in memory at a time), as 100M events would not fit in memory at once.
SLICE_EVENTS = 4e7
#: At and above this size only what can run in bounded memory is measured.
BIG_EVENTS = 9e7


def _simulate(events: float, path: Path) -> None:
    import duckdb
    import polars as pl

    from analysis.config.load import load_config
    from analysis.devtools.simulate import simulate, write_duckdb

    experiment = load_config(ROOT / "configs").experiment("smart-compose")
    units = max(int(events / EVENTS_PER_UNIT), 100)
    if events <= SLICE_EVENTS:
        write_duckdb(path, simulate([experiment], units, AS_OF, seed=1))
        return
    slices = int(events // SLICE_EVENTS) + 1
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone='UTC'")
    for i in range(slices):
        # every slice has its own seed; its ids get a prefix so they stay unique
        data = simulate([experiment], units // slices, AS_OF, seed=100 + i)
        for table, frame in (("assignments", data.assignments), ("events", data.events)):
            ids = [c for c in ("unit_id", "event_id", "task_id") if c in frame.columns]
            prefixed = frame.with_columns((pl.lit(f"s{i}:") + pl.col(c)).alias(c) for c in ids)
            con.register("_incoming", prefixed.to_arrow())
            verb = f'CREATE TABLE "{table}" AS' if i == 0 else f'INSERT INTO "{table}"'
            con.execute(f"{verb} SELECT * FROM _incoming")
            con.unregister("_incoming")
        print(f"  simulated slice {i + 1} of {slices}", flush=True)
    con.execute("CHECKPOINT")
    con.close()


def _events_in(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| events | stage | wall s | peak MiB | events/s |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        for stage, m in row["stages"].items():
            if isinstance(m, str):
                lines.append(f"| {row['events']:,} | {stage} | {m} | | |")
                continue
            if not isinstance(m, dict) or "seconds" not in m:
                lines.append(f"| {row['events']:,} | {stage} | failed: {m} | | |")
                continue
            if m.get("stopped"):
                lines.append(
                    f"| {row['events']:,} | {stage} | stopped above {MEMORY_BOUND_MIB:,} MiB "
                    f"after {m['seconds']:.2f} | {m['peak_mib']:,.0f} | |"
                )
                continue
            rate = row["events"] / m["seconds"] if m["seconds"] > 0 else float("nan")
            lines.append(
                f"| {row['events']:,} | {stage} | {m['seconds']:.2f} | {m['peak_mib']:,.0f} "
                f"| {rate:,.0f} |"
            )
    return "\n".join(lines)


#: The targets (issue 17), on the largest size measured: (label, top, bottom, op, bound).
TARGETS = (
    ("nightly run <= 1.0 x catalog floor", "nightly run", "catalog floor", "<=", 1.0),
    ("nightly run, files by ingestion day with late and future events, <= 1.0 x catalog floor",
     "landing nightly run", "catalog floor", "<=", 1.0),
    ("cold run <= 2.5 x catalog floor", "cold run", "catalog floor", "<=", 2.5),
    ("cold run >= 2 x faster than pandas", "pandas", "cold run", ">=", 2.0),
)  # fmt: skip
#: Ratios shown beside the targets, without a bound.
REFERENCES = (
    ("cold run / primary-metric floor", "cold run", "floor"),
    ("catalog floor / primary-metric floor", "catalog floor", "floor"),
    ("cold run, files by ingestion day / catalog floor", "landing cold run", "catalog floor"),
)


def _seconds(stages: dict[str, Any], stage: str) -> float | None:
    m = stages.get(stage)
    return float(m["seconds"]) if isinstance(m, dict) and "seconds" in m else None


def _peak(stages: dict[str, Any], stage: str) -> float | None:
    m = stages.get(stage)
    return float(m["peak_mib"]) if isinstance(m, dict) and "peak_mib" in m else None


def _millions(events: int) -> str:
    return f"{events / 1e6:,.1f}M" if events < 1e7 else f"{events / 1e6:,.0f}M"


def _line(label: str, a: float | None, b: float | None, op: str, bound: float | None) -> str:
    if a is None or b is None or b == 0:
        return f"| {label} | not measured | — |"
    ratio = a / b
    if bound is None:
        return f"| {label} | {ratio:.2f} x | (reference) |"
    holds = ratio <= bound if op == "<=" else ratio >= bound
    return f"| {label} | {ratio:.2f} x | {'yes' if holds else 'no'} |"


def _memory_line(big: dict[str, Any] | None) -> str:
    """The 100M target: the default path's cold run under 16 GB, and the push-down run's."""
    label = "100M events on the default path under 16 GB"
    run = big["stages"].get("cold run") if big else None
    if big is None or not isinstance(run, dict) or "peak_mib" not in run:
        return f"| {label} | not measured (`--big`) | — |"
    label = f"{big['events'] / 1e6:,.0f}M events on the default path (cold run) under 16 GB"
    pushed = big["stages"].get("push-down run")
    beside = (
        f"; the push-down run: {pushed['peak_mib']:,.0f} MiB in {pushed['seconds']:,.0f} s"
        if isinstance(pushed, dict) and "peak_mib" in pushed
        else ""
    )
    if run.get("stopped"):
        got = f"over {MEMORY_BOUND_MIB:,} MiB: stopped after {run['seconds']:,.0f} s{beside}"
        return f"| {label} | {got} | no |"
    holds = "yes" if run["peak_mib"] < MEMORY_BOUND_MIB else "no"
    return f"| {label} | {run['peak_mib']:,.0f} MiB in {run['seconds']:,.0f} s{beside} | {holds} |"


def _targets(rows: list[dict[str, Any]]) -> str:
    """Each target: the measured figure and whether it holds (on the largest size)."""
    lines = ["| target | measured | holds |", "| --- | ---: | --- |"]
    # the largest and smallest sizes the in-memory references ran at (not the --big one)
    sized = [r for r in rows if r["events"] < BIG_EVENTS] or rows
    largest, smallest = sized[-1], sized[0]
    stages = largest["stages"]
    for label, top, bottom, op, bound in TARGETS:
        lines.append(_line(label, _seconds(stages, top), _seconds(stages, bottom), op, bound))
    if len(sized) >= 2:
        lines.append(_line(
            f"nightly run at {_millions(largest['events'])} <= 2 x at "
            f"{_millions(smallest['events'])} (cost follows the new day)",
            _seconds(stages, "nightly run"), _seconds(smallest["stages"], "nightly run"),
            "<=", 2.0,
        ))  # fmt: skip
    lines.append(_line(
        f"whole (cold) run at {_millions(smallest['events'])} <= 2 x importing the dependencies",
        _seconds(smallest["stages"], "cold run"), _seconds(smallest["stages"], "imports"),
        "<=", 2.0,
    ))  # fmt: skip
    lines.append(_line(
        "cold run peak memory <= 1.5 x catalog floor's",
        _peak(stages, "cold run"), _peak(stages, "catalog floor"), "<=", 1.5,
    ))  # fmt: skip
    big = [r for r in rows if r["events"] >= BIG_EVENTS]
    lines.append(_memory_line(big[-1] if big else None))
    for label, top, bottom in REFERENCES:
        lines.append(_line(label, _seconds(stages, top), _seconds(stages, bottom), "", None))
    return f"At {largest['events']:,} events unless a row says otherwise:\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e6, 1e7, 3e7])
    parser.add_argument("--big", action="store_true", help="add 1e8 events")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    parser.add_argument(
        "--no-runs", action="store_true", help="skip the whole-process cold and nightly runs"
    )
    parser.add_argument("--no-spark", action="store_true", help="skip the spark runs")
    parser.add_argument("--stage", choices=[*STAGES, *PREPARE], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps({**STAGES, **PREPARE}[args.stage](args.db)))
        return
    sizes = [*args.sizes, *([1e8] if args.big else [])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            db = Path(tmp) / f"bench-{int(size)}.duckdb"
            print(f"simulating ~{size:,.0f} events…", flush=True)
            _simulate(size, db)
            stages: dict[str, Any] = {}
            big = size >= BIG_EVENTS
            for stage in STAGES:
                if big:  # each holds every event in memory: more than this machine has
                    stages[stage] = "not run at this size (in memory)"
                    continue
                print(f"  {stage}…", flush=True)
                stages.update(_run_stage(stage, str(db)))
            if not args.no_runs:
                stages.update(whole_runs(db, Path(tmp), big=big, spark=not args.no_spark))
            events = int(stages.pop("events", 0)) or _events_in(db)
            rows.append({"events": events, "stages": stages})
            db.unlink()
    table = _table(rows) + "\n\n" + _targets(rows)
    print(table)
    if args.write:
        python = platform.python_version()
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {python}"
        doc = ROOT / "docs" / "performance.md"
        text = doc.read_text() if doc.exists() else ""
        block = (
            f"<!-- bench:start -->\nMeasured {dt.date.today()} on {machine} with "
            f"`make bench`.\n\n{table}\n<!-- bench:end -->"
        )
        if "<!-- bench:start -->" in text:
            text = re.sub(r"<!-- bench:start -->.*<!-- bench:end -->", block, text, flags=re.S)
        else:
            text += "\n" + block + "\n"
        doc.write_text(text)


if __name__ == "__main__":
    main()
