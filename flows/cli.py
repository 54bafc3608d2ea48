"""The ``proof`` command line: simulate data, run analyses, run the demo."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar, get_args

import typer

from analysis.config.run import yesterday
from analysis.report.links import REPORTS_URL_ENV
from flows.names import DEPLOYMENT_NAMES, NIGHTLY, deployment_name
from flows.runs_cli import runs_app

# GX imports pyspark where the spark extra is installed, and pyspark warns that it does not
# yet support pandas 3: Proof hands Spark no pandas frame, so the warning says nothing to a user.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)

app = typer.Typer(
    name="proof",
    help="Proof: does the AI version of a feature actually help people? "
    "Reads experiment assignments and usage events, validates them, compares AI and "
    "non-AI arms on task completion, effort and trust, and publishes HTML reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, not Rich panels: Typer's panels print a type for every option, flags
    # included (``--no-cache <bool>``, ``--help <bool>``), and keep a docstring's hard
    # line breaks. The plain formatter names only what takes a value (the metavars
    # below) and refills each paragraph to the terminal's width.
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"proof {version('proof')}")
        except PackageNotFoundError:  # a source tree that was never installed
            typer.echo("proof (version unknown: the package is not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the installed version of proof and exit.",
        ),
    ] = False,
) -> None:
    # No docstring: the app's help above is the one ``proof --help`` shows.
    pass


SimulateFormat = Literal["duckdb", "parquet"]

ConfigDir = Annotated[
    Path,
    typer.Option(
        "--config-dir",
        metavar="DIR",
        help="Config dir holding metrics.yaml, sources.yaml and experiments/*.yaml. "
        "Relative paths inside it resolve against it.",
    ),
]
OutDir = Annotated[Path, typer.Option("--out", metavar="DIR", help="Where reports are published.")]
AsOf = Annotated[
    dt.datetime | None,
    typer.Option(
        "--as-of",
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="Analysis date (UTC, YYYY-MM-DD): events up to its end count. Default: yesterday.",
    ),
]


DeploymentName = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        help="Suffix of the deployment names, to serve a second config dir against the "
        f"same server: --name staging gives {NIGHTLY}/{deployment_name(NIGHTLY, 'staging')}, "
        f"… Default: none ({NIGHTLY}/{deployment_name(NIGHTLY)}).",
    ),
]
_Command = TypeVar("_Command", bound=Callable[..., Any])


def _naming_deployments(command: _Command) -> _Command:
    """``{deployments}`` in the command's docstring (its help): the names of the
    deployments, as the Prefect UI lists them (:mod:`flows.names`)."""
    names = ", ".join(DEPLOYMENT_NAMES.values())
    command.__doc__ = (command.__doc__ or "").replace("{deployments}", names)
    return command


Debug = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Show the full traceback of an expected stop (a bad config, an unreadable "
        "source, a failed critical validation), not only its message. Unexpected errors "
        "always show theirs.",
    ),
]


def _fail(message: str, exc: BaseException | None = None, *, debug: bool = False) -> None:
    """Print the one clear line (after ``exc``'s traceback with ``--debug``) and exit 2."""
    if debug and exc is not None:
        traceback.print_exception(exc, file=sys.stderr)
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


class QuietExpectedFailures(logging.Filter):
    """Keeps the tracebacks of expected stops off the console.

    Prefect logs a failing task or flow run with its traceback ("Task run failed
    with exception", "Encountered exception during execution"). On the console
    handler, this filter drops those records when the exception is one of
    ``expected``: the console keeps each run's final state ("Finished in state
    Failed(...)") and the CLI prints the one clear line. The records still reach
    Prefect's API handler, so the run's log in the UI keeps the traceback. Any
    other exception, a bug, keeps its traceback on the console.
    """

    RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")

    def __init__(self, expected: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.expected = expected

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or not record.name.startswith(self.RUN_LOGGERS):
            return True
        return not isinstance(record.exc_info[1], self.expected)


def _progress_printer() -> Callable[[str], None]:
    """Print progress lines to stderr when it is a terminal (PROOF_PROGRESS forces it)."""
    from analysis.progress import show_progress

    if show_progress(sys.stderr):
        return lambda line: typer.echo(line, err=True)
    return lambda line: None


def _end_temporary_server_with_run() -> None:
    """Without PREFECT_API_URL, Prefect starts a temporary server: make it end with this run."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        from flows import end_temporary_server_with_process

        end_temporary_server_with_process()
        typer.echo(
            "starting a temporary Prefect server for this run (several seconds); to reuse one, "
            "run `make ui` and set PREFECT_API_URL=http://127.0.0.1:4200/api",
            err=True,
        )


def _quiet_expected_failures(debug: bool) -> None:
    """Unless ``debug``, filter Prefect's console handlers with QuietExpectedFailures."""
    if debug:
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows.analyze import EXPECTED_FAILURES

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, QuietExpectedFailures) for f in handler.filters
        ):
            handler.addFilter(QuietExpectedFailures(EXPECTED_FAILURES))


