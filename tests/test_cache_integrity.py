"""The caches under OUT/.cache trust nothing they find: a damaged file is recomputed, warned of.

Partials (analysis.partials_cache): each day file's checksum and row count are
in its manifest and checked before the file is used. Validation results
(analysis.partitions): each JSON file carries its own name and a checksum of
its content. Every case here compares with a run that ignores the cache
(``--no-cache`` / ``revalidate``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate
from analysis.partials import PartialSpec
from analysis.partials_cache import CacheUse, cached_partials_of
from analysis.partitions.validate import validate_partitions
from analysis.sources.read import Tables
from tests import validation_factories as f
from tests.conftest import AS_OF, CONFIGS
from tests.test_partitions import ReferenceValidator, _suite

CONFIG = load_config(CONFIGS)
EXPERIMENT = CONFIG.experiment("smart-compose")
SPEC = PartialSpec.of(
    CONFIG.metrics_of(EXPERIMENT), EXPERIMENT.window_days, EXPERIMENT.pre_window_days
)
VICTIM = AS_OF - dt.timedelta(days=5)
OTHER = AS_OF - dt.timedelta(days=6)


@pytest.fixture(scope="module")
def tables() -> Tables:
    sim = simulate([EXPERIMENT], 1_500, AS_OF, seed=5)
    events = sim.events.unique(subset="event_id", keep="first", maintain_order=True)
    return Tables(sim.assignments.lazy(), events.lazy())


@pytest.fixture(scope="module")
def no_cache(tables: Tables, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """What ``proof run --no-cache`` computes."""
    return _partials(tables, tmp_path_factory.mktemp("no-cache"), refresh=True)[0]


def _partials(
    tables: Tables, cache: Path, *, refresh: bool = False
) -> tuple[pl.DataFrame, CacheUse]:
    rows, use = cached_partials_of(tables, SPEC, cache, AS_OF, refresh=refresh)
    return rows.collect().sort(pl.all()), use


def _day_file(cache: Path, day: dt.date) -> Path:
    (path,) = cache.glob(f"{day.isoformat()}-*.parquet")
    return path


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name == "analysis.partials_cache" and r.levelno >= logging.WARNING
    )


def _damaged_run(
    tables: Tables, cache: Path, caplog: pytest.LogCaptureFixture
) -> tuple[pl.DataFrame, CacheUse, str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="analysis.partials_cache"):
        got, use = _partials(tables, cache)
    return got, use, _warnings(caplog)


def _healed(tables: Tables, cache: Path, want: pl.DataFrame) -> None:
    """The next run reuses every partition again, and still gets the right numbers."""
    again, use = _partials(tables, cache)
    assert_frame_equal(again, want)
    assert (use.computed, use.days_written) == (0, 0)


def test_a_truncated_day_file_is_recomputed_with_a_warning_naming_it(
    tables: Tables, no_cache: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, first = _partials(tables, tmp_path)
    victim = _day_file(tmp_path, VICTIM)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    got, use, warned = _damaged_run(tables, tmp_path, caplog)
    assert_frame_equal(got, no_cache)
    assert str(victim) in warned
    assert "--no-cache" in warned
    assert use.days_written == 1
    assert 0 < use.computed < first.computed
    _healed(tables, tmp_path, no_cache)


def test_another_days_valid_file_copied_over_a_day_file_is_detected(
    tables: Tables, no_cache: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _partials(tables, tmp_path)
    victim = _day_file(tmp_path, VICTIM)
    shutil.copyfile(_day_file(tmp_path, OTHER), victim)
    got, use, warned = _damaged_run(tables, tmp_path, caplog)
    assert_frame_equal(got, no_cache)
    assert str(victim) in warned
    assert use.days_written == 1
    _healed(tables, tmp_path, no_cache)


def _garbled(cache: Path, how: str) -> str:
    path = cache / f"{VICTIM.isoformat()}.json"
    manifest = json.loads(path.read_text())
    if how == "null":
        return "null"
    if how == "list":
        return json.dumps([manifest])
    if how == "cohorts-not-a-mapping":
        return json.dumps(manifest | {"cohorts": "garbled"})
    other = json.loads((cache / f"{OTHER.isoformat()}.json").read_text())
    assert how == "names-another-days-file"
    return json.dumps(manifest | {"file": other["file"]})


@pytest.mark.parametrize(
    "how", ["null", "list", "cohorts-not-a-mapping", "names-another-days-file"]
)
def test_a_garbled_manifest_is_recomputed_with_a_warning(
    how: str,
    tables: Tables,
    no_cache: pl.DataFrame,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _partials(tables, tmp_path)
    manifest = tmp_path / f"{VICTIM.isoformat()}.json"
    manifest.write_text(_garbled(tmp_path, how))
    got, use, warned = _damaged_run(tables, tmp_path, caplog)
    assert_frame_equal(got, no_cache)
    assert str(manifest) in warned
    assert use.days_written == 1
    assert len(list(tmp_path.glob(f"{VICTIM.isoformat()}-*.parquet"))) == 1
    _healed(tables, tmp_path, no_cache)


# --------------------------------------------------------------------------- validation cache


def _failing_on_day_one() -> pl.DataFrame:
    return f.set_rows(f.events(), [3], value=-1.0)  # a task_completed value out of range


def _validation_warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name == "analysis.partitions.cache" and r.levelno >= logging.WARNING
    )


def _revalidated(events: pl.DataFrame, cache: Path, caplog: pytest.LogCaptureFixture) -> str:
    """Validate again from ``cache``; the outcomes must be what a full revalidation says."""
    want = validate_partitions(events, _suite(), ReferenceValidator(), revalidate=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="analysis.partitions.cache"):
        got = validate_partitions(events, _suite(), ReferenceValidator(), cache_dir=cache)
    assert got.outcomes == want.outcomes
    assert (got.validated, got.reused) == (1, 2)
    return _validation_warnings(caplog)


def test_a_validation_result_copied_from_another_day_is_not_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Day 2's clean result copied over day 1's failure must not hide the failure."""
    events = _failing_on_day_one()
    validate_partitions(events, _suite(), ReferenceValidator(), cache_dir=tmp_path)
    (day1,) = tmp_path.glob("2026-10-01-*.json")
    (day2,) = tmp_path.glob("2026-10-02-*.json")
    shutil.copyfile(day2, day1)
    assert str(day1) in _revalidated(events, tmp_path, caplog)


def test_an_edited_validation_result_is_not_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Valid JSON whose outcomes were changed (a failure turned into a pass) fails its checksum."""
    events = _failing_on_day_one()
    validate_partitions(events, _suite(), ReferenceValidator(), cache_dir=tmp_path)
    (day1,) = tmp_path.glob("2026-10-01-*.json")
    body = json.loads(day1.read_text())
    for outcome in body["outcomes"]:
        outcome["success"] = True
        if outcome["unexpected_count"]:
            outcome["unexpected_count"] = 0
    day1.write_text(json.dumps(body))
    assert str(day1) in _revalidated(events, tmp_path, caplog)
