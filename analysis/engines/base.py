"""The engine contract: every way Proof computes a run implements these two steps.

An engine ``check``\\ s an experiment's rows (the quarantine split and the GX
suites) and ``measure``\\ s the rows it kept into one
:class:`~analysis.measurement.Measurement`. The flow, ``proof validate`` and
the tests call only these two methods, on the engine
:func:`analysis.engines.engine_for` picked; nothing outside this package
branches on the kind of source.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import polars as pl

from analysis.config.experiments import Experiment, Metric
from analysis.measurement import Measurement
from analysis.validation_report import ValidationReport

# Great Expectations keeps its current context in a process-wide global, and
# the validation adapter swaps warning filters: one validation at a time per
# process (concurrent nightly experiments still read and measure in parallel).
GX_LOCK = threading.Lock()

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default log: engines report progress only when the caller listens."""


@dataclass(frozen=True)
class RunOptions:
    """What a run asks of its engine besides the experiment.

    Attributes:
        out_dir: the published output; caches live under ``out_dir/.cache``.
            None: nothing is cached (tests, ``proof validate`` without a cache).
        revalidate: validate every day partition again, ignoring cached results.
        no_cache: ignore every stored result (partials and validation).
        log: where progress lines go (the flow passes Prefect's run logger).
        now: the clock of the checks (``ts_in_future``); None: the time of the check.
        validation_workers: processes GX may validate event batches in at once
            (``analysis.partitions.validate``); the flows take it from
            ``PROOF_VALIDATION_WORKERS`` (default 1).
    """

    out_dir: Path | None = None
    revalidate: bool = False
    no_cache: bool = False
    log: Log = field(default=_quiet, compare=False)
    now: dt.datetime | None = None
    validation_workers: int = 1

    def clock(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC)


Kept = TypeVar("Kept")


@dataclass(frozen=True)
class Checked(Generic[Kept]):
    """What an engine's checks found; ``kept`` is the engine's own handle on the rows it keeps.

    Attributes:
        report: the validation report (``report.success`` is True: a critical
            failure raises :class:`~analysis.validation_report.CriticalValidationError`).
        quarantined: the set-aside rows per table, each with its reason (published).
        now: the time the checks ran with (``ts_in_future``); the measurement uses it too.
    """

    report: ValidationReport
    quarantined: Mapping[str, pl.DataFrame]
    kept: Kept
    now: dt.datetime

    @property
    def rows_quarantined(self) -> int:
        return sum(frame.height for frame in self.quarantined.values())


class Engine(Protocol[Kept]):
    """One way of computing a run: where the rows are checked and measured."""

    @property
    def name(self) -> str:
        """Where the engine computes, in words (logs, ``results.json``)."""

    def check(self, experiment: Experiment, as_of: dt.date) -> Checked[Kept]:
        """Quarantine row-level failures and validate what is left.

        Raises:
            CriticalValidationError: a critical expectation failed; no statistic may follow.
            SourceError: the source cannot be read (``sources.errors.retryable`` says
                whether trying again can help).
        """

    def measure(
        self,
        checked: Checked[Kept],
        experiment: Experiment,
        metrics: Sequence[Metric],
        as_of: dt.date,
    ) -> Measurement:
        """Per-arm sufficient statistics, timelines, funnel and histograms of the kept rows."""