@app.command()
def simulate(
    config_dir: ConfigDir = Path("configs"),
    units: Annotated[
        int, typer.Option(min=10, metavar="N", help="Units (users) per experiment.")
    ] = 100_000,
    as_of: AsOf = None,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Random seed; the same seed gives the same data.")
    ] = 7,
    experiment: Annotated[
        list[str] | None,
        typer.Option(
            "--experiment",
            "-e",
            metavar="ID",
            help="Only this experiment (repeatable). Default: all.",
        ),
    ] = None,
    aa: Annotated[
        bool, typer.Option("--aa", help="A/A data: every arm behaves alike (no true effect).")
    ] = False,
    clean: Annotated[
        list[str] | None,
        typer.Option(
            "--clean",
            metavar="ID",
            help="Simulate this experiment without the injected defects (duplicate events, "
            "crossovers), so that it passes every check (repeatable).",
        ),
    ] = None,
    fmt: Annotated[
        SimulateFormat,
        typer.Option(
            "--format",
            metavar=f"[{'|'.join(get_args(SimulateFormat))}]",
            help="duckdb: a DuckDB file; parquet: a folder of parquet files.",
        ),
    ] = "duckdb",
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Target DuckDB file or parquet folder. Default: the path of the 'warehouse' "
            "(duckdb) or 'files' (parquet) source of the config.",
        ),
    ] = None,
) -> None:
    """Generate realistic experiment data with known true effects."""
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config
    from analysis.devtools.simulate import simulate as run_simulation
    from analysis.devtools.simulate.writers import default_target, write_duckdb, write_parquet

    if fmt not in ("duckdb", "parquet"):
        _fail(f"--format must be duckdb or parquet, not {fmt!r}")
    try:
        config = load_config(config_dir)
        experiments = (
            [config.experiment(e) for e in experiment]
            if experiment
            else list(config.experiments.values())
        )
        for name in clean or ():
            config.experiment(name)  # an unknown id is an error, not a silent no-op
    except ConfigError as exc:
        _fail(str(exc))
        return
    target = out or default_target(config.sources, fmt)
    if target is None:
        _fail("no default target in the config: pass --out")
        return
    day = as_of.date() if as_of else yesterday()
    started = time.perf_counter()
    typer.echo(
        f"simulating {units:,} units for each of {len(experiments)} experiment(s) as of {day}…"
    )
    data = run_simulation(experiments, units, day, seed, aa=aa, clean=set(clean or ()))
    ids = [e.id for e in experiments]  # also clears requested experiments not started by as_of
    try:
        if fmt == "duckdb":
            summary = write_duckdb(target, data, experiments=ids)
        else:
            summary = write_parquet(target, data, experiments=ids)
    except ValueError as exc:  # a shared unit, foreign files, or an existing table of another shape
        _fail(str(exc))
        return
    typer.echo(
        f"wrote {data.assignments.height:,} assignments and {data.events.height:,} events "
        f"to {target} in {time.perf_counter() - started:.1f} s"
    )
    typer.echo(summary.message)


