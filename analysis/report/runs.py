"""The published runs of an output directory: list them, remove one, atomically.

A run is ``<out_dir>/<experiment_id>/<run_id>/`` holding its ``results.json``
(:mod:`analysis.report.publish`).  :func:`remove_run` takes the same locks as a
publisher (:func:`analysis.report.site.publish_files`): under the experiment's
publish lock it repairs what killed publishers left, then makes the run vanish
by one rename to a hidden ``.tmp-discard-*`` name (the index and readers skip
hidden folders; a removal killed after the rename leaves a ``.tmp-*`` folder,
which the next publisher deletes), and deletes it; under the index lock it
rebuilds ``index.html``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import shutil
from pathlib import Path

from analysis.report import locks
from analysis.report.publish import (
    _ASIDE,
    _check_component,
    _fsync_dir,
    recover_runs,
    remove_site_leftovers,
)
from analysis.report.site_index import collect_index_entries, write_index

__all__ = ["RunEntry", "RunNotFoundError", "find_run", "known_runs", "list_runs", "remove_run"]

RESULTS_FILE = "results.json"


class RunNotFoundError(LookupError):
    """No published run of that id (or no such experiment) in the output directory."""

    def __init__(self, message: str, experiment_id: str, run_id: str, known: list[str]) -> None:
        super().__init__(message)
        self.experiment_id, self.run_id, self.known = experiment_id, run_id, known

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class RunEntry:
    """One published run, as the index shows it."""

    experiment_id: str
    run_id: str
    analysis_date: str | None
    generated_at: str | None
    recommendation: str | None
    path: Path


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def list_runs(out_dir: Path, experiment_id: str | None = None) -> list[RunEntry]:
    """The runs the index shows: experiments by name, each one's runs latest first.

    Only runs with a readable ``results.json`` of the supported schema count
    (:func:`analysis.report.site_index.collect_index_entries`).  With
    ``experiment_id``, that experiment's runs only.
    """
    root = Path(out_dir)
    if not root.is_dir():
        return []
    return [
        RunEntry(
            experiment_id=entry["experiment_id"],
            run_id=str(run["run_id"]),
            analysis_date=_text(run.get("analysis_date")),
            generated_at=_text(run.get("generated_at")),
            recommendation=_text(run.get("recommendation")),
            path=root / entry["experiment_id"] / str(run["run_id"]),
        )
        for entry in collect_index_entries(root)
        if experiment_id is None or entry["experiment_id"] == experiment_id
        for run in entry["runs"]
    ]


def _experiments(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        {
            p.parent.parent.name
            for p in root.glob(f"*/*/{RESULTS_FILE}")
            if not p.parent.name.startswith(".") and not p.parent.parent.name.startswith(".")
        }
    )


def known_runs(out_dir: Path, experiment_id: str) -> list[str]:
    """The run ids of ``experiment_id``: visible folders holding a results.json, and runs
    a killed publisher moved aside (``.old-<run_id>-*``) that the next publisher restores."""
    experiment_dir = Path(out_dir) / _check_component(experiment_id, "experiment id")
    if not experiment_dir.is_dir():
        return []
    found: set[str] = set()
    for entry in experiment_dir.iterdir():
        aside = _ASIDE.fullmatch(entry.name)
        if aside is not None and entry.is_dir():
            found.add(aside["run_id"])
        elif not entry.name.startswith(".") and (entry / RESULTS_FILE).is_file():
            found.add(entry.name)
    return sorted(found)


def find_run(out_dir: Path, experiment_id: str, run_id: str) -> Path:
    """The folder of run ``run_id`` of ``experiment_id``; RunNotFoundError (naming the
    experiment's runs, or the experiments) when there is none, ValueError for an id
    that cannot name a folder (a path, a hidden name)."""
    root = Path(out_dir)
    _check_component(experiment_id, "experiment id")
    _check_component(run_id, "run id")
    known = known_runs(root, experiment_id)
    if not known:
        others = ", ".join(_experiments(root)) or "none"
        msg = f"no published experiment {experiment_id!r} in {root} (experiments: {others})"
        raise RunNotFoundError(msg, experiment_id, run_id, [])
    if run_id not in known:
        msg = (
            f"no run {run_id!r} of experiment {experiment_id!r} in {root} "
            f"(its runs: {', '.join(known)})"
        )
        raise RunNotFoundError(msg, experiment_id, run_id, known)
    return root / experiment_id / run_id


def _delete(folder: Path) -> None:
    """Delete a folder nobody can see any more (a symlink: the link only)."""
    if folder.is_symlink():
        folder.unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def remove_run(out_dir: Path, experiment_id: str, run_id: str, logger: locks.Logger) -> Path:
    """Remove run ``run_id`` of ``experiment_id`` from ``out_dir`` and the index; return
    the folder it was.

    Under the experiment's publish lock: the leftovers of killed publishers are
    repaired first, then the run disappears by one rename to a hidden
    ``.tmp-discard-*`` name and is deleted; the experiment's folder goes too when
    it is left empty.  Then, under the index lock, ``index.html`` is rebuilt.
    Raises RunNotFoundError or ValueError (see :func:`find_run`) before anything changes.
    """
    root = Path(out_dir)
    find_run(root, experiment_id, run_id)  # a bad id or unknown run: fail before any lock
    what = f"removing {experiment_id} run {run_id}"
    with locks.exclusive(root, locks.publish_lock(experiment_id), what=what, logger=logger):
        for line in recover_runs(root, experiment_id):
            logger.info("%s: %s", experiment_id, line)
        run_dir = find_run(root, experiment_id, run_id)  # again: a rival may have removed it
        experiment_dir = run_dir.parent
        doomed = experiment_dir / f".tmp-discard-{secrets.token_hex(4)}"
        run_dir.rename(doomed)  # the one step that removes the run: atomic, or nothing
        _fsync_dir(experiment_dir)
        _delete(doomed)
        with contextlib.suppress(OSError):  # kept while it holds anything else
            experiment_dir.rmdir()  # its last run is gone: the experiment goes too
            _fsync_dir(root)
    with locks.exclusive(root, locks.INDEX, what=what, logger=logger):
        for line in remove_site_leftovers(root):
            logger.info(line)
        write_index(root)
    return run_dir
