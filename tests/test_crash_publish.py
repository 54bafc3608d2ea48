"""Nothing blocked, nothing lost: ``kill -9`` during publishing, then a normal run.

The crash test kills 21 publishers with SIGKILL inside the publish step:

- one real ``proof run`` (replacing run ``r1`` of smart-compose), a few
  milliseconds after its temporary run folder appears: its publish lock and
  its temporary Prefect server must die with it;
- 20 publishers that run the real publishing code of the flow
  (``analysis.report.site.publish_files``) on precomputed results in a child process
  (forked from a forkserver).
  Each child stops just before its k-th change to the disk (a mkdir, rename,
  replace, unlink, rmdir, fsync, chmod, created file or lock), k drawn with a
  fixed seed over every change a publish makes, and is killed there with
  SIGKILL. Half of them replace an existing run id.

After every kill, every run that was served is still served, complete, or
waits complete under ``.old-*`` for the next run to put it back. Then one
normal ``proof run`` completes without waiting for any lock; every run it
lists in the index has its results, report and quarantine files; and no
temporary file is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate, write_parquet
from analysis.report import REPORT_PLOTLY_SRC, render_run_files
from analysis.report.publish import ensure_plotly_asset, publish_run, write_quarantine
from analysis.report.site_index import write_index
from tests.conftest import AS_OF, make_config_dir
from tests.report_fixtures import load

SEED = 20261120
KILLS = 20
EXPERIMENTS = ("smart-compose", "auto-triage", "summaries-holdout")
# The pages published before the crash: any report will do (the holdout borrows one).
FIXTURES = {
    "smart-compose": "smart_compose",
    "auto-triage": "auto_triage",
    "summaries-holdout": "smart_compose",
}
TABLES = ("assignments", "events")
SERVER_MARK = "prefect.server.api.server:create_app"
PAGES = ("report.html", "validation.html")


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _servers_of(pid: int) -> list[int]:
    """The temporary Prefect servers that process ``pid`` started."""
    return [child for child in _children(pid) if SERVER_MARK in _cmdline(child)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):  # it may end after the check
                os.kill(pid, signal.SIGKILL)


def _proof_env(prefect_home: Path) -> dict[str, str]:
    """No PREFECT_API_URL: `proof run` starts its own temporary server, as a user's does."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {"PREFECT_HOME": str(prefect_home), "PYTHONUNBUFFERED": "1"}


def _proof_run(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


# --------------------------------------------------------------------------- what is published


@dataclass(frozen=True)
class Version:
    """One publish of a run: its files, marked with ``tag`` (its quarantine: ``_quarantine``)."""

    tag: str
    files: dict[str, str]


def _version(pages: Mapping[str, Any], run_id: str, tag: str) -> Version:
    results = pages["results"] | {"run_id": run_id, "crash_test_tag": tag}
    files = {"results.json": json.dumps(results)}
    files |= {page: f"{pages[page]}\n<!-- {tag} -->\n" for page in PAGES}
    return Version(tag, files)


def _quarantine(tag: str) -> dict[str, pl.DataFrame]:
    return {t: pl.DataFrame({"tag": [tag] * 3, "table": [t] * 3}) for t in TABLES}


def _tag_of(run: Path) -> str | None:
    """The tag of a complete, consistent run folder (None: a real run's); fails otherwise."""
    results = json.loads((run / "results.json").read_text())
    tag = results.get("crash_test_tag")
    for page in PAGES:
        text = (run / page).read_text()
        if tag is not None:
            assert text.endswith(f"<!-- {tag} -->\n"), f"{run / page} is not from {tag}"
        else:
            assert len(text) > 10_000, run / page
    for table in TABLES:
        frame = pl.read_parquet(run / "quarantine" / f"{table}.parquet")
        if tag is not None:
            assert frame["tag"].to_list() == [tag] * 3, f"{run}/quarantine/{table} not {tag}"
    return tag


def _visible_runs(out: Path) -> set[tuple[str, str]]:
    return {
        (run.parent.name, run.name)
        for run in out.glob("*/*")
        if run.is_dir() and not run.name.startswith(".") and run.parent.name in EXPERIMENTS
    }


def _check_served(out: Path, allowed: dict[tuple[str, str], set[str | None]]) -> None:
    """Every run once served is served complete, or waits complete under .old-* (restored next)."""
    for (exp, rid), tags in allowed.items():
        run = out / exp / rid
        if run.is_dir():
            assert _tag_of(run) in tags, run
            continue
        aside = sorted((out / exp).glob(f".old-{rid}-*"))
        assert aside, f"{exp}/{rid} is lost: neither served nor moved aside"
        assert _tag_of(aside[0]) in tags, aside[0]


def _leftovers(out: Path) -> list[str]:
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.name.startswith((".tmp-", ".old-")) or p.name.endswith(".tmp")
    )


