"""Time validation and quarantine inside PostgreSQL against the polars/pandas path.

Simulates smart-compose data of about ``--events`` events, loads it into a
throwaway schema of the PostgreSQL at ``--uri`` (``COPY``, not timed), and times,
each in this process after GX has been imported once:

* ``read`` — the polars path's read of the experiment (``read_experiment`` +
  ``collect_tables``: connectorx, every row);
* ``split`` — ``quarantine.split`` over the rows read;
* ``pandas`` — ``validate_experiment`` with no cache (GX over pandas, per day);
* ``sql validate`` — ``analysis.sql.gx.validate_sql`` (GX's SQL engine);
* ``sql quarantine`` — ``analysis.sql.quarantine.quarantine_sql`` (labels in SQL, only
  the quarantined rows read back).

It checks that both paths agree (outcomes and quarantine counts), drops the
schema, and prints a markdown table. Usage:
``.venv/bin/python scripts/bench_validation_sql.py --events 1e6``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the PostgreSQL loader is the tests' (tests/pg_factories.py)
EVENTS_PER_UNIT = 29.0
AS_OF = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 26, 6, tzinfo=dt.UTC)
ENV = "PROOF_BENCH_PG_URI"


def _load(uri: str, schema: str, tables: dict[str, Any]) -> None:
    import psycopg

    from tests.pg_factories import copy_into

    with psycopg.connect(uri, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        for name, frame in tables.items():
            copy_into(con, f"{schema}.{name}", frame)


def bench(uri: str, events: float) -> dict[str, Any]:
    import psycopg

    from analysis.config.load import load_config
    from analysis.config.sources import SqlSource
    from analysis.devtools.simulate import derived_seed, simulate_experiment
    from analysis.quarantine import collect_tables, split
    from analysis.sources.read import read_experiment
    from analysis.sql.database import Database
    from analysis.sql.gx import validate_sql
    from analysis.sql.quarantine import quarantine_sql
    from analysis.validation.experiment import validate_experiment

    experiment = load_config(ROOT / "configs").experiment("smart-compose")
    units = max(int(events / EVENTS_PER_UNIT), 100)
    data = simulate_experiment(experiment, units, AS_OF, derived_seed(1, experiment.id))
    schema = f"proof_bench_{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {"events": data.events.height, "units": units}
    start = time.perf_counter()
    _load(uri, schema, {"assignments": data.assignments, "events": data.events})
    out["load"] = time.perf_counter() - start
    del data
    os.environ[ENV] = uri
    src = SqlSource(
        kind="sql", uri_env=ENV, assignments=f"{schema}.assignments", events=f"{schema}.events"
    )
    try:
        start = time.perf_counter()
        raw = collect_tables(read_experiment("bench", src, experiment.id))
        out["read"] = time.perf_counter() - start
        start = time.perf_counter()
        held = split(raw, experiment, AS_OF, now=NOW)
        out["split"] = time.perf_counter() - start
        start = time.perf_counter()
        pandas = validate_experiment(raw, experiment, AS_OF, now=NOW, quarantine=held.counts)
        out["pandas"] = time.perf_counter() - start
        del raw
        start = time.perf_counter()
        sql = validate_sql(Database.open("bench", src), experiment, AS_OF, now=NOW)
        out["sql validate"] = time.perf_counter() - start
        start = time.perf_counter()
        quarantined = quarantine_sql(Database.open("bench", src), experiment, AS_OF, now=NOW)
        out["sql quarantine"] = time.perf_counter() - start
        same = [(o.key, o.success, o.unexpected_count) for o in pandas.outcomes] == [
            (o.key, o.success, o.unexpected_count) for o in sql.outcomes
        ]
        out["agree"] = same and quarantined.counts == {t: dict(c) for t, c in held.counts.items()}
        out["quarantined"] = sum(quarantined.rows_quarantined.values())
    finally:
        with psycopg.connect(uri, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", nargs="*", type=float, default=[1e6])
    parser.add_argument("--uri", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations  # noqa: F401  (imported once; timed apart)
    gx_import = time.perf_counter() - start
    rows = [bench(args.uri, size) for size in args.events]
    print(f"GX import: {gx_import:.1f} s; {os.cpu_count()} cores; as of {AS_OF}")
    print(
        "| events | read s | split s | pandas GX s | polars path s "
        "| SQL GX s | SQL quarantine s | SQL path s | agree |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    for r in rows:
        polars_total = r["read"] + r["split"] + r["pandas"]
        sql_total = r["sql validate"] + r["sql quarantine"]
        print(
            f"| {r['events']:,} | {r['read']:.1f} | {r['split']:.1f} | {r['pandas']:.1f} "
            f"| {polars_total:.1f} | {r['sql validate']:.1f} "
            f"| {r['sql quarantine']:.1f} | {sql_total:.1f} "
            f"| {'yes' if r['agree'] else 'NO'} |"
        )
        print(
            f"<!-- load {r['load']:.1f} s, {r['units']:,} units, {r['quarantined']} quarantined -->"
        )


if __name__ == "__main__":
    main()
