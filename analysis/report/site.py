"""Publish one analysed run to the site: its pages, results.json and quarantine, then the index.

All or nothing, under the output directory's file locks (:mod:`analysis.report.locks`,
which die with a killed run): leftovers of killed publishers are repaired or
removed first; the run, quarantine included, becomes visible by one rename
(:func:`analysis.report.publish.publish_run`); the index is rebuilt last.
:func:`publish_results` renders the report under the experiment's lock, so
that it says what moved since the run published before it
(:mod:`analysis.report.changes`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from analysis.report import locks
from analysis.report.changes import changes_since, previous_results
from analysis.report.publish import (
    REPORT_PLOTLY_SRC,
    ensure_plotly_asset,
    publish_run,
    recover_runs,
    remove_site_leftovers,
    write_quarantine,
)
from analysis.report.render import render_run_files
from analysis.report.site_index import write_index
from analysis.results import Results, to_json

__all__ = ["publish_files", "publish_results"]


def publish_results(
    out_dir: Path,
    results: Results,
    quarantined: Mapping[str, pl.DataFrame],
    logger: locks.Logger,
) -> Path:
    """Render ``results`` (report, validation page, results.json) and publish them.

    Under the experiment's publish lock, the run published just before this one
    (:func:`analysis.report.changes.previous_results`; never a run of the same id
    being replaced) is read, and the report says what moved since it.
    """

    def render() -> dict[str, str]:
        previous = previous_results(
            out_dir, results.experiment_id, results.run_id,
            results.analysis_date, results.generated_at,
        )  # fmt: skip
        changes = None if previous is None else changes_since(previous, results)
        pages = render_run_files(results, REPORT_PLOTLY_SRC, changes)
        return {"results.json": to_json(results), **pages}

    return _publish(out_dir, results.experiment_id, results.run_id, render, quarantined, logger)


def publish_files(
    out_dir: Path,
    experiment_id: str,
    run_id: str,
    files: Mapping[str, str | bytes],
    quarantined: Mapping[str, pl.DataFrame],
    logger: locks.Logger,
) -> Path:
    """Publish a rendered run with its quarantine files, all or nothing; then the index.

    Under the output directory's file locks (they die with a killed run): the
    leftovers of killed publishers are repaired or removed first; the run,
    quarantine included, becomes visible by one rename.
    """
    return _publish(out_dir, experiment_id, run_id, lambda: files, quarantined, logger)


def _publish(
    out_dir: Path,
    experiment_id: str,
    run_id: str,
    make_files: Callable[[], Mapping[str, str | bytes]],
    quarantined: Mapping[str, pl.DataFrame],
    logger: locks.Logger,
) -> Path:
    """:func:`publish_files`, with the files made under the experiment's lock, once
    the leftovers of killed publishers are repaired (a replaced run put back)."""
    what = f"publishing {experiment_id} run {run_id}"
    with locks.exclusive(out_dir, locks.INDEX, what=what, logger=logger):
        for line in remove_site_leftovers(out_dir):
            logger.info(line)
        ensure_plotly_asset(out_dir)
    with locks.exclusive(out_dir, locks.publish_lock(experiment_id), what=what, logger=logger):
        for line in recover_runs(out_dir, experiment_id):
            logger.info("%s: %s", experiment_id, line)
        files = make_files()
        run_dir = publish_run(
            out_dir, experiment_id, run_id, files,
            fill=lambda folder: write_quarantine(folder, quarantined),
        )  # fmt: skip
    with locks.exclusive(out_dir, locks.INDEX, what=what, logger=logger):
        write_index(out_dir)
    return run_dir