def _index_runs(out: Path) -> set[tuple[str, str]]:
    hrefs = re.findall(r'href="([^"/]+)/([^"/]+)/[^"/]+"', (out / "index.html").read_text())
    return set(hrefs)


# --------------------------------------------------------------------------- the forked publisher

_DISK_CHANGES: tuple[tuple[Any, str], ...] = (
    *((os, name) for name in ("mkdir", "rename", "replace", "unlink", "rmdir", "fsync")),
    *((os, name) for name in ("ftruncate", "chmod", "open")),
    (fcntl, "flock"),
)


def _stop_before_change(pause_at: int | None, report: Callable[[str], None]) -> Callable[[], int]:
    """Count every change to the disk; before the ``pause_at``-th, report and wait to be killed."""
    count = 0

    def hook(module: Any, name: str) -> None:
        real = getattr(module, name)

        def changed(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            if name == "open" and not (len(args) > 1 and args[1] & os.O_CREAT):
                return real(*args, **kwargs)
            if count == pause_at:
                report(f"paused {count} {name} {args[0]!s}")
                time.sleep(600)
            count += 1
            return real(*args, **kwargs)

        setattr(module, name, changed)

    for module, name in _DISK_CHANGES:
        hook(module, name)
    return lambda: count


def _publish(
    report: Connection,
    out: str,
    experiment: str,
    run_id: str,
    version: Version,
    pause_at: int | None,
) -> None:
    """In the child: publish ``version`` with the flow's code; stop before change ``pause_at``."""
    try:
        from analysis.report.site import publish_files

        quarantine = _quarantine(version.tag)
        changes = _stop_before_change(pause_at, report.send)
        logger = logging.getLogger("tests.crash")
        publish_files(Path(out), experiment, run_id, version.files, quarantine, logger)
        report.send(f"done {changes()}")
    except BaseException:
        report.send(f"error {traceback.format_exc()}")


# Children are forked from a fresh server process, never from pytest: polars' thread
# pool, started in this process, does not survive a fork (the child would hang).
_CHILDREN = multiprocessing.get_context("forkserver")
_CHILDREN.set_forkserver_preload([__name__, "analysis.report.site"])


def _publish_in_child(
    out: Path, experiment: str, version: Version, run_id: str, pause_at: int | None
) -> str:
    """Publish ``version`` in a child; return what it reported (it is killed -9 if it paused)."""
    reader, writer = _CHILDREN.Pipe(duplex=False)
    child = _CHILDREN.Process(
        target=_publish, args=(writer, str(out), experiment, run_id, version, pause_at)
    )
    child.start()
    writer.close()
    try:
        assert reader.poll(120), "the publishing child said nothing"
        message: str = reader.recv()
    finally:
        reader.close()
        # kill -9; the forkserver, not this process, reaps the child, so it may already be
        # gone: Process.kill ignores a pid that no longer exists, where os.kill raises.
        child.kill()
        child.join(60)
    if message.startswith("paused"):
        assert child.exitcode == -signal.SIGKILL, message
    return message.strip()


def _calibrate(out: Path, scratch: Path, experiment: str, version: Version, run_id: str) -> int:
    """How many disk changes one whole publish makes, on a copy of ``out``."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(out, scratch)
    message = _publish_in_child(scratch, experiment, version, run_id, None)
    assert message.startswith("done "), message
    shutil.rmtree(scratch)
    return int(message.split()[1])


def _kill_publisher_at(
    out: Path, experiment: str, version: Version, run_id: str, pause_at: int
) -> str:
    message = _publish_in_child(out, experiment, version, run_id, pause_at)
    assert message.startswith("paused"), message
    return message


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PREFECT_HOME of the runs: the first temporary server creates its database."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """Config dir and parquet data (3,000 units); the out dir holds runs r0 and r1 of both."""
    config_dir = make_config_dir(tmp_path, kind="parquet")
    cfg = load_config(config_dir)
    write_parquet(
        tmp_path / "data" / "files",
        simulate(list(cfg.experiments.values()), 3_000, AS_OF, seed=5),
    )
    out = tmp_path / "out"
    ensure_plotly_asset(out)
    for exp in EXPERIMENTS:
        for rid in ("r0", "r1"):
            version = _version(_pages(exp), rid, f"{exp}/{rid}/base")
            run = publish_run(out, exp, rid, version.files)
            write_quarantine(run, _quarantine(version.tag))
    write_index(out)
    return config_dir, out


_PAGE_CACHE: dict[str, dict[str, Any]] = {}


def _pages(experiment: str) -> dict[str, Any]:
    """A fixture's results and its rendered pages (rendered once per session)."""
    if experiment not in _PAGE_CACHE:
        results = load(FIXTURES[experiment])
        results["experiment_id"] = experiment
        _PAGE_CACHE[experiment] = {"results": results} | render_run_files(
            results, REPORT_PLOTLY_SRC
        )
    return _PAGE_CACHE[experiment]


# --------------------------------------------------------------------------- the tests


def test_the_temporary_prefect_server_ends_with_a_terminated_run(
    prefect_home: Path, tmp_path: Path
) -> None:
    """SIGTERM to `proof run` during its flow: its temporary Prefect server ends too.

    First in this file: its server creates the database of ``prefect_home``,
    which the crash test's runs then reuse, as a user's runs do.
    """
    config_dir = make_config_dir(tmp_path, kind="parquet")
    cfg = load_config(config_dir)
    data = simulate([cfg.experiment("smart-compose")], 3_000, AS_OF, seed=5)
    write_parquet(tmp_path / "data" / "files", data)
    env = _proof_env(prefect_home)
    run = _proof_run(
        env, tmp_path / "run.log", "-e", "smart-compose", "--config-dir", str(config_dir),
        "--out", str(tmp_path / "out"), "--as-of", AS_OF.isoformat(),
    )  # fmt: skip
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while "Beginning flow run" not in (tmp_path / "run.log").read_text():
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "the flow never started"
            time.sleep(0.1)
        servers = _servers_of(run.pid)
        assert servers, "no temporary Prefect server found under the run"
        run.send_signal(signal.SIGTERM)
        # -SIGTERM; 2 when the signal lands while Prefect creates a task run (its crash
        # handler then fails with "Task run is not set" and the run exits as failed); 1 when
        # it lands inside a polars call back into Python: Prefect's handler raises
        # TerminationSignal there, polars turns it into a panic, the flow fails with it.
        code = run.wait(timeout=120)
        log = (tmp_path / "run.log").read_text()
        assert code in (-signal.SIGTERM, 2, 1), log
        if code == 1:
            assert "TerminationSignal" in log, log
        assert _gone_within(servers, 20), f"the temporary server {servers} outlived its run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        _kill_all(servers)


def test_kill_9_during_publish_blocks_nothing_and_loses_nothing(
    setup: tuple[Path, Path], prefect_home: Path, tmp_path: Path
) -> None:
    config_dir, out = setup
    rng = random.Random(SEED)
    env = _proof_env(prefect_home)
    common = ("--config-dir", str(config_dir), "--out", str(out), "--as-of", AS_OF.isoformat())
    # (experiment, run id) of every run once served -> the versions it may be served as
    served: dict[tuple[str, str], set[str | None]] = {
        (exp, rid): {f"{exp}/{rid}/base"} for exp in EXPERIMENTS for rid in ("r0", "r1")
    }

    # 1. A real `proof run` replacing r1, killed a few ms after its temporary folder appears
    started = time.monotonic()
    victim = _proof_run(
        env, tmp_path / "killed.log", *common, "-e", EXPERIMENTS[0], "--run-id", "r1"
    )
    multiprocessing.forkserver.ensure_running()  # it imports the flow's code meanwhile
    servers: list[int] = []
    try:
        while not list(out.glob("*/.tmp-*")):
            assert victim.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() - started < 600, "the run never reached publishing"
            time.sleep(0.001)
        servers = _servers_of(victim.pid)
        time.sleep(rng.uniform(0.0, 0.02))
        assert victim.poll() is None, "the run ended before it was killed"
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=60) == -signal.SIGKILL
        to_publish = time.monotonic() - started
        assert servers, "no temporary Prefect server found under the run"
        assert _gone_within(servers, 20), (
            f"the temporary Prefect server {servers} outlived its killed run"
        )
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        _kill_all(servers)
    for lock in (out / ".locks").glob("*.lock"):  # every lock died with its holder
        with lock.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    served[(EXPERIMENTS[0], "r1")].add(None)  # the real run may have completed its rename
    _check_served(out, served)

    # 2. 20 publishers of the flow's code, killed at seeded disk changes; half replace a run id.
    # How many changes a publish makes depends on what the last kill left behind (leftovers
    # to repair or remove), so each one is counted on a copy of the output as it is now.
    moments = []
    for i in range(KILLS):
        exp = EXPERIMENTS[i % 2]
        replacing = (i // 2) % 2 == 0
        rid = rng.choice(sorted(r for e, r in served if e == exp)) if replacing else f"n{i:02d}"
        tag = f"{exp}/{rid}/kill-{i}"
        version = _version(_pages(exp), rid, tag)
        changes = _calibrate(out, tmp_path / "scratch", exp, version, rid)
        pause_at = rng.randrange(changes)
        moments.append(_kill_publisher_at(out, exp, version, rid, pause_at))
        if (exp, rid) in _visible_runs(out) or list((out / exp).glob(f".old-{rid}-*")):
            served[(exp, rid)] = served.get((exp, rid), set()) | {tag}
        assert _visible_runs(out) <= set(served), moments[-1]
        _check_served(out, served)
    kinds = {m.split()[2] for m in moments}
    assert len(kinds) >= 4, moments  # spread over the step: many kinds of change

    # 3. One normal run: no wait, every served run intact, the index complete, no leftovers
    started = time.monotonic()
    # its log is a file, not a terminal: the progress lines are asked for (PROOF_PROGRESS)
    final = _proof_run(
        env | {"PROOF_PROGRESS": "1"}, tmp_path / "final.log", *common, "--run-id", "final"
    )
    try:
        assert final.wait(timeout=max(300, 3 * to_publish)) == 0, (
            tmp_path / "final.log"
        ).read_text()
    finally:
        if final.poll() is None:
            final.kill()
            final.wait()
    took = time.monotonic() - started
    log = (tmp_path / "final.log").read_text()
    # Nothing the killed publishers left holds it up (the kernel released their locks):
    # a wait can only be for this run's other experiments publishing, and ends at once.
    waits = re.findall(r" - waiting for the lock ", log)
    got = [float(s) for s in re.findall(r" - got the lock \S+ after (\d+\.\d) s", log)]
    assert len(got) == len(waits), log
    assert all(s < 5.0 for s in got), log
    assert "still waiting" not in log, log
    assert "gave up waiting" not in log, log
    # a user's run is never silent for long: the temporary server and each long step say so
    assert "starting a temporary Prefect server" in log
    assert "PREFECT_API_URL" in log
    for step in ("checking the data", "measuring", "rendering and publishing the report"):
        assert re.search(rf": {step}[^\n]*: done in \d+\.\d s", log), step
    assert took < 2 * to_publish + 30, (took, to_publish)
    for exp in EXPERIMENTS:
        served[(exp, "final")] = {None}
    _check_served(out, served)
    assert set(served) == _visible_runs(out)
    listed = _index_runs(out)
    assert listed == _visible_runs(out)
    for exp, rid in listed:
        _tag_of(out / exp / rid)
    assert _leftovers(out) == []
