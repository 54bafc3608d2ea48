"""The ``proof`` help screens read well: no Python types, choices listed, paragraphs refilled."""

from __future__ import annotations

import inspect
import itertools
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
# What Typer prints for an option with no metavar: a type named after the annotation.
LEAKED_TYPES = ("<bool>", "<str>", "<list[", "<path>", "<int", "<float", "<datetime", "<%")


def _command_paths(group: typer.core.TyperGroup, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every command (and sub-app command) as its words after ``proof``, e.g. ``"run"``."""
    paths = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        paths.append(" ".join(path))
        if isinstance(command, typer.core.TyperGroup):
            paths.extend(_command_paths(command, path))
    return paths


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, typer.core.TyperGroup)
COMMANDS = _command_paths(ROOT)
TOP_LEVEL = sorted(ROOT.commands)


def _invoke(*args: str) -> typer.testing.Result:
    return CliRunner(env={"COLUMNS": "100"}).invoke(app, list(args))


def _help(command: str) -> str:
    result = _invoke(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    return result.output


def _description(help_text: str) -> list[list[str]]:
    """The lines of each paragraph between the usage line and the options."""
    body = help_text.split("\nOptions:", 1)[0].splitlines()[1:]
    paragraphs: list[list[str]] = [[]]
    for line in body:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def test_every_command_is_covered() -> None:
    assert {"simulate", "run", "validate", "demo", "serve", "deploy", "server"} <= set(TOP_LEVEL)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_python_types(command: str) -> None:
    text = _help(command)
    leaked = [t for t in LEAKED_TYPES if t in text]
    assert not leaked, f"`proof {command} --help` shows {leaked}:\n{text}"
    # A flag takes no value: it is listed alone, its help two spaces or more later.
    for line in text.splitlines():
        if re.match(r"\s+--(help|version|debug|no-cache|aa|revalidate)\b", line):
            assert re.match(r"\s+--[\w-]+( / --[\w-]+)?\s{2,}\S", line), line


def test_value_options_name_their_value() -> None:
    run = _help("run")
    for shown in ("--experiment ID", "--as-of YYYY-MM-DD", "--config-dir DIR", "--out DIR"):
        assert shown in run, run
    simulate = _help("simulate")
    for shown in ("--experiment ID", "--units N", "--seed N", "--out PATH"):
        assert shown in simulate, simulate


def test_format_lists_its_choices() -> None:
    text = _help("simulate")
    assert re.search(r"--format \[duckdb\|parquet\]", text), text


def test_format_refuses_another_choice() -> None:
    result = _invoke("simulate", "--format", "csv")
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--format'" in result.output
    assert "'csv' is not one of 'duckdb', 'parquet'" in result.output
    assert "Traceback" not in result.output


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.output == f"proof {version('proof')}\n"
    assert re.fullmatch(r"proof \d+\.\d+\S*\n", result.output)


def test_top_level_help_offers_version_and_whole_summaries() -> None:
    text = _help("")
    assert "--version" in text
    commands = text.split("\nCommands:\n", 1)[1]
    for name in TOP_LEVEL:
        assert re.search(rf"^  {name}\s", commands, re.MULTILINE), commands
    # Each summary is whole: Click cuts a long docstring's first line with "...".
    assert "..." not in commands, commands


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_names_every_command(command: str) -> None:
    assert f"proof {command}" in README.read_text(encoding="utf-8")


def test_readme_names_version() -> None:
    assert "proof --version" in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("command", TOP_LEVEL)
def test_docstring_paragraphs_render_whole(command: str) -> None:
    """Each paragraph of the docstring is one paragraph of the help, refilled to its width.

    A paragraph whose hard line breaks survive into the help wraps mid-sentence: a long
    line wraps, and the next one starts a short fragment ("after", "the") on its own.
    """
    text = _help(command)
    docstring = inspect.cleandoc(ROOT.commands[command].help or "")
    expected = [" ".join(p.split()) for p in docstring.split("\n\n")]
    rendered = _description(text)
    assert [" ".join(" ".join(lines).split()) for lines in rendered] == expected, text
    width = max(len(line) for line in text.splitlines())
    for lines in rendered:
        for line, following in itertools.pairwise(lines):
            next_word = following.split()[0]
            # Greedy filling breaks a line only where the next word would not fit.
            assert len(line) + 1 + len(next_word) > width, f"{line!r} / {following!r}\n{text}"


def _whole(name: str, text: str) -> bool:
    """Whether ``name`` is in ``text`` as a whole name, not part of a longer one."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def test_serve_help_names_the_deployments_the_ui_lists() -> None:
    """The Prefect UI lists deployments by their own names, not by their flows' names."""
    from flows.analyze import analyze_experiment, nightly
    from flows.names import deployment_name  # what build_deployments names them
    from flows.watch import watch_sources

    flows = (nightly, analyze_experiment, watch_sources)
    deployments = [deployment_name(flow.name) for flow in flows]
    assert deployments == [
        "nightly-all-experiments",
        "analyze-one-experiment",
        "watch-for-new-data",
    ]
    text = _help("serve")
    description = " ".join(" ".join(" ".join(p) for p in _description(text)).split())
    for deployment, flow in zip(deployments, flows, strict=True):
        assert _whole(deployment, description), text
        assert not _whole(flow.name, description), text  # a flow's name is not a deployment's
    assert f"--name staging gives nightly/{deployments[0]}-staging" in " ".join(text.split())