@app.command(short_help="Analyse one experiment, or all running ones; publish reports.")
def run(
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", "-e", metavar="ID", help="Experiment id. Default: every running one."
        ),
    ] = None,
    as_of: AsOf = None,
    config_dir: ConfigDir = Path("configs"),
    out: OutDir = Path("reports"),
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", metavar="ID", help="Name of the run's folder. Default: the UTC time."
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Ignore stored partial aggregates and validation results (OUT/.cache): "
            "recompute everything from the source, and store the results afresh.",
        ),
    ] = False,
    debug: Debug = False,
) -> None:
    """Analyse one experiment (or all running ones) and publish the reports.

    A run reuses what earlier runs stored under OUT/.cache: the validation of
    unchanged day partitions and the per-unit partial aggregates of unchanged
    (day, cohort) partitions, so a night with one new day pays for that day.

    An expected stop (a bad config, an unreadable source, a failed critical
    validation) prints its message alone, exit code 2; --debug adds the traceback.
    """
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config
    from analysis.config.run import check_as_of, validate_run_id

    try:
        if run_id is not None:  # before anything is read: a bad one would fail at publish
            validate_run_id(run_id, "--run-id")
        config = load_config(config_dir)
        start = config.experiment(experiment).start if experiment is not None else None
        if as_of is not None:  # before Prefect starts: a run of a day with no data is refused
            check_as_of(as_of.date(), start)
    except ConfigError as exc:
        _fail(str(exc), exc, debug=debug)
    from flows.analyze import analyze_experiment, nightly

    _quiet_expected_failures(debug)
    _end_temporary_server_with_run()
    day = as_of.date() if as_of else None
    if experiment is not None:
        try:
            summary = analyze_experiment(
                experiment, day, run_id, str(config_dir), str(out), no_cache=no_cache
            )
        except Exception as exc:
            _fail(f"{experiment}: {exc}")
            return
        typer.echo(f"{summary['experiment_id']}: {summary['decision']} — {summary['report']}")
    else:
        summaries = nightly(day, str(config_dir), str(out), run_id, no_cache=no_cache)
        _print_summaries(summaries)
        if any("error" in s for s in summaries):
            raise typer.Exit(code=1)
    typer.echo(f"index: {(out / 'index.html').resolve()}")


@app.command(short_help="Validate an experiment's data alone; print a summary.")
def validate(
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", metavar="ID", help="Experiment id.")
    ],
    as_of: AsOf = None,
    config_dir: ConfigDir = Path("configs"),
    out: OutDir = Path("reports"),
    revalidate: Annotated[
        bool,
        typer.Option(help="Validate every day partition again, ignoring cached results."),
    ] = False,
    quarantine: Annotated[
        Path | None,
        typer.Option(
            "--quarantine",
            metavar="DIR",
            help="Write the quarantined rows, each with its reason, to "
            "DIR/quarantine/<table>.parquet.",
        ),
    ] = None,
) -> None:
    """Validate an experiment's data alone and print a readable summary.

    Runs what a run checks, and nothing it publishes: the quarantine split,
    every expectation of the input tables (cached per day partition under
    OUT/.cache/validation; inside the database when the source's engine checks
    there, see docs/configuration.md), then the checks of the per-unit metric
    table, so the counts are the report's. Exit code 2 when a critical
    expectation failed.
    """
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config
    from analysis.config.run import check_as_of
    from analysis.engines import RunOptions, engine_for
    from analysis.progress import CHECKING, MEASURING, step
    from analysis.report.publish import write_quarantine
    from analysis.sources.errors import SourceError
    from analysis.validation_report import CriticalValidationError, format_summary

    asked = as_of.date() if as_of else yesterday()
    written: str | None = None
    say = _progress_printer()
    try:
        config = load_config(config_dir)
        exp = config.experiment(experiment)
        day = exp.data_through(check_as_of(asked, exp.start))
        for warning in config.warnings_of(exp):
            typer.echo(f"warning: {warning}", err=True)
        options = RunOptions(out_dir=out, revalidate=revalidate)
        engine = engine_for(exp.source, config.sources[exp.source], options)
        with step(f"{exp.id}: {CHECKING}", say):
            checked = engine.check(exp, day)
        report = checked.report
        if quarantine is not None:
            write_quarantine(quarantine, checked.quarantined)
            written = str(quarantine / "quarantine")
        with step(f"{exp.id}: {MEASURING}", say):
            units = engine.measure(checked, exp, config.metrics_of(exp), day).unit_validation
        summary = (report.merge(units) if units is not None else report).summary()
    except CriticalValidationError as exc:
        summary = dict(exc.summary)
    except (ConfigError, SourceError) as exc:
        _fail(str(exc))
        return
    typer.echo(format_summary(summary, f"{exp.id} as of {day}", quarantine_dir=written))
    if not summary["success"]:
        raise typer.Exit(code=2)


