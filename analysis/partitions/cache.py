"""The cached validation results of a partition: its key, and files that must prove themselves.

The key hashes the partition's fingerprint, the suite file, the expectations
as the partition sees them and the GX and polars versions. A cached file is
trusted only if it names itself and its content matches the SHA-256 written
into it; anything else is logged as a warning naming the file, and read as
absent. Files are written atomically.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from analysis.partitions.batches import BatchOutcome
from analysis.partitions.days import Partition
from analysis.suites.load import Expectation, Suite

log = logging.getLogger(__name__)

#: Bump when the cached JSON or the meaning of its numbers changes (2: its name and sha256).
CACHE_FORMAT = 2


@functools.cache
def _versions() -> dict[str, str]:
    return {
        "cache_format": str(CACHE_FORMAT),
        "great_expectations": importlib.metadata.version("great-expectations"),
        "polars": pl.__version__,
    }


def cache_key(suite: Suite, partition: Partition, expectations: Sequence[Expectation]) -> str:
    material = {
        "versions": _versions(),
        "suite": suite.digest,
        "partition": partition.label,
        "fingerprint": partition.fingerprint,
        "expectations": [e.gx_config() for e in expectations],
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def cache_path(cache_dir: Path, partition: Partition, key: str) -> Path:
    return cache_dir / f"{partition.label}-{key}.json"


def _content_sha256(body: Mapping[str, Any]) -> str:
    """SHA-256 of ``body`` without its ``sha256``, in one canonical JSON form."""
    rest = json.loads(json.dumps({k: v for k, v in body.items() if k != "sha256"}))
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_cache(path: Path) -> list[BatchOutcome] | None:
    """The outcomes cached at ``path``; None if absent, or (with a warning) not to be trusted."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object but {type(data).__name__}")
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"cache format {data.get('format')!r}, not {CACHE_FORMAT}")
        if data.get("file") != path.name:
            raise ValueError(f"it is a copy of {data.get('file')!r}")
        if data.get("sha256") != _content_sha256(data):
            raise ValueError("changed since it was written: its sha256 differs")
        return [BatchOutcome.from_json(o) for o in data["outcomes"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring validation cache file %s (%s): validating it again", path, exc)
        return None


def write_cache(path: Path, partition: Partition, outcomes: Sequence[BatchOutcome]) -> None:
    """``outcomes`` at ``path``, atomically: a temporary file, then renamed.

    Not synced to disk (181 syncs took 0.6 s of a cold run over 1M events):
    :func:`read_cache` checks every file's name and SHA-256, so a result a
    crash lost or tore is validated again, never trusted. Not indented either:
    with an indent ``json`` encodes in Python, not C (4 ms against 17 ms for the
    125 results of a 1M run: small, and nobody reads these files by eye).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    body: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "file": path.name,
        "partition": partition.label,
        "rows": partition.rows,
        "fingerprint": partition.fingerprint,
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "outcomes": [o.to_json() for o in outcomes],
    }
    body["sha256"] = _content_sha256(body)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(body))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale(written: Sequence[Path]) -> None:
    """Delete the older files of the partitions just ``written``: they will not be asked for again.

    One listing per folder: a glob per partition read the folder once per file written.
    """
    for folder in {path.parent for path in written}:
        kept = {path.name for path in written if path.parent == folder}
        labels = {_label_of(name) for name in kept}
        for stale in folder.glob("*.json"):
            if stale.name not in kept and _label_of(stale.name) in labels:
                stale.unlink(missing_ok=True)


def _label_of(name: str) -> str:
    """``<label>-<key>.json`` → ``<label>`` (a key has no ``-``; a label may)."""
    return name.rsplit("-", 1)[0]
