"""A run of a day with nothing to analyse is refused: a future date, a date before the start."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.config import AsOfError, ConfigError, check_as_of, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "configs")
START = CONFIG.experiment("smart-compose").start
TODAY = dt.date(2026, 12, 7)


def test_today_yesterday_and_the_start_are_analysed() -> None:
    for day in (TODAY, TODAY - dt.timedelta(days=1), START):
        assert check_as_of(day, START, today=TODAY) == day


def test_a_future_date_is_refused_saying_why() -> None:
    with pytest.raises(AsOfError, match=r"2026-12-08 is in the future \(today is 2026-12-07"):
        check_as_of(TODAY + dt.timedelta(days=1), START, today=TODAY)
    with pytest.raises(AsOfError, match="in the future"):  # the nightly run knows no start
        check_as_of(dt.date(2027, 1, 1), today=TODAY)


def test_a_date_before_the_start_is_refused_saying_why() -> None:
    with pytest.raises(AsOfError, match=f"before the experiment's start \\({START}\\)"):
        check_as_of(START - dt.timedelta(days=1), START, today=TODAY)
    assert issubclass(AsOfError, ConfigError)  # the CLI's and the flow's expected stop


@pytest.mark.parametrize(
    ("command", "as_of", "reason"),
    [
        ("run", "2099-01-01", "is in the future"),
        ("run", "2026-01-01", "before the experiment's start (2026-10-01)"),
        ("validate", "2099-01-01", "is in the future"),
        ("validate", "2026-01-01", "before the experiment's start"),
    ],
)
def test_the_command_line_refuses_before_reading_anything(
    command: str, as_of: str, reason: str, tmp_path: Path
) -> None:
    """Exit 2 with one line, no traceback, and no Prefect server started (fast)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", command, "-e", "smart-compose", "--as-of", as_of,
         "--config-dir", str(ROOT / "configs"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert reason in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()  # nothing published, no index written
    assert time.monotonic() - started < 60
