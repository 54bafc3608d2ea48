"""Prefect flows: analyse one experiment, or every running experiment nightly.

Orchestration only, written once for every engine: ``analyze-experiment``
picks the engine of the experiment's source (:func:`analysis.engines.engine_for`),
then runs its two steps as tasks — ``check`` (read, quarantine, validate;
retried when the source did not answer) and ``measure`` — then ``analyse``
(the statistics, :func:`analysis.pipeline.summarise`) and ``publish``, and
leaves artifacts (report link, summary, comparisons) and a
``proof.decision.made`` event. The report is linked under ``PROOF_REPORTS_URL``
when it is set (``proof serve`` sets it: its own reports server, or the
configured URL), else by its ``file://`` URI (:mod:`analysis.report.links`).
No statistic is computed here.

- Validation results are cached by a data fingerprint (``revalidate=True``
  ignores the cache); per-day partial aggregates are kept per (day, cohort)
  (``no_cache=True`` ignores every stored result and recomputes).
- ``nightly`` runs ``analyze-experiment`` for every running experiment,
  ``NIGHTLY_PARALLEL`` at a time, and ends with a summary of all of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

from analysis.config import (
    ConfigError,
    Experiment,
    Metric,
    check_as_of,
    load_config,
    validate_run_id,
    yesterday,
)
from analysis.engines import Checked, Engine, Measurement, RunOptions, engine_for
from analysis.pipeline import summarise
from analysis.progress import CHECKING, MEASURING, PUBLISHING, show_progress, step
from analysis.report.links import REPORTS_URL_ENV, check_base_url, report_link
from analysis.report.runs import list_runs
from analysis.report.site import publish_results
from analysis.report.summary import (
    ATTENTION,
    comparison_notes,
    comparison_rows,
    markdown_summary,
    nightly_markdown,
)
from analysis.results import Results, to_json
from analysis.settings import env, validation_workers
from analysis.sources.errors import SourceError, retryable
from analysis.validation_report import CriticalValidationError
from flows import events
from flows.names import ANALYZE_EXPERIMENT, NIGHTLY

# The stops a run is expected to meet: a bad config, a source that cannot be read,
# data that fail a critical expectation. Their message says it all: the CLI prints
# it without Prefect's traceback (`--debug` shows it). Any other exception is a bug.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (
    ConfigError,
    SourceError,
    CriticalValidationError,
)
NIGHTLY_PARALLEL = 2  # experiments analysed at once by `nightly` (deployments may change it)

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# The attribute that marks a log record as a progress line (see ConsoleProgress).
PROGRESS_RECORD = "proof_progress"
_PROGRESS = {PROGRESS_RECORD: True}


def _as_of_text(value: object) -> object:
    """Dates given as text: YYYY-MM-DD, or empty for "not given" (a trigger's default)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    if not _ISO_DAY.fullmatch(text):
        msg = f"as_of must be a date as YYYY-MM-DD, or empty for yesterday; got {value!r}"
        raise ValueError(msg)
    return text


# The run form shows a date field (not a "None" choice): None stays a valid value, it is
# only left out of the schema. The paths are set per deployment and left out of the form.
AsOf = Annotated[dt.date | SkipJsonSchema[None], BeforeValidator(_as_of_text)]
OptionalText = str | SkipJsonSchema[None]
Dir = SkipJsonSchema[str]


def _day_of_run() -> str:
    """The analysis date a run names: its as_of, else yesterday (UTC)."""
    return str(flow_run.parameters.get("as_of") or yesterday())


def _experiment_run_name() -> str:
    """Flow-run names a reader recognises: "smart-compose 2026-11-30"."""
    return f"{flow_run.parameters.get('experiment_id')} {_day_of_run()}"


def _nightly_run_name() -> str:
    return f"nightly {_day_of_run()}"


def new_run_id(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def artifact_key(experiment_id: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"proof-{experiment_id}-{what}".lower())


def _reports_base_url(logger: Any) -> str | None:
    """The base URL that serves the reports dir (``PROOF_REPORTS_URL``), if a valid one is set."""
    configured = env(REPORTS_URL_ENV)
    if configured is None:
        return None
    try:
        return check_base_url(configured)
    except ValueError as exc:  # the report is published: link it anyway, by its file:// URI
        logger.warning("%s; the report is linked by its file:// URI", exc)
        return None


class ConsoleProgress(logging.Filter):
    """On a console handler: progress lines pass only when its stream is a terminal.

    The run's log in the Prefect UI keeps them (its handler is not filtered);
    ``PROOF_PROGRESS`` forces the choice (:func:`analysis.progress.show_progress`).
    """

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, PROGRESS_RECORD, False) or show_progress(self.handler.stream)


def progress_on_terminals_only() -> None:
    """Put :class:`ConsoleProgress` on Prefect's console handlers (once each)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, ConsoleProgress) for f in handler.filters
        ):
            handler.addFilter(ConsoleProgress(handler))


@contextmanager
def _step(experiment_id: str, what: str) -> Iterator[None]:
    """Log a long step's start and its duration, so a run is never silent for long
    at a terminal (the lines stay off a console that is not one)."""
    progress_on_terminals_only()
    logger = get_run_logger()
    with step(f"{experiment_id}: {what}", lambda line: logger.info(line, extra=_PROGRESS)):
        yield


def _worth_retrying(task: Task[Any, Any], task_run: TaskRun | None, state: State[Any]) -> bool:
    """Retry ``load`` only when a retry can succeed: a database that did not answer or
    dropped the connection, not a refused login, an unknown database or a missing table."""
    return isinstance(state.data, BaseException) and retryable(state.data)


@task(
    task_run_name="check {experiment.id}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_worth_retrying,
)
def check(engine: Engine[Any], experiment: Experiment, as_of: dt.date, run_id: str) -> Checked[Any]:
    """Quarantine row-level failures, then validate (per day partition, cached).

    A critical failure emits ``proof.validation.failed`` and stops the run
    before any statistic; the last good report stays published. A source that
    did not answer is tried again; a refused login or a missing table is not.
    """
    try:
        with _step(experiment.id, CHECKING):
            return engine.check(experiment, as_of)
    except CriticalValidationError as exc:
        events.validation_failed(experiment.id, run_id, exc.summary)
        raise


@task(cache_policy=NO_CACHE, task_run_name="measure {experiment.id}")
def measure(
    engine: Engine[Any],
    checked: Checked[Any],
    experiment: Experiment,
    metrics: list[Metric],
    as_of: dt.date,
) -> Measurement:
    """Per-arm statistics of the kept rows, timelines, funnel and histograms."""
    with _step(experiment.id, MEASURING):
        measurement = engine.measure(checked, experiment, metrics, as_of)
    for segment in experiment.segments:
        if segment not in measurement.segments:
            get_run_logger().warning(
                "%s: segment %r is not a column of the assignments table: the report has "
                "no breakdown by it (`proof check` lists what a run would miss)",
                experiment.id, segment,
            )  # fmt: skip
    return measurement


@task(cache_policy=NO_CACHE, task_run_name="analyse {experiment.id}")
def analyse(
    experiment: Experiment,
    metrics: list[Metric],
    measurement: Measurement,
    checked: Checked[Any],
    run_id: str,
    as_of: dt.date,
) -> Results:
    report = checked.report
    if measurement.unit_validation is not None:
        report = report.merge(measurement.unit_validation)
    if not report.success:  # the per-unit metric table failed a critical check
        events.validation_failed(experiment.id, run_id, report.summary())
        raise CriticalValidationError(report.summary())
    return summarise(
        experiment, metrics, measurement, report.summary(), run_id, as_of,
        dt.datetime.now(dt.UTC), checked.rows_quarantined,
    )  # fmt: skip


@task(cache_policy=NO_CACHE, task_run_name="publish {results.experiment_id}")
def publish(results: Results, out_dir: Path, checked: Checked[Any]) -> Path:
    """Publish the run; one publisher per experiment, and one index writer, at a time."""
    with _step(results.experiment_id, PUBLISHING):
        return publish_results(Path(out_dir), results, checked.quarantined, get_run_logger())


@task(cache_policy=NO_CACHE, task_run_name="record artifacts {results.experiment_id}")
def record_artifacts(results: Results, report_url: str) -> None:
    """A link to the report, a markdown summary and the comparisons, in the Prefect UI."""
    experiment_id, run_id = results.experiment_id, results.run_id
    create_link_artifact(
        report_url,
        link_text=f"{experiment_id} / {run_id}: report.html",
        key=artifact_key(experiment_id, "report"),
        description=f"The published report of {experiment_id}, run {run_id}.",
    )
    create_markdown_artifact(
        markdown_summary(results, report_url),
        key=artifact_key(experiment_id, "summary"),
        description=f"Decision, primary metric, SRM and validation of {experiment_id}.",
    )
    # A table has no footnotes: the notes of its marked verdicts (why inconclusive) go
    # into its description, which the UI shows with it.
    notes = comparison_notes(results)
    create_table_artifact(
        comparison_rows(results),
        key=artifact_key(experiment_id, "comparisons"),
        description="\n\n".join([f"Every comparison of {experiment_id}, run {run_id}.", *notes]),
    )


@task(cache_policy=NO_CACHE, task_run_name="announce {results.experiment_id}")
def announce(results: Results, report_url: str) -> None:
    """Emit ``proof.decision.made``, and ``proof.effect.decaying`` when a holdout's effect
    fades (automations notify on them).

    The events' payloads are drawn from the results as published (their JSON object).
    """
    attention = results.decision.recommendation in ATTENTION
    published = json.loads(to_json(results))
    events.decision_made(published, report_url, attention)
    if results.decay is not None and results.decay.decaying:
        events.effect_decaying(published, report_url)


@flow(name=ANALYZE_EXPERIMENT, flow_run_name=_experiment_run_name, log_prints=True)
def analyze_experiment(
    experiment_id: str,
    as_of: AsOf = None,
    run_id: OptionalText = None,
    config_dir: Dir = "configs",
    out_dir: Dir = "reports",
    revalidate: bool = False,
    no_cache: bool = False,
) -> dict[str, Any]:
    """Analyse one experiment as of a date and publish its report.

    Args:
        experiment_id: The id of an experiment in the config dir (e.g. smart-compose).
        as_of: The analysis date, YYYY-MM-DD (UTC); events up to its end count.
            Empty: yesterday. After the experiment's planned end: the end (the final
            report does not change from night to night).
        run_id: The name of the run's report folder. Empty: the current UTC time.
        config_dir: The config dir (metrics.yaml, sources.yaml, experiments/).
        out_dir: Where reports are published.
        revalidate: Run the data validation even if the data has not changed since
            the last validation.
        no_cache: Ignore every stored result (per-day partial aggregates and
            validation): recompute everything from the source and store it afresh.
    """
    if run_id:  # checked before anything is read (empty: the UTC time)
        validate_run_id(run_id)
    logger = get_run_logger()
    config = load_config(config_dir)
    experiment = config.experiment(experiment_id)
    metrics = config.metrics_of(experiment)
    asked = check_as_of(as_of or yesterday(), experiment.start)
    day = experiment.data_through(asked)
    rid = run_id or new_run_id(dt.datetime.now(dt.UTC))
    if day != asked:
        why = (
            "read weekly: analysing whole weeks, through Sunday"
            if experiment.weekly and (experiment.end is None or asked <= experiment.end)
            else "ended: analysing its data through the planned end"
        )
        logger.info("%s %s %s (asked for %s)", experiment.id, why, day, asked)
    for warning in config.warnings_of(experiment):
        logger.warning(warning)
    logger.info("analysing %s as of %s (run %s)", experiment.id, day, rid)

    options = RunOptions(
        Path(out_dir), revalidate, no_cache, log=logger.info,
        validation_workers=validation_workers(),
    )  # fmt: skip
    engine = engine_for(experiment.source, config.sources[experiment.source], options)
    logger.info("%s: computed by the %s engine", experiment.id, engine.name)
    checked = check(engine, experiment, day, rid)
    measurement = measure(engine, checked, experiment, metrics, day)
    results = analyse(experiment, metrics, measurement, checked, rid, day)
    run_dir = publish(results, Path(out_dir), checked)
    # http(s) under PROOF_REPORTS_URL (set by `proof serve`) when served; else file://
    report_url = report_link(out_dir, run_dir, _reports_base_url(logger))
    record_artifacts(results, report_url)
    announce(results, report_url)
    recommendation = results.decision.recommendation
    logger.info("%s: %s — %s", experiment.id, recommendation, run_dir)
    return {
        "experiment_id": experiment.id,
        "run_id": rid,
        "report": str(run_dir / "report.html"),
        "decision": recommendation,
    }


@task(cache_policy=NO_CACHE, task_run_name="analyze {experiment_id}")
def analyze_one(
    experiment_id: str,
    as_of: dt.date,
    run_id: str | None,
    config_dir: str,
    out_dir: str,
    no_cache: bool = False,
) -> dict[str, Any]:
    """One experiment of the nightly run, as a child flow run (a task, so it can be submitted)."""
    return analyze_experiment(
        experiment_id, as_of, run_id, config_dir, out_dir, revalidate=False, no_cache=no_cache
    )


def _week_already_read(experiment: Experiment, as_of: dt.date, out_dir: str) -> bool:
    if not experiment.weekly:
        return False
    through = experiment.data_through(as_of).isoformat()
    return any(r.analysis_date == through for r in list_runs(Path(out_dir), experiment.id))


def _outcome(experiment_id: str, future: PrefectFuture[dict[str, Any]]) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:
        return {"experiment_id": experiment_id, "error": str(exc)}


@flow(name=NIGHTLY, flow_run_name=_nightly_run_name, log_prints=True)
def nightly(
    as_of: AsOf = None,
    config_dir: Dir = "configs",
    out_dir: Dir = "reports",
    run_id: OptionalText = None,
    max_parallel: Annotated[int, Field(ge=1, le=64)] = NIGHTLY_PARALLEL,
    no_cache: bool = False,
) -> list[dict[str, Any]]:
    """Analyse every running experiment; one failure does not stop the others.

    Args:
        as_of: The analysis date, YYYY-MM-DD (UTC). Empty: yesterday.
        config_dir: The config dir (metrics.yaml, sources.yaml, experiments/).
        out_dir: Where reports are published.
        run_id: The name of every run's report folder. Empty: the UTC time of each.
        max_parallel: How many experiments are analysed at the same time.
        no_cache: Ignore stored partial aggregates and validation results, and
            recompute everything.
    """
    if run_id:  # checked before anything is read (empty: the UTC time of each)
        validate_run_id(run_id)
    logger = get_run_logger()
    config = load_config(config_dir)
    day = check_as_of(as_of or yesterday())
    running = [e.id for e in config.experiments.values() if e.status == "running"]
    # A weekly experiment is read through its last Sunday: once, then not again that week.
    read = [i for i in running if _week_already_read(config.experiment(i), day, out_dir)]
    if read:
        logger.info("Weekly, this week already published: %s", ", ".join(read))
        running = [i for i in running if i not in read]
    # A runner of its own, so that the bound is a parameter (the UI form, schedule.yaml).
    task_runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=max_parallel)
    with task_runner as runner:
        futures = {
            experiment_id: runner.submit(
                analyze_one,
                parameters={"experiment_id": experiment_id, "as_of": day, "run_id": run_id}
                | {"config_dir": config_dir, "out_dir": out_dir, "no_cache": no_cache},
            )
            for experiment_id in running
        }
        summaries = [_outcome(experiment_id, future) for experiment_id, future in futures.items()]
    for s in summaries:
        if "error" in s:
            logger.error("%s: FAILED: %s", s["experiment_id"], s["error"])
        else:
            logger.info("%s: %s", s["experiment_id"], s["decision"])
    create_markdown_artifact(
        nightly_markdown(summaries),
        key="proof-nightly-summary",
        description=f"Every running experiment as of {day}.",
    )
    return summaries
