"""Shared fixtures: a Prefect test server for the session, and small demo data."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import flows  # noqa: F401  (sets Prefect's environment before Prefect is imported)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
AS_OF = dt.date(2026, 11, 20)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def make_config_dir(tmp: Path, kind: str = "duckdb") -> Path:
    """A copy of the shipped configs whose `warehouse` source lives under ``tmp``."""
    config_dir = tmp / "configs"
    shutil.copytree(CONFIGS, config_dir)
    if kind == "duckdb":
        body = "    kind: duckdb\n    path: ../data/warehouse.duckdb\n"
    else:
        body = (
            f"    kind: {kind}\n"
            f"    assignments: ../data/files/assignments.{kind}\n"
            f"    events: ../data/files/events/*.{kind}\n"
        )
    (config_dir / "sources.yaml").write_text(f"sources:\n  warehouse:\n{body}")
    return config_dir
