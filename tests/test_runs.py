"""``proof runs list`` and ``proof runs remove``: see the published runs, remove one atomically.

Runs are published for real (``publish_files``, with the results.json of the
fixtures) into a temporary reports directory; nothing of the file system is mocked.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from analysis.report import locks
from analysis.report.runs import RunNotFoundError, find_run, list_runs, remove_run
from analysis.report.site import publish_files
from flows.runs_cli import runs_app
from tests.report_fixtures import load

LOGGER = logging.getLogger("tests.runs")
SMART = "smart-compose"
TRIAGE = "auto-triage"
#: smart-compose's runs, oldest first: (run id, analysis date, recommendation).
SMART_RUNS = [
    ("20261101T020000Z", "2026-10-31", "keep running"),
    ("20261115T020000Z", "2026-11-14", "keep running"),
    ("20261126T020000Z", "2026-11-25", "ship"),
]
runner = CliRunner()


def _publish(out: Path, name: str, run_id: str, day: str, recommendation: str) -> Path:
    results = copy.deepcopy(load(name))
    results.update(run_id=run_id, analysis_date=day, generated_at=f"{day}T02:00:00+00:00")
    results["decision"]["recommendation"] = recommendation
    # a stand-in page: the index links a run's report.html when it has one
    files = {"results.json": json.dumps(results), "report.html": f"<p>{run_id}</p>"}
    return publish_files(out, results["experiment_id"], run_id, files, {}, LOGGER)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A reports directory: smart-compose with three runs (published in a shuffled
    order), auto-triage with one."""
    out = tmp_path / "reports"
    for run_id, day, recommendation in (SMART_RUNS[1], SMART_RUNS[2], SMART_RUNS[0]):
        _publish(out, "smart_compose", run_id, day, recommendation)
    _publish(out, "auto_triage", "20261126T020000Z", "2026-11-25", "ship")
    return out


def _index(out: Path) -> str:
    return (out / "index.html").read_text(encoding="utf-8")


def _linked(out: Path, experiment_id: str, run_id: str) -> bool:
    return f'href="{experiment_id}/{run_id}/report.html"' in _index(out)


