"""Publish locks are OS file locks under the output directory: they die with their holder.

A lock taken by a process that is killed (``kill -9``) is free at once; a
waiting publisher says which lock it waits for and who holds it; two output
directories never block each other; threads of one process (the nightly
fan-out) exclude each other too.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analysis.report import locks

HOLD = """
import sys, time
from analysis.report import locks
with locks.exclusive(sys.argv[1], sys.argv[2], what="holding it for the test"):
    print("held", flush=True)
    time.sleep(600)
"""


class Lines(logging.Handler):
    """The formatted messages a logger receives."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logger(name: str) -> tuple[logging.Logger, Lines]:
    logger = logging.getLogger(f"tests.locks.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    lines = Lines()
    logger.handlers[:] = [lines]
    return logger, lines


def _holder(out: Path, name: str) -> subprocess.Popen[str]:
    """A process that holds lock ``name`` of ``out`` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out), name], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _wait_for(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_killed_holder_frees_the_lock_and_the_waiter_names_it(tmp_path: Path) -> None:
    name = locks.publish_lock("smart-compose")
    holder = _holder(tmp_path, name)
    logger, lines = _logger("killed")
    got: list[float] = []

    def wait() -> None:
        with locks.exclusive(tmp_path, name, what="the waiter", logger=logger):
            got.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    try:
        waiter.start()
        assert _wait_for(lambda: lines.lines, 30), "the waiter said nothing"
        line = lines.lines[0]
        assert "waiting" in line
        assert name in line
        assert f"pid {holder.pid}" in line
        assert "holding it for the test" in line
        assert not got
        killed = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        waiter.join(timeout=30)
        assert got, "the lock of a killed process stayed taken"
        assert got[0] - killed < 5
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_locks_are_scoped_to_the_output_directory(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    holder = _holder(one, locks.INDEX)
    logger, lines = _logger("scoped")
    try:
        started = time.monotonic()
        with locks.exclusive(two, locks.INDEX, logger=logger) as path:
            assert path.is_relative_to(two)
        assert time.monotonic() - started < 5
        assert not lines.lines  # nothing to wait for
        assert locks.holder(one, locks.INDEX) is not None
        assert f"pid {holder.pid}" in str(locks.holder(one, locks.INDEX))
        assert locks.holder(two, locks.INDEX) is None
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert locks.holder(one, locks.INDEX) is None


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    spans: list[tuple[float, float]] = []

    def hold() -> None:
        with locks.exclusive(tmp_path, locks.publish_lock("exp"), timeout_seconds=60):
            start = time.monotonic()
            time.sleep(0.2)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(spans) == 3
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_a_wait_that_lasts_too_long_fails_naming_the_holder(tmp_path: Path) -> None:
    name = locks.publish_lock("exp")
    holder = _holder(tmp_path, name)
    try:
        with (
            pytest.raises(TimeoutError, match=f"{name}.*pid {holder.pid}"),
            locks.exclusive(tmp_path, name, timeout_seconds=0.3),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_lock_names_are_safe_file_names() -> None:
    assert locks.publish_lock("smart-compose") == "publish-smart-compose"
    assert "/" not in locks.publish_lock("../x/y")
    assert not locks.publish_lock("../x").startswith(".")
    assert os.sep not in locks.publish_lock("a" + os.sep + "b")
