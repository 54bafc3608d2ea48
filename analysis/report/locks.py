"""Publish locks: OS file locks under the output directory, which die with their holder.

``exclusive(out_dir, name)`` holds ``<out_dir>/.locks/<name>.lock`` with
``flock``: one holder at a time across processes and threads (each holder
opens the file itself), on one machine or on a shared file system that
supports ``flock`` (NFS v4 does). The kernel releases the lock when its
holder's file is closed, which a killed process (``kill -9``) does too: a
crash never leaves a lock taken. Locks are scoped to the output directory:
runs publishing to different directories never wait for each other.

While it holds a lock, the holder's pid, host, start time and task are written
in the lock file; a publisher that must wait logs a line naming the lock and
its holder, then waits (and says so again every ``NOTE_EVERY_SECONDS``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOCK_DIR = ".locks"
INDEX = "index"  # index.html and the shared assets/ of an output directory
WAIT_SECONDS = 1800.0  # a live holder this slow is stuck: fail the waiting run
NOTE_EVERY_SECONDS = 60.0
_POLL_SECONDS = 0.05

_logger = logging.getLogger(__name__)
Logger = logging.Logger | logging.LoggerAdapter[Any]


def publish_lock(experiment_id: str) -> str:
    """The lock held while an experiment's run is published: ``publish-<id>``."""
    return "publish-" + re.sub(r"[^A-Za-z0-9_.-]", "-", experiment_id)


def lock_path(out_dir: Path | str, name: str) -> Path:
    return Path(out_dir) / LOCK_DIR / f"{name}.lock"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _describe(path: Path) -> str:
    """Who the lock file says holds it, in words."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (it has not written its name yet)"
    text = f"pid {info['pid']} on {info.get('host', '?')} since {info.get('since', '?')}"
    return f"{text} ({info['what']})" if info.get("what") else text


def holder(out_dir: Path | str, name: str) -> str | None:
    """Who holds lock ``name`` of ``out_dir`` now, or None when nobody does."""
    path = lock_path(out_dir, name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd):
            return None
        return _describe(path)
    finally:
        os.close(fd)  # releases a lock taken by the probe


@contextlib.contextmanager
def exclusive(
    out_dir: Path | str,
    name: str,
    *,
    what: str = "",
    timeout_seconds: float = WAIT_SECONDS,
    logger: Logger | None = None,
) -> Iterator[Path]:
    """Hold lock ``name`` of ``out_dir`` (waiting for its holder, and saying so); yield its path.

    Raises TimeoutError, naming the holder, after ``timeout_seconds`` of waiting.
    """
    log = logger or _logger
    path = lock_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            _wait(fd, path, name, timeout_seconds, log)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "thread": threading.current_thread().name,
            "what": what,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock (a killed holder's kernel does the same)


def _wait(fd: int, path: Path, name: str, timeout_seconds: float, log: Logger) -> None:
    started = time.monotonic()
    log.info("waiting for the lock %s (%s), held by %s", name, path, _describe(path))
    next_note = started + NOTE_EVERY_SECONDS
    while not _try_lock(fd):
        now = time.monotonic()
        if now - started >= timeout_seconds:
            msg = (
                f"gave up waiting for the lock {name} ({path}) after {now - started:.0f} s; "
                f"it is held by {_describe(path)}"
            )
            raise TimeoutError(msg)
        if now >= next_note:
            log.info(
                "still waiting for the lock %s after %.0f s, held by %s",
                name, now - started, _describe(path),
            )  # fmt: skip
            next_note = now + NOTE_EVERY_SECONDS
        time.sleep(_POLL_SECONDS)
    log.info("got the lock %s after %.1f s", name, time.monotonic() - started)
