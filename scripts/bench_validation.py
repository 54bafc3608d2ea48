"""Time validation cold and cached, and the quarantine split, at several sizes.

For each size (events), simulates smart-compose data in memory and, in this
process, times:

* ``split`` — the quarantine split (polars);
* ``cold`` — ``validate_experiment`` with an empty cache: GX over the
  assignments and over every day partition of events;
* ``cached`` — the same call again: every partition reused;
* ``one new day`` — the nightly case: the cache holds every day but the last.

Peak memory is the process's resident high-water mark from the split on (the
simulated tables are already in memory and count).

Prints a markdown table (docs/validation.md keeps the last one). Usage:
``.venv/bin/python scripts/bench_validation.py --sizes 1e6 1e7``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import peak_mib, peak_reset  # a sibling script: scripts/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_UNIT = 29.0
AS_OF = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 26, 6, tzinfo=dt.UTC)


def bench(events: float) -> dict[str, Any]:
    import polars as pl

    from analysis.config.load import load_config
    from analysis.devtools.simulate import derived_seed, simulate_experiment
    from analysis.quarantine import split
    from analysis.validation.experiment import validate_experiment

    experiment = load_config(ROOT / "configs").experiment("smart-compose")
    units = max(int(events / EVENTS_PER_UNIT), 100)
    data = simulate_experiment(experiment, units, AS_OF, derived_seed(1, experiment.id))
    tables = {"assignments": data.assignments, "events": data.events}
    out: dict[str, Any] = {"events": data.events.height, "units": units}

    peak_reset()  # from here on: the checks, not the simulation
    start = time.perf_counter()
    result = split(tables, experiment, AS_OF, now=NOW)
    out["split"] = time.perf_counter() - start
    cache = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    try:
        for name in ("cold", "cached"):
            start = time.perf_counter()
            report = validate_experiment(
                tables, experiment, AS_OF, now=NOW, cache_dir=cache, quarantine=result.counts
            )
            out[name] = time.perf_counter() - start
            out[f"{name}_partitions"] = report.summary()["partitions"]
        last = max(cache.glob("2*.json"), key=lambda p: p.name)  # the newest day
        last.unlink()  # the nightly case: yesterday's partition is new
        start = time.perf_counter()
        report = validate_experiment(
            tables, experiment, AS_OF, now=NOW, cache_dir=cache, quarantine=result.counts
        )
        out["one new day"] = time.perf_counter() - start
        out["new_partitions"] = report.summary()["partitions"]
        out["peak_mib"] = peak_mib()
        out["days"] = pl.Series(data.events.get_column("ts").dt.date()).n_unique()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e6, 1e7])
    args = parser.parse_args()
    start = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations  # noqa: F401  (imported once; timed apart)
    gx_import = time.perf_counter() - start
    rows = [bench(size) for size in args.sizes]
    print(f"GX import: {gx_import:.1f} s; {os.cpu_count()} cores; as of {AS_OF}")
    print("| events | days | split s | cold s | cached s | one new day s | peak MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['events']:,} | {r['days']} | {r['split']:.1f} | {r['cold']:.1f} "
            f"| {r['cached']:.1f} | {r['one new day']:.1f} | {r['peak_mib']:,.0f} |"
        )
        print(f"<!-- {r['cold_partitions']} {r['cached_partitions']} {r['new_partitions']} -->")


if __name__ == "__main__":
    main()
