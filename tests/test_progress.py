"""Progress lines of the long steps: at a terminal, not in a pipe or a log (issue 16, item 15)."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis.progress import CHECKING, MEASURING, PROGRESS_ENV, show_progress, step
from flows.analyze import PROGRESS_RECORD, ConsoleProgress
from flows.cli import app

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-20"


class Console(io.StringIO):
    """A captured stream that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        if self.closed:  # as every io stream does
            raise ValueError("I/O operation on closed file")
        return self.tty


@pytest.fixture(autouse=True)
def _not_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)


def test_progress_shows_on_a_terminal_only() -> None:
    assert show_progress(Console(tty=True)) is True
    assert show_progress(Console(tty=False)) is False
    assert show_progress(None) is False
    closed = Console(tty=True)
    closed.close()
    assert show_progress(closed) is False


@pytest.mark.parametrize(
    ("value", "tty", "shown"),
    [("1", False, True), ("yes", False, True), ("0", True, False), ("off", True, False)],
)
def test_proof_progress_forces_the_choice(
    monkeypatch: pytest.MonkeyPatch, value: str, tty: bool, shown: bool
) -> None:
    monkeypatch.setenv(PROGRESS_ENV, value)
    assert show_progress(Console(tty)) is shown


def test_a_step_says_its_start_and_its_duration() -> None:
    said: list[str] = []
    with step("smart-compose: measuring", said.append):
        said.append("work")
    assert said[:2] == ["smart-compose: measuring…", "work"]
    assert said[2].startswith("smart-compose: measuring: done in ")
    assert said[2].endswith(" s")


def _console_lines(tty: bool) -> list[str]:
    """What a console handler filtered by ConsoleProgress prints of a progress line and another."""
    stream = Console(tty)
    handler = logging.StreamHandler(stream)
    handler.addFilter(ConsoleProgress(handler))
    logger = logging.getLogger("tests.progress.console")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        logger.info("smart-compose: measuring…", extra={PROGRESS_RECORD: True})
        logger.info("smart-compose: computed by the polars engine")
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_the_console_shows_the_flows_progress_lines_at_a_terminal_only() -> None:
    assert _console_lines(tty=True) == [
        "smart-compose: measuring…",
        "smart-compose: computed by the polars engine",
    ]
    assert _console_lines(tty=False) == ["smart-compose: computed by the polars engine"]


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    shutil.copytree(ROOT / "configs", root / "configs")
    data = root / "w.duckdb"
    args = ["simulate", "--units", "300", "--as-of", AS_OF, "--out", str(data),
            "-e", "smart-compose", "--config-dir", str(root / "configs")]  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 0
    (root / "configs" / "sources.yaml").write_text(
        f"sources:\n  warehouse:\n    kind: duckdb\n    path: {data}\n"
    )
    return root / "configs"


def _validate(config_dir: Path, out: Path, progress: str | None) -> tuple[int, str, str]:
    args = ["validate", "-e", "smart-compose", "--as-of", AS_OF,
            "--config-dir", str(config_dir), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args, env={PROGRESS_ENV: progress})
    return result.exit_code, result.stdout, result.stderr


def test_validate_shows_progress_when_asked(config_dir: Path, tmp_path: Path) -> None:
    code, stdout, stderr = _validate(config_dir, tmp_path / "out", progress="1")
    assert code == 0, stdout + stderr
    for what in (CHECKING, MEASURING):
        assert f"smart-compose: {what}…\n" in stderr
        assert f"smart-compose: {what}: done in " in stderr
    assert "done in" not in stdout  # the summary alone on stdout, for a pipe


def test_validate_is_quiet_when_not_at_a_terminal(config_dir: Path, tmp_path: Path) -> None:
    code, stdout, stderr = _validate(config_dir, tmp_path / "out", progress=None)
    assert code == 0, stdout + stderr
    assert CHECKING not in stdout + stderr
    assert "done in" not in stdout + stderr
    assert "smart-compose as of 2026-11-20" in stdout  # the summary is still printed