@app.command(short_help="Check a config against the data it names, before a run.")
def check(
    experiment: Annotated[
        list[str] | None,
        typer.Option("--experiment", "-e", metavar="ID", help="Only this experiment (repeatable)."),
    ] = None,
    as_of: AsOf = None,
    config_dir: ConfigDir = Path("configs"),
) -> None:
    """Check the config, then each experiment's data: what a run would miss.

    Reads each experiment's tables (columns, arms, event names; no statistic) and
    says what will not work: a segment column the assignments table lacks, an arm
    with no unit, a metric whose events never occur, a guardrail that can only be
    described. Exit code 2 when a run would stop (a bad config, an unreadable
    source, an experiment with no assignment); warnings do not change it.
    """
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config
    from analysis.config.run import check_as_of
    from analysis.sources.check import check_against_data
    from analysis.sources.errors import SourceError

    try:
        config = load_config(config_dir)
        chosen = [config.experiment(e) for e in experiment or sorted(config.experiments)]
    except ConfigError as exc:
        _fail(str(exc))
        return
    typer.echo(f"config {config_dir}: {len(config.experiments)} experiment(s), valid")
    failed = False
    for exp in chosen:
        try:
            day = exp.data_through(check_as_of(as_of.date() if as_of else yesterday(), exp.start))
            findings = check_against_data(
                exp.source, config.sources[exp.source], exp, config.metrics_of(exp), day
            )
        except (ConfigError, SourceError) as exc:
            typer.secho(f"{exp.id}: error: {exc}", fg=typer.colors.RED, err=True)
            failed = True
            continue
        typer.echo(f"{exp.id} (source {exp.source}, as of {day}):")
        for warning in config.warnings_of(exp):
            typer.echo(f"  warning: {warning.removeprefix(exp.id + ': ')}")
        for finding in findings:
            typer.echo(f"  {'' if finding.level == 'ok' else finding.level + ': '}{finding.text}")
        failed = failed or any(f.level == "error" for f in findings)
    if failed:
        raise typer.Exit(code=2)


def _print_summaries(summaries: list[dict[str, str]]) -> None:
    for s in summaries:
        if "error" in s:
            typer.secho(f"{s['experiment_id']}: FAILED — {s['error']}", fg=typer.colors.RED)
        else:
            typer.echo(f"{s['experiment_id']}: {s['decision']} — {s['report']}")


DEMO_UNITS = 100_000
DEMO_SEED = 7


def demo_clean(experiment_ids: Iterable[str]) -> list[str]:
    """The experiments the demo simulates clean: every one but the first, by id.

    The first keeps the injected defects, to show what the report says about
    them; the others are clean, to show what a healthy experiment looks like.
    """
    return sorted(experiment_ids)[1:]


