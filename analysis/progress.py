"""Progress lines of the long steps: a start line, then "done in N s".

A person at a terminal waits for these (a check or a publish can take minutes);
a cron job, a pipe or a log file does not need them, so they are quiet there.
``PROOF_PROGRESS`` forces the choice: ``1`` always shows them, ``0`` never.
The steps are worded once here, so ``proof run`` and ``proof validate`` say the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, Protocol

from analysis.settings import env

__all__ = ["CHECKING", "MEASURING", "PROGRESS_ENV", "PUBLISHING", "show_progress", "step"]

PROGRESS_ENV: Final = "PROOF_PROGRESS"
_OFF: Final = frozenset({"0", "false", "no", "off"})

CHECKING: Final = "checking the data (quarantine, then every expectation)"
MEASURING: Final = "measuring (per-unit metrics, timelines, per-unit checks)"
PUBLISHING: Final = "rendering and publishing the report"


class Stream(Protocol):
    def isatty(self) -> bool: ...


def show_progress(stream: Stream | None) -> bool:
    """Whether progress lines go to ``stream``: when it is a terminal, unless forced.

    ``PROOF_PROGRESS=0`` (or false, no, off) never shows them; any other
    non-empty value always does.
    """
    forced = env(PROGRESS_ENV)
    if forced is not None:
        return forced.strip().lower() not in _OFF
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # a closed stream
        return False


@contextmanager
def step(what: str, say: Callable[[str], None]) -> Iterator[None]:
    """Say that ``what`` starts, then how long it took (not when it raised)."""
    started = time.perf_counter()
    say(f"{what}…")
    yield
    say(f"{what}: done in {time.perf_counter() - started:.1f} s")