def _hidden(out: Path, experiment_id: str) -> list[str]:
    return sorted(p.name for p in (out / experiment_id).iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- list


def test_list_runs_gives_each_experiment_latest_first(site: Path) -> None:
    runs = list_runs(site)
    assert [(r.experiment_id, r.run_id) for r in runs] == [
        (TRIAGE, "20261126T020000Z"),
        *[(SMART, run_id) for run_id, _, _ in reversed(SMART_RUNS)],
    ]
    latest = runs[1]
    assert latest.analysis_date == "2026-11-25"
    assert latest.generated_at == "2026-11-25T02:00:00+00:00"
    assert latest.recommendation == "ship"
    assert latest.path == site / SMART / "20261126T020000Z"
    assert [r.run_id for r in list_runs(site, SMART)] == [r for r, _, _ in reversed(SMART_RUNS)]
    assert list_runs(site, "no-such-experiment") == []
    assert list_runs(site.parent / "missing") == []


def test_the_list_command_prints_a_table(site: Path) -> None:
    result = runner.invoke(runs_app, ["list", "--out", str(site)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["EXPERIMENT", "RUN", "ID", "ANALYSIS", "DATE", "VERDICT"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [TRIAGE, "20261126T020000Z", "2026-11-25"],
        [SMART, "20261126T020000Z", "2026-11-25"],
        [SMART, "20261115T020000Z", "2026-11-14"],
        [SMART, "20261101T020000Z", "2026-10-31"],
    ]
    assert lines[2].endswith("ship")
    assert lines[3].endswith("keep running")

    only = runner.invoke(runs_app, ["list", "-e", TRIAGE, "--out", str(site)])
    assert only.exit_code == 0
    assert [line.split()[0] for line in only.stdout.splitlines()[1:]] == [TRIAGE]


def test_the_list_command_says_when_there_is_nothing(site: Path, tmp_path: Path) -> None:
    empty = runner.invoke(runs_app, ["list", "--out", str(tmp_path / "nothing")])
    assert empty.exit_code == 0
    assert "no published runs in" in empty.stdout
    other = runner.invoke(runs_app, ["list", "-e", "nope", "--out", str(site)])
    assert other.exit_code == 0
    assert "no published runs of experiment 'nope'" in other.stdout
    assert f"experiments: {TRIAGE}, {SMART}" in other.stdout


# --------------------------------------------------------------------------- remove


def test_remove_deletes_the_run_and_its_index_entry(site: Path) -> None:
    gone, kept = SMART_RUNS[1][0], [SMART_RUNS[0][0], SMART_RUNS[2][0]]
    assert _linked(site, SMART, gone)
    assert "History (3 runs)" in _index(site)
    result = runner.invoke(
        runs_app, ["remove", "--run-id", gone, "-e", SMART, "--out", str(site), "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert f"removed run {gone} of {SMART}" in result.stdout
    assert "index rebuilt" in result.stdout
    assert not (site / SMART / gone).exists()
    assert _hidden(site, SMART) == []  # the discarded folder is deleted too
    assert not _linked(site, SMART, gone)
    for run_id in kept:
        assert (site / SMART / run_id / "results.json").is_file()
        assert _linked(site, SMART, run_id)
    assert _linked(site, TRIAGE, "20261126T020000Z")
    assert "History (2 runs)" in _index(site)
    assert [r.run_id for r in list_runs(site, SMART)] == kept[::-1]


def test_removing_the_last_run_drops_the_experiment(site: Path) -> None:
    assert "Automatic triage" in _index(site)
    result = runner.invoke(
        runs_app, ["remove", "--run-id", "20261126T020000Z", "-e", TRIAGE, "--out", str(site), "-y"]
    )
    assert result.exit_code == 0, result.output
    assert "no longer in the index" in result.stdout
    assert not (site / TRIAGE).exists()
    assert "Automatic triage" not in _index(site)
    assert TRIAGE not in _index(site)
    assert {r.experiment_id for r in list_runs(site)} == {SMART}


def test_remove_asks_first_without_yes(site: Path) -> None:
    run_id = SMART_RUNS[0][0]
    args = ["remove", "--run-id", run_id, "-e", SMART, "--out", str(site)]
    declined = runner.invoke(runs_app, args, input="n\n")
    assert declined.exit_code == 1
    assert "nothing removed" in declined.stdout
    assert (site / SMART / run_id).is_dir()
    accepted = runner.invoke(runs_app, args, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert not (site / SMART / run_id).exists()


def test_an_unknown_run_exits_2_naming_the_known_ones(site: Path) -> None:
    before = sorted(p.name for p in (site / SMART).iterdir())
    result = runner.invoke(
        runs_app, ["remove", "--run-id", "2026", "-e", SMART, "--out", str(site), "-y"]
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "Traceback" not in result.output
    assert f"no run '2026' of experiment '{SMART}'" in message
    assert ", ".join(run_id for run_id, _, _ in SMART_RUNS) in message
    assert sorted(p.name for p in (site / SMART).iterdir()) == before

    with pytest.raises(RunNotFoundError) as caught:
        remove_run(site, SMART, "2026", LOGGER)
    assert caught.value.known == [run_id for run_id, _, _ in SMART_RUNS]
    assert isinstance(caught.value, LookupError)


def test_an_unknown_experiment_exits_2_naming_the_experiments(site: Path) -> None:
    result = runner.invoke(
        runs_app, ["remove", "--run-id", "r1", "-e", "nope", "--out", str(site), "-y"]
    )
    assert result.exit_code == 2
    assert "no published experiment 'nope'" in result.stderr
    assert f"experiments: {TRIAGE}, {SMART}" in result.stderr
    missing = runner.invoke(
        runs_app, ["remove", "--run-id", "r1", "-e", SMART, "--out", "/nonexistent/x"]
    )
    assert missing.exit_code == 2
    assert not Path("/nonexistent/x").exists()


@pytest.mark.parametrize(
    ("experiment_id", "run_id"),
    [
        (SMART, "../auto-triage"),
        (SMART, "../x"),
        (SMART, ".."),
        (SMART, "."),
        (SMART, "/etc"),
        (SMART, ".locks"),
        ("..", "reports"),
        ("../reports", SMART),
        (".locks", "x"),
        ("", "x"),
    ],
)
def test_a_path_is_refused(site: Path, experiment_id: str, run_id: str) -> None:
    before = sorted(str(p.relative_to(site.parent)) for p in site.parent.rglob("*"))
    result = runner.invoke(
        runs_app, ["remove", "--run-id", run_id, "-e", experiment_id, "--out", str(site), "--yes"]
    )
    assert result.exit_code == 2
    assert "cannot be used as a directory name" in result.stderr
    assert "Traceback" not in result.output
    with pytest.raises(ValueError, match="cannot be used as a directory name"):
        remove_run(site, experiment_id, run_id, LOGGER)
    assert sorted(str(p.relative_to(site.parent)) for p in site.parent.rglob("*")) == before


def test_remove_repairs_what_a_killed_publisher_left_first(site: Path) -> None:
    experiment_dir = site / SMART
    # killed while replacing the middle run: it was moved aside, its successor never came
    middle = SMART_RUNS[1][0]
    (experiment_dir / middle).rename(experiment_dir / f".old-{middle}-0123abcd")
    # killed while writing a new run, and while deleting a replaced one
    (experiment_dir / ".tmp-20261127T020000Z-xyz").mkdir()
    (experiment_dir / ".tmp-20261127T020000Z-xyz" / "results.json").write_text("{}")
    latest = SMART_RUNS[2][0]
    (experiment_dir / f".old-{latest}-89abcdef").mkdir()
    assert middle not in [r.run_id for r in list_runs(site, SMART)]
    assert find_run(site, SMART, middle) == experiment_dir / middle  # the aside run counts

    result = runner.invoke(
        runs_app, ["remove", "--run-id", middle, "-e", SMART, "--out", str(site), "-y"]
    )
    assert result.exit_code == 0, result.output
    assert f"restored run {middle}" in result.stderr
    assert sorted(p.name for p in experiment_dir.iterdir()) == [SMART_RUNS[0][0], latest]
    assert [r.run_id for r in list_runs(site, SMART)] == [latest, SMART_RUNS[0][0]]
    assert not _linked(site, SMART, middle)


def test_remove_waits_for_a_publisher_of_the_experiment(site: Path) -> None:
    run_id = SMART_RUNS[0][0]
    held, release = threading.Event(), threading.Event()

    def publisher() -> None:
        with locks.exclusive(site, locks.publish_lock(SMART), what="a slow publisher"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=publisher)
    thread.start()
    assert held.wait(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    started = time.monotonic()
    try:
        remove_run(site, SMART, run_id, LOGGER)
    finally:
        release.set()
        thread.join(10)
        timer.cancel()
    assert time.monotonic() - started >= 0.25
    assert not (site / SMART / run_id).exists()
    assert not _linked(site, SMART, run_id)


def test_runs_is_a_command_group_of_proof(site: Path) -> None:
    proof = typer.Typer(name="proof")  # as flows/cli.py registers it: app.add_typer(runs_app)
    proof.add_typer(runs_app)
    shown = runner.invoke(proof, ["runs"])
    assert "list" in shown.output
    assert "remove" in shown.output
    listed = runner.invoke(proof, ["runs", "list", "--out", str(site)])
    assert listed.exit_code == 0
    assert SMART in listed.stdout
    removed = runner.invoke(
        proof,
        ["runs", "remove", "--run-id", SMART_RUNS[0][0], "-e", SMART, "--out", str(site), "-y"],
    )
    assert removed.exit_code == 0, removed.output
    assert not (site / SMART / SMART_RUNS[0][0]).exists()