@app.command(short_help="Simulate demo data if missing, then run the nightly flow.")
def demo(
    config_dir: ConfigDir = Path("configs"),
    out: OutDir = Path("reports"),
    units: Annotated[
        int,
        typer.Option(
            min=10, metavar="N", help="Units per experiment if demo data must be simulated."
        ),
    ] = DEMO_UNITS,
    debug: Debug = False,
) -> None:
    """Simulate demo data into the embedded DuckDB if it is missing, then run the nightly flow."""
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config
    from analysis.devtools.simulate.writers import demo_data_missing

    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        _fail(str(exc), exc, debug=debug)
        return
    if demo_data_missing(config.sources):
        simulate(
            config_dir=config_dir,
            units=units,
            as_of=None,
            seed=DEMO_SEED,
            experiment=None,
            aa=False,
            clean=demo_clean(config.experiments),
            fmt="duckdb",
            out=None,
        )
    from flows.analyze import nightly

    _quiet_expected_failures(debug)
    _end_temporary_server_with_run()
    summaries = nightly(None, str(config_dir), str(out), None)
    _print_summaries(summaries)
    index = (out / "index.html").resolve()
    typer.echo(f"\nOpen the reports: {index}")
    if any("error" in s for s in summaries):
        sys.exit(1)


@app.command(short_help="Register the deployments and run them (needs a server).")
@_naming_deployments
def serve(
    config_dir: ConfigDir = Path("configs"),
    out: OutDir = Path("reports"),
    name: DeploymentName = "",
    reports_port: Annotated[
        int,
        typer.Option(
            "--reports-port",
            min=0,
            max=65535,
            metavar="PORT",
            help="Serve the reports dir over HTTP on 127.0.0.1:PORT, so that the report "
            "links in the Prefect UI open in a browser. 0: no reports server.",
        ),
    ] = 8765,
    reports_url: Annotated[
        str | None,
        typer.Option(
            "--reports-url",
            envvar=REPORTS_URL_ENV,
            metavar="URL",
            help="Base URL of a web server or bucket that serves the reports dir, e.g. "
            "https://reports.example.com/proof/: report links use it instead of the local "
            "reports server. Neither: file:// links.",
        ),
    ] = None,
) -> None:
    """Register the deployments the Prefect UI lists ({deployments}) and run them.

    Needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api after
    `proof server`). Also serves the reports dir on http://127.0.0.1:8765/ (see
    --reports-port), and links the reports of its runs there, or under --reports-url.
    Runs until stopped (Ctrl-C, SIGTERM); restarting it is safe.
    """
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config
    from analysis.report.links import check_base_url

    api = _server_api()
    try:
        config = load_config(config_dir)
        from flows.deployments import load_schedule

        schedule = load_schedule(config_dir)
    except ConfigError as exc:
        _fail(str(exc))
        return
    base_url: str | None = None
    if reports_url:
        try:
            base_url = check_base_url(reports_url)
        except ValueError as exc:
            _fail(str(exc))
            return
    from analysis.report.reports_server import ReportsServer, start_reports_server

    reports_server: ReportsServer | None = None
    if reports_port:
        try:
            reports_server = start_reports_server(out, reports_port)
        except OSError as exc:
            _fail(
                f"cannot serve the reports on 127.0.0.1:{reports_port} ({exc}): pass "
                "another --reports-port, or 0 for none"
            )
            return
    base_url = base_url or (reports_server.url if reports_server else None)
    if base_url:  # read by the flow runs, child processes that inherit the environment
        os.environ[REPORTS_URL_ENV] = base_url
    else:
        os.environ.pop(REPORTS_URL_ENV, None)
    running = [e.id for e in config.experiments.values() if e.status == "running"]
    served = f"  reports server: {reports_server.url}\n" if reports_server else ""
    typer.echo(
        f"serving against {api}\n  config: {config.config_dir}\n  reports: {out.resolve()}\n"
        f"{served}  report links: {base_url or 'file:// (no reports server or URL)'}\n"
        f"  nightly: {schedule.nightly.cron} ({schedule.nightly.timezone}), "
        f"{len(running)} running experiment(s): {', '.join(running) or 'none'}\n"
        f"  watch-sources: every {schedule.watch.every_minutes} min"
        f"{'' if schedule.watch.enabled else ' (disabled)'}"
    )
    from flows.deployments import serve_deployments

    try:
        serve_deployments(config_dir, out, name)
    finally:
        if reports_server is not None:
            reports_server.stop()


