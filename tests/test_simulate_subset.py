"""Writing a subset of experiments into an existing target keeps the other experiments' rows.

``proof simulate -e one --format parquet`` used to replace the whole folder (and the
DuckDB writer the whole tables) with that one experiment's rows.  Both writers now
replace only the rows of the experiments written (assignments by ``experiment_id``,
events by the units of those assignments) and keep everything else as it was.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from analysis.config.load import ProofConfig, load_config
from analysis.devtools.simulate import (
    SimulatedData,
    WriteSummary,
    simulate,
    write_duckdb,
    write_parquet,
)
from tests.conftest import AS_OF

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
UNITS = 200
REDONE, OTHER = "smart-compose", "auto-triage"


@pytest.fixture(scope="module")
def cfg() -> ProofConfig:
    return load_config(CONFIGS)


def _read(fmt: str, target: Path) -> SimulatedData:
    if fmt == "parquet":
        return SimulatedData(
            pl.read_parquet(target / "assignments.parquet"),
            pl.read_parquet(target / "events" / "*.parquet"),
        )
    with duckdb.connect(str(target), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return SimulatedData(
            con.sql("SELECT * FROM assignments").pl(), con.sql("SELECT * FROM events").pl()
        )


def _write(
    fmt: str, target: Path, data: SimulatedData, experiments: Collection[str] | None = None
) -> WriteSummary:
    if fmt == "parquet":
        return write_parquet(target, data, experiments=experiments)
    return write_duckdb(target, data, experiments=experiments)


def _target(fmt: str, tmp_path: Path) -> Path:
    return tmp_path / ("files" if fmt == "parquet" else "warehouse.duckdb")


def _of(data: SimulatedData, experiment: str) -> SimulatedData:
    """The assignments of ``experiment`` and the events of its units."""
    assignments = data.assignments.filter(pl.col("experiment_id") == experiment)
    units = assignments["unit_id"].unique().implode()
    return SimulatedData(assignments, data.events.filter(pl.col("unit_id").is_in(units)))


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def _files(root: Path) -> dict[str, bytes]:
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): p.read_bytes() for p in paths}


@pytest.mark.parametrize("fmt", ["parquet", "duckdb"])
def test_rewriting_one_experiment_keeps_the_others(
    cfg: ProofConfig, tmp_path: Path, fmt: str
) -> None:
    target = _target(fmt, tmp_path)
    both = simulate([cfg.experiment(REDONE), cfg.experiment(OTHER)], UNITS, AS_OF, seed=1)
    _write(fmt, target, both)
    before = _read(fmt, target)
    assert set(before.assignments["experiment_id"]) == {REDONE, OTHER}

    again = simulate([cfg.experiment(REDONE)], UNITS, AS_OF, seed=2)
    summary = _write(fmt, target, again)
    after = _read(fmt, target)

    old_other, new_other = _of(before, OTHER), _of(after, OTHER)
    if fmt == "parquet":  # kept rows keep their order, ahead of the new ones
        assert new_other.assignments.equals(old_other.assignments)
        assert new_other.events.equals(old_other.events)
    assert _sorted(new_other.assignments).equals(_sorted(old_other.assignments))
    assert _sorted(new_other.events).equals(_sorted(old_other.events))

    redone = _of(after, REDONE)
    assert not _sorted(redone.events).equals(_sorted(_of(before, REDONE).events))  # new seed
    assert _sorted(redone.assignments).equals(_sorted(again.assignments))
    assert _sorted(redone.events).equals(_sorted(again.events))
    # nothing else is left: no stale rows of the old simulation, no duplicates
    assert after.assignments.height == old_other.assignments.height + again.assignments.height
    assert after.events.height == old_other.events.height + again.events.height

    assert summary.experiments == (REDONE,)
    assert summary.kept_experiments == (OTHER,)
    assert summary.kept_assignments == old_other.assignments.height
    assert summary.kept_events == old_other.events.height
    assert (
        f"kept {old_other.assignments.height:,} assignments and "
        f"{old_other.events.height:,} events of 1 other experiment(s) ({OTHER})"
    ) in summary.message
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".wal"))]
    assert leftovers == []


@pytest.mark.parametrize("fmt", ["parquet", "duckdb"])
def test_named_experiments_without_rows_are_cleared(
    cfg: ProofConfig, tmp_path: Path, fmt: str
) -> None:
    """``experiments=`` replaces the rows of experiments that have none in the data."""
    target = _target(fmt, tmp_path)
    pair = [cfg.experiment(REDONE), cfg.experiment(OTHER)]
    _write(fmt, target, simulate(pair, UNITS, AS_OF, seed=1))
    only = simulate([cfg.experiment(OTHER)], UNITS, AS_OF, seed=3)
    summary = _write(fmt, target, only, experiments=[OTHER, REDONE])
    after = _read(fmt, target)
    assert _sorted(after.assignments).equals(_sorted(only.assignments))
    assert _sorted(after.events).equals(_sorted(only.events))
    assert summary.kept_assignments == summary.kept_events == 0
    with pytest.raises(ValueError, match="outside experiments"):
        _write(fmt, target, only, experiments=[REDONE])


@pytest.mark.parametrize("fmt", ["parquet", "duckdb"])
def test_a_unit_shared_with_a_kept_experiment_is_refused(
    cfg: ProofConfig, tmp_path: Path, fmt: str
) -> None:
    target = _target(fmt, tmp_path)
    both = simulate([cfg.experiment(REDONE), cfg.experiment(OTHER)], UNITS, AS_OF, seed=1)
    _write(fmt, target, both)
    before = _files(target)
    shared = _of(both, OTHER).assignments["unit_id"][0]
    again = simulate([cfg.experiment(REDONE)], UNITS, AS_OF, seed=2)
    clash = SimulatedData(
        again.assignments.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.lit(shared))
            .otherwise(pl.col("unit_id"))
            .alias("unit_id")
        ),
        again.events,
    )
    with pytest.raises(ValueError, match=f"1 unit.*{shared}.*nothing was written"):
        _write(fmt, target, clash)
    assert _files(target) == before


def test_parquet_refuses_foreign_event_files(cfg: ProofConfig, tmp_path: Path) -> None:
    target = tmp_path / "files"
    both = simulate([cfg.experiment(REDONE), cfg.experiment(OTHER)], UNITS, AS_OF, seed=1)
    write_parquet(target, both)
    both.events.head(3).write_parquet(target / "events" / "extra.parquet")
    before = _files(target)
    with pytest.raises(ValueError, match=r"extra\.parquet"):
        write_parquet(target, simulate([cfg.experiment(REDONE)], UNITS, AS_OF, seed=2))
    assert _files(target) == before


def test_cli_simulate_one_experiment_keeps_the_others(tmp_path: Path) -> None:
    """The issue as reported: ``proof simulate -e one --format parquet``."""
    from flows.cli import app

    out = tmp_path / "files"
    base = ["simulate", "--config-dir", str(CONFIGS), "--units", str(UNITS)]
    base += ["--as-of", AS_OF.isoformat(), "--format", "parquet", "--out", str(out)]
    runner = CliRunner()
    assert runner.invoke(app, base).exit_code == 0
    before = _read("parquet", out)
    result = runner.invoke(app, [*base, "-e", REDONE, "--seed", "8"])
    assert result.exit_code == 0, result.output
    after = _read("parquet", out)
    assert set(after.assignments["experiment_id"]) == set(load_config(CONFIGS).experiments)
    assert _of(after, OTHER).assignments.equals(_of(before, OTHER).assignments)
    assert _of(after, OTHER).events.equals(_of(before, OTHER).events)
