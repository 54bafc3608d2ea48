"""``proof runs``: list the published runs of a reports directory, and remove one.

Registered on the ``proof`` app with ``app.add_typer(runs_app)``.  The work is
done by :mod:`analysis.report.runs`, under the publishers' own locks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer

runs_app = typer.Typer(
    name="runs",
    help="See the runs published in a reports directory, and remove one (and its index entry).",
    short_help="List the published runs, or remove one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

OutDir = Annotated[Path, typer.Option("--out", metavar="DIR", help="Where reports are published.")]
_MISSING = "—"


def _fail(message: str) -> NoReturn:
    """Print the one clear line on stderr and exit 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


class _EchoHandler(logging.Handler):
    """Log lines (waiting for a lock, repairs) on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(self.format(record), err=True)


def _logger() -> logging.Logger:
    logger = logging.getLogger("proof.runs")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@runs_app.command("list")
def list_(
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", "-e", metavar="ID", help="Only this experiment. Default: every one."
        ),
    ] = None,
    out: OutDir = Path("reports"),
) -> None:
    """List the published runs: every experiment, its latest run first."""
    from analysis.report.runs import list_runs

    runs = list_runs(out, experiment)
    if not runs:
        if experiment is None:
            typer.echo(f"no published runs in {out}")
        else:
            others = sorted({r.experiment_id for r in list_runs(out)})
            typer.echo(
                f"no published runs of experiment {experiment!r} in {out} "
                f"(experiments: {', '.join(others) or 'none'})"
            )
        return
    header = ("EXPERIMENT", "RUN ID", "ANALYSIS DATE", "VERDICT")
    rows = [
        (r.experiment_id, r.run_id, r.analysis_date or _MISSING, r.recommendation or _MISSING)
        for r in runs
    ]
    typer.echo(_table([header, *rows]))


@runs_app.command("remove", short_help="Remove one published run and its index entry.")
def remove(
    run_id: Annotated[
        str,
        typer.Option("--run-id", metavar="ID", help="The run to remove (its folder name)."),
    ],
    experiment: Annotated[
        str,
        typer.Option("--experiment", "-e", metavar="ID", help="The experiment the run belongs to."),
    ],
    out: OutDir = Path("reports"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove one published run (its folder and its index entry), atomically.

    The run disappears at once (one rename), then the index is rebuilt. Removing
    an experiment's last run drops the experiment from the index. Takes the same
    locks as a publishing run: it waits for one publishing that experiment.
    Exit code 2 for an unknown run or a bad id.
    """
    from analysis.report.runs import RunNotFoundError, find_run, list_runs, remove_run

    try:
        path = find_run(out, experiment, run_id)
    except (RunNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if not yes and not typer.confirm(
        f"Remove run {run_id} of {experiment} ({path})? This cannot be undone", default=False
    ):
        typer.echo("nothing removed")
        raise typer.Exit(code=1)
    try:
        removed = remove_run(out, experiment, run_id, _logger())
    except (RunNotFoundError, ValueError, TimeoutError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"removed run {run_id} of {experiment} ({removed})")
    if not list_runs(out, experiment):
        typer.echo(f"{experiment} has no published run left: it is no longer in the index")
    typer.echo(f"index rebuilt: {(out / 'index.html').resolve()}")
