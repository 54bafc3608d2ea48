"""Publishing reports to a static site directory, atomically.

Layout of ``out_dir``::

    index.html                          every experiment, latest run first
    assets/plotly.min.js                shared by every report
    <experiment_id>/<run_id>/           one run: results.json, report.html, ...

A run directory is written in full under a hidden temporary name and renamed
into place, so a reader (or a web server) sees either the previous run or the
new one, and a failure leaves the last good report untouched.

A publisher killed at any moment (``kill -9``, a power cut after the fsyncs)
leaves at most: a ``.tmp-*`` folder (a run that never became visible, or a
replaced run on its way out), a ``.old-<run>-*`` folder (a complete replaced
run whose successor may not be in place yet) and ``.<file>.*.tmp`` files.
:func:`recover_runs` and :func:`remove_site_leftovers`, called by the next
publisher while it holds the same locks, put the replaced run back when its
successor is missing and remove the rest.  Concurrent publishers must take
turns per experiment, and for the index and assets (:mod:`analysis.report.locks`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Final

import polars as pl
from plotly.offline import get_plotlyjs

__all__ = [
    "ASSET_DIR",
    "PLOTLY_ASSET",
    "REPORT_PLOTLY_SRC",
    "ensure_plotly_asset",
    "publish_run",
    "recover_runs",
    "remove_site_leftovers",
    "write_quarantine",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

ASSET_DIR: Final = "assets"
PLOTLY_ASSET: Final = "plotly.min.js"
#: plotly_src for a report at ``<out_dir>/<experiment_id>/<run_id>/report.html``.
REPORT_PLOTLY_SRC: Final = f"../../{ASSET_DIR}/{PLOTLY_ASSET}"
_FILE_MODE: Final = 0o644
_DIR_MODE: Final = 0o755
#: A complete run moved aside while its successor is renamed into place.
_ASIDE: Final = re.compile(r"\.old-(?P<run_id>.+)-[0-9a-f]{8}")


# --------------------------------------------------------------------------- low level


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that readers see the old or the new file, never half.

    The text goes to a temporary file in the same directory, is fsynced, and
    replaces ``path`` with :func:`os.replace`.
    """
    _write_bytes_atomic(Path(path), text.encode("utf-8"))


def ensure_plotly_asset(out_dir: Path) -> Path:
    """Write ``out_dir/assets/plotly.min.js`` from the installed plotly, once.

    An existing file of the same size is kept (the bundle is several MB and
    shared by every report).
    """
    target = Path(out_dir) / ASSET_DIR / PLOTLY_ASSET
    data = str(get_plotlyjs()).encode("utf-8")
    if target.is_file() and target.stat().st_size == len(data):
        return target
    _write_bytes_atomic(target, data)
    return target


def _check_component(value: str, what: str) -> str:
    """A single, visible path component: no separators, no '.', '..' or hidden names."""
    if (
        not value
        or value.startswith(".")
        or "/" in value
        or "\\" in value
        or "\x00" in value
        or value != value.strip()
    ):
        msg = f"{what} {value!r} cannot be used as a directory name"
        raise ValueError(msg)
    return value


