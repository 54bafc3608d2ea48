"""Shared fixtures: a Prefect test server for the session, and small demo data.

The suite runs on two pytest-xdist workers (``--numprocesses=2 --dist=loadgroup``
in pyproject.toml); ``-n 0`` or ``-p no:xdist`` runs it in this process, as do
``--pdb`` and ``--trace``. Each worker has its own session (its own Prefect test
server, its own ``tmp_path`` root); PostgreSQL schemas get unique names
(tests/pg_factories.py), ports are picked free. The hooks below keep the tests
that share a module-scoped fixture on one worker, so that fixture is set up once,
and give a test marked ``alone`` (it times real work) both cores to itself.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import flows  # noqa: F401  (sets Prefect's environment before Prefect is imported)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
AS_OF = dt.date(2026, 11, 20)


# --------------------------------------------------------------------------- pytest-xdist


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """With ``-p no:xdist`` addopts' ``--numprocesses``/``--dist`` are accepted and mean nothing."""
    if pluginmanager.has_plugin("xdist"):
        return
    ignored = "ignored: pytest-xdist is disabled, the tests run in this process"
    group = parser.getgroup("xdist (disabled)")
    group.addoption("--numprocesses", dest="numprocesses", default=None, help=ignored)
    group.addoption("--dist", dest="dist", default="no", help=ignored)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``--pdb`` and ``--trace`` need the tests in this process: run them as ``-n 0`` does.

    Runs before pytest-xdist's own hook, which refuses ``--pdb`` with workers.
    """
    if config.pluginmanager.has_plugin("xdist") and (
        config.getoption("usepdb", False) or config.getoption("trace", False)
    ):
        config.option.numprocesses = 0
        config.option.dist = "no"


# `--dist=loadgroup` is scheduled here, not by pytest-xdist: xdist 3.8 groups tests by
# appending "@group" to their node ids, which pytest 9.2's structured node ids ignore
# (pytest-dev/pytest-xdist#1386), so every test would be scheduled on its own. Instead each
# worker writes, once it has collected, the scheduling unit ("scope") of every test to a
# directory the controller made, and the controller's scheduler reads it:
#
# - the tests of a module that share one of its module- (or class-) scoped fixtures are
#   one unit, so the fixture (a simulated warehouse, `proof run`s, a Prefect server, a
#   browser) is set up once, and tests relying on their order within the module keep it;
# - tests with the same ``xdist_group`` mark are one unit, as in pytest-xdist;
# - every other test is a unit of its own.
#
# Units are handed out in collection order, which the workers sort: first the units that
# start `proof` or a server in a subprocess (minutes), then the rest (seconds), shared
# fixtures before single tests in each, so that no worker is left with a long test at the
# end while the other one idles; the tests marked `alone` come last (see _turn).

_RUN_DIR = pytest.StashKey[Path]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Controller: the directory the workers share for this run."""
    config = node.config
    if _RUN_DIR not in config.stash:
        config.stash[_RUN_DIR] = Path(tempfile.mkdtemp(prefix="proof-xdist-"))
    node.workerinput["proof_run_dir"] = str(config.stash[_RUN_DIR])


def pytest_configure(config: pytest.Config) -> None:
    shared = getattr(config, "workerinput", {}).get("proof_run_dir")
    if shared is not None:  # a worker
        config.stash[_RUN_DIR] = Path(shared)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RUN_DIR in config.stash and not hasattr(config, "workerinput"):
        shutil.rmtree(config.stash[_RUN_DIR], ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Controller: loadgroup with the scopes the workers wrote (see above)."""
    if config.getvalue("dist") != "loadgroup" or _RUN_DIR not in config.stash:
        return None
    from xdist.scheduler import LoadScopeScheduling

    directory = config.stash[_RUN_DIR]

    class Scheduling(LoadScopeScheduling):
        scopes: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            # first called once every worker has collected (and so written its scopes)
            if self.scopes is None:
                written = sorted(directory.glob("scopes-*.json"))
                self.scopes = json.loads(written[0].read_text()) if written else {}
            return self.scopes.get(nodeid, nodeid)

    config.option.loadscopereorder = False  # the workers' order: slow units first
    return Scheduling(config, log)


def _scope(item: pytest.Item) -> str:
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                     for m in item.iter_markers("xdist_group")})  # fmt: skip
    if groups:
        return "group:" + "_".join(groups)
    info = getattr(item, "_fixtureinfo", None)
    shared = info is not None and any(
        defs and defs[-1].scope in ("package", "module", "class")
        for defs in info.name2fixturedefs.values()
    )
    return item.nodeid.split("::", 1)[0] if shared else item.nodeid


def _starts_a_subprocess(item: pytest.Item) -> bool:
    """Runs `proof` against the test server, or its module starts processes of its own."""
    module = getattr(item, "module", None)
    return "prefect_server" in getattr(item, "fixturenames", ()) or hasattr(module, "subprocess")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Worker: sort the collection (slow units first, `alone` last); write every test's scope."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None or _RUN_DIR not in config.stash:
        return
    scopes = {item.nodeid: _scope(item) for item in items}
    slow = {scopes[item.nodeid] for item in items if _starts_a_subprocess(item)}
    alone = {scopes[item.nodeid] for item in items if item.get_closest_marker("alone")}

    def rank(item: pytest.Item) -> int:  # shared fixtures before single tests
        scope = scopes[item.nodeid]
        return (scope in alone) * 4 + (scope not in slow) * 2 + (scope == item.nodeid)

    items.sort(key=rank)
    target = config.stash[_RUN_DIR] / f"scopes-{worker}.json"
    target.with_suffix(".tmp").write_text(json.dumps(scopes))
    target.with_suffix(".tmp").replace(target)


@contextmanager
def _turn(directory: Path, alone: bool) -> Iterator[None]:
    """A test marked `alone` runs while the other worker runs none; the others share.

    Such a test bounds the wall-clock time of real work ("fails within 30 s"), which a
    test running on the other core would stretch. A readers-writer lock over two files:
    the gate stops the other worker from starting a test while an `alone` one waits,
    so the wait ends with the test in progress.
    """
    with (directory / "gate.lock").open("a") as gate, (directory / "run.lock").open("a") as run:
        if alone:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(run, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(run, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Worker: setup, call and teardown of every test under its turn (see _turn)."""
    if _RUN_DIR not in item.config.stash:
        return (yield)
    with _turn(item.config.stash[_RUN_DIR], item.get_closest_marker("alone") is not None):
        return (yield)


# --------------------------------------------------------------------------- fixtures


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