@app.command(short_help="Register the deployments with a work pool, for workers.")
def deploy(
    work_pool: Annotated[
        str,
        typer.Option(
            "--work-pool",
            metavar="POOL",
            help="The Prefect work pool whose workers run the flows.",
        ),
    ],
    config_dir: ConfigDir = Path("configs"),
    out: OutDir = Path("reports"),
    name: DeploymentName = "",
) -> None:
    """Register the deployments with a work pool (instead of `proof serve`), for workers.

    Workers (`prefect worker start --pool NAME`) need this package installed and the
    config dir, data and reports dir at the same paths as here.
    """
    from analysis.config.base import ConfigError
    from analysis.config.load import load_config

    api = _server_api()
    from flows.deployments import deploy_to_work_pool

    try:
        load_config(config_dir)
        names = deploy_to_work_pool(config_dir, out, work_pool, name)
    except ConfigError as exc:
        _fail(str(exc))
        return
    typer.echo(f"registered with work pool {work_pool!r} at {api}: {', '.join(names)}")


def _server_api() -> str:
    """The API URL of the Prefect server PREFECT_API_URL names, once it answers."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    api = str(PREFECT_API_URL.value() or "")
    if not api:
        _fail(
            "PREFECT_API_URL is not set: start a server with `proof server` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    try:
        httpx.get(f"{api.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        _fail(f"no Prefect server answers at {api} ({exc}); start one with `proof server`")
    return api


@app.command(short_help="Start a local Prefect server with its UI.")
def server(
    host: Annotated[
        str, typer.Option(metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, metavar="PORT", help="Port of the API and UI.")
    ] = 4200,
) -> None:
    """Start a local Prefect server with its UI (analytics off). Stop it with Ctrl-C."""
    url = f"http://{host}:{port}"
    typer.echo(f"Prefect UI: {url}\nIn another shell: PREFECT_API_URL={url}/api proof serve")
    # The UI asks /ui-settings for its API's address, built from these settings and
    # not from --port: without them, a server on another port serves a UI that calls 4200.
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
    }
    command = ["prefect", "server", "start", "--host", host, "--port", str(port)]
    os.execve(sys.executable, [sys.executable, "-m", *command], env)


app.add_typer(runs_app)


def main() -> NoReturn:
    """The ``proof`` command: :data:`app`, then an exit without the interpreter's teardown."""
    try:
        app()
    except SystemExit as exc:
        exit_without_teardown(exc.code)
    exit_without_teardown(0)


def exit_without_teardown(code: object) -> NoReturn:
    """End the process as Python would, minus freeing every object and module one by one.

    That teardown took 1.3 s of a 12 s run over 1M events, after its report was
    published. What an exit must still do is done: other (non-daemon) threads
    are ended and waited for, the exit handlers run (Prefect sends its queued logs and
    events, logging flushes its handlers), and the standard streams are flushed.
    """
    # What Python does first at exit: the threading exit hooks (a thread pool left
    # open wakes its idle workers to end), then it waits for the non-daemon threads.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    status = code if isinstance(code, int) else 0 if code is None else 1
    if not isinstance(code, int | None):
        print(code, file=sys.stderr)  # as Python prints a SystemExit's message
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