def _relative_file(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if not name or rel.is_absolute() or any(part in {"", ".", ".."} for part in rel.parts):
        msg = f"file name {name!r} must be a relative path inside the run directory"
        raise ValueError(msg)
    return rel


def publish_run(
    out_dir: Path,
    experiment_id: str,
    run_id: str,
    files: Mapping[str, str | bytes],
    fill: Callable[[Path], object] | None = None,
) -> Path:
    """Publish one run's files as ``out_dir/<experiment_id>/<run_id>/``, all or nothing.

    ``files`` maps relative file names (``"report.html"``, ``"results.json"``)
    to text (written as UTF-8) or bytes.  They are written in a hidden
    temporary directory next to the target; ``fill``, if given, is then called
    with that directory to add more (e.g. the quarantine files).  Everything
    is fsynced, and the directory is renamed into place: the run appears
    complete or not at all.  An existing run of the same id is moved aside
    (``.old-<run_id>-*``), replaced, and only then deleted.  If anything fails
    before the rename, the temporary directory is removed and previously
    published runs are untouched.
    """
    _check_component(experiment_id, "experiment_id")
    _check_component(run_id, "run_id")
    experiment_dir = Path(out_dir) / experiment_id
    experiment_dir.mkdir(parents=True, exist_ok=True)
    target = experiment_dir / run_id
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{run_id}-", dir=experiment_dir))
    try:
        for name, content in files.items():
            if isinstance(content, str):
                data = content.encode("utf-8")
            elif isinstance(content, bytes):
                data = content
            else:
                msg = f"{name}: expected str or bytes, got {type(content).__name__}"
                raise TypeError(msg)
            path = tmp.joinpath(*_relative_file(name).parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.write(data)
        if fill is not None:
            fill(tmp)
        _sync_tree(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(experiment_dir)
    return target


def _sync_tree(root: Path) -> None:
    """Give every file and directory under ``root`` its mode, and fsync them (deepest first)."""
    for directory, _, names in sorted(os.walk(root), key=lambda w: -len(Path(w[0]).parts)):
        for name in names:
            path = Path(directory) / name
            path.chmod(_FILE_MODE)
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        Path(directory).chmod(_DIR_MODE)
        _fsync_dir(Path(directory))


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside and deleted after.

    At every moment, the previous run is ``target`` or, complete, the
    ``.old-*`` folder: :func:`recover_runs` puts it back if its successor
    never arrived.  Its deletion starts by renaming it to ``.tmp-*``, so that
    an ``.old-*`` folder is never a partly deleted one.
    """
    if not target.exists():
        new.rename(target)
        return
    old = target.with_name(f".old-{target.name}-{secrets.token_hex(4)}")
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        with contextlib.suppress(OSError):
            old.rename(target)  # put the previous run back
        raise
    _fsync_dir(target.parent)
    _discard(old)


def _discard(folder: Path) -> None:
    """Delete ``folder``: first rename it to a ``.tmp-*`` name, then remove it."""
    doomed = folder.with_name(f".tmp-discard-{secrets.token_hex(4)}")
    try:
        folder.rename(doomed)
    except OSError:
        doomed = folder
    shutil.rmtree(doomed, ignore_errors=True)


def recover_runs(out_dir: Path, experiment_id: str) -> list[str]:
    """Repair what killed publishers left in ``out_dir/<experiment_id>``; say what was done.

    A run moved aside (``.old-<run_id>-*``) whose successor is missing is
    renamed back to ``<run_id>``; one whose successor is in place is deleted;
    every ``.tmp-*`` folder is deleted.  Call it only while holding the
    experiment's publish lock (no live publisher may be at work there).
    """
    experiment_dir = Path(out_dir) / _check_component(experiment_id, "experiment_id")
    if not experiment_dir.is_dir():
        return []
    done: list[str] = []
    for entry in sorted(experiment_dir.iterdir()):
        match = _ASIDE.fullmatch(entry.name)
        if match is None or not entry.is_dir():
            continue
        target = experiment_dir / match["run_id"]
        if target.exists():
            _discard(entry)
            done.append(f"removed {entry.name}, a run replaced by {target.name}")
        else:
            entry.rename(target)
            done.append(f"restored run {target.name}: the run replacing it never finished")
    for entry in sorted(experiment_dir.glob(".tmp-*")):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        done.append(f"removed {entry.name}, left by a publisher that did not finish")
    if done:
        _fsync_dir(experiment_dir)
    return done


def remove_site_leftovers(out_dir: Path) -> list[str]:
    """Remove the temporary files of killed writers of ``index.html`` and the shared assets.

    Call it only while holding the index lock (no live writer of those files).
    """
    root = Path(out_dir)
    done = []
    for pattern in (".index.html.*.tmp", f"{ASSET_DIR}/.{PLOTLY_ASSET}.*.tmp"):
        for path in sorted(root.glob(pattern)):
            path.unlink(missing_ok=True)
            done.append(f"removed {path.relative_to(root)}, left by a writer that did not finish")
    return done


def write_quarantine(run_dir: Path | str, frames: Mapping[str, pl.DataFrame]) -> dict[str, Path]:
    """Write ``<run_dir>/quarantine/<table>.parquet`` for every table, each atomically.

    ``frames`` are the quarantined rows by table, each with its ``reason``
    (``Checked.quarantined``). Every table gets a file, empty when nothing was
    quarantined, so that a reader can tell "nothing set aside" from "not written".
    """
    directory = Path(run_dir) / "quarantine"
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for table, frame in frames.items():
        target = directory / f"{table}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        os.close(fd)
        try:
            frame.write_parquet(tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written[table] = target
    return written
