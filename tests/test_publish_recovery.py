"""Publishing is all or nothing, and the next publisher repairs what a killed one left.

``publish_run(..., fill=...)`` lets the caller add files (the quarantine) to the
run's temporary folder before the one rename that makes the run visible.
``recover_runs`` puts back a run that a killed publisher had moved aside and
removes the leftovers of killed publishers; ``remove_site_leftovers`` does the
same for the index and the shared assets.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analysis.report.publish import (
    publish_run,
    recover_runs,
    remove_site_leftovers,
    write_quarantine,
    write_text_atomic,
)


def _run(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "report.html").write_text(text)
    (path / "results.json").write_text("{}")


def test_fill_adds_files_before_the_run_becomes_visible(tmp_path: Path) -> None:
    seen: list[bool] = []

    def fill(folder: Path) -> None:
        seen.append((tmp_path / "exp" / "r1").exists())
        assert folder.name.startswith(".")
        write_quarantine(folder, {"events": pl.DataFrame({"reason": ["x"]})})

    run = publish_run(tmp_path, "exp", "r1", {"report.html": "v1"}, fill=fill)
    assert seen == [False]
    assert pl.read_parquet(run / "quarantine" / "events.parquet")["reason"].to_list() == ["x"]
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]


def test_a_failing_fill_keeps_the_run_it_would_replace(tmp_path: Path) -> None:
    publish_run(tmp_path, "exp", "r1", {"report.html": "good"})

    def fill(folder: Path) -> None:
        (folder / "quarantine").mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_run(tmp_path, "exp", "r1", {"report.html": "new"}, fill=fill)
    assert (tmp_path / "exp" / "r1" / "report.html").read_text() == "good"
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]


def test_replacing_a_run_leaves_no_folder_behind(tmp_path: Path) -> None:
    publish_run(tmp_path, "exp", "r1", {"report.html": "v1", "quarantine/events.parquet": b"1"})
    publish_run(tmp_path, "exp", "r1", {"report.html": "v2", "quarantine/events.parquet": b"2"})
    assert (tmp_path / "exp" / "r1" / "report.html").read_text() == "v2"
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["r1"]


def test_recover_puts_back_a_run_moved_aside_by_a_killed_publisher(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _run(exp / ".old-r1-0123abcd", "the previous run")  # killed between the two renames
    _run(exp / ".tmp-r1-xyz", "half of the new run")
    done = recover_runs(tmp_path, "exp")
    assert (exp / "r1" / "report.html").read_text() == "the previous run"
    assert sorted(p.name for p in exp.iterdir()) == ["r1"]
    assert any("r1" in line and "restored" in line for line in done)


def test_recover_removes_what_killed_publishers_left(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    _run(exp / "r1", "the new run")
    _run(exp / "run-with-dashes", "another run")
    _run(exp / ".old-r1-0123abcd", "replaced, its deletion was cut short")
    _run(exp / ".old-run-with-dashes-89abcdef", "replaced too")
    _run(exp / ".tmp-r2-abcdefgh", "a run that never finished")
    (exp / ".tmp-r2-empty").mkdir()
    done = recover_runs(tmp_path, "exp")
    assert sorted(p.name for p in exp.iterdir()) == ["r1", "run-with-dashes"]
    assert (exp / "r1" / "report.html").read_text() == "the new run"
    assert (exp / "run-with-dashes" / "report.html").read_text() == "another run"
    assert len(done) == 4
    assert recover_runs(tmp_path, "exp") == []
    assert recover_runs(tmp_path, "never-published") == []


def test_remove_site_leftovers(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "index.html", "index")
    (tmp_path / ".index.html.k2j3.tmp").write_text("half an index")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "plotly.min.js").write_text("js")
    (tmp_path / "assets" / ".plotly.min.js.ab12.tmp").write_text("half of it")
    (tmp_path / ".locks").mkdir()
    (tmp_path / ".locks" / "index.lock").write_text("")
    done = remove_site_leftovers(tmp_path)
    assert len(done) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "assets", "index.html"]
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == ["plotly.min.js"]
    assert remove_site_leftovers(tmp_path / "missing") == []
