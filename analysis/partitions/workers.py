"""Work over groups in the run's process and in spawned worker processes at once.

GX over pandas runs on one core; :func:`in_workers` shares batches between the
run's process and ``workers - 1`` spawned processes
(:func:`analysis.partitions.validate.validate_partitions`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_workers(groups: Iterable[T], work: Callable[[T], R], workers: int) -> Iterator[tuple[T, R]]:
    """``work`` over ``groups`` in ``workers`` processes, the run's own among them;
    results in the order of ``groups``.

    ``workers - 1`` processes are spawned, not forked (polars' threads do not
    survive a fork). Each holds at most two groups, the one it validates and
    the next (handed one at a time, a worker sat idle for as long as it
    worked while the run's process finished its own group), so the rows sent
    to them stay bounded; the run's process validates the other groups
    itself. It does not wait for them to start: a spawned process imports GX
    (about 4 s here) while the run's process validates the first groups.
    """
    context = multiprocessing.get_context("spawn")
    finished: dict[int, R] = {}
    started: dict[int, T] = {}  # a group's rows are not held once handed on
    flight: dict[int, Future[R]] = {}
    shown = 0

    def ready() -> Iterator[tuple[T, R]]:
        nonlocal shown
        for i, future in list(flight.items()):
            if future.done():
                finished[i] = future.result()
                del flight[i]
        while shown in finished:
            yield started.pop(shown), finished.pop(shown)
            shown += 1

    with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
        for i, group in enumerate(groups):
            started[i] = group
            if len(flight) < 2 * (workers - 1):
                flight[i] = pool.submit(work, group)
            else:
                finished[i] = work(group)
            yield from ready()
        for i, future in list(flight.items()):
            finished[i] = future.result()
        flight.clear()
        yield from ready()
