"""Prefect flows: analyse one experiment, or every running experiment nightly.

Orchestration only: each task calls one function of ``analysis``; retries sit
on the task that reads the source. No statistic is computed here.

- ``analyze-experiment`` loads, validates, computes, analyses and publishes one
  experiment, then leaves artifacts (report link, summary, comparisons) and a
  ``proof.decision.made`` event. Validation results are cached by a data
  fingerprint (``revalidate=True`` ignores the cache); per-day partial
  aggregates are kept per (day, cohort) (``no_cache=True`` ignores every
  stored result and recomputes).
- For a ``sql`` or ``duckdb`` source with ``pushdown: true`` the rows are never read:
  quarantine, validation and the aggregation run inside the database
  (:mod:`analysis.pushdown`), and only the quarantined rows and sufficient
  statistics come back.
- ``nightly`` runs ``analyze-experiment`` for every running experiment,
  ``NIGHTLY_PARALLEL`` at a time, and ends with a summary of all of them.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import polars as pl
from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BeforeValidator, Field

from analysis import pushdown
from analysis.comparisons import data_through
from analysis.config import (
    ConfigError,
    DuckDBSource,
    Experiment,
    Metric,
    ProofConfig,
    SqlSource,
    load_config,
    validate_run_id,
)
from analysis.partials import PartialSpec
from analysis.partials_cache import CacheUse, cached_partials_of, partials_cache_dir
from analysis.pipeline import Measurement, measure, summarise
from analysis.pushdown import DatabaseCheck
from analysis.quarantine import collect_tables, write_quarantine
from analysis.report.publish import (
    ensure_plotly_asset,
    publish_run,
    recover_runs,
    remove_site_leftovers,
    write_index,
)
from analysis.report.render import render_run_files
from analysis.results import to_json
from analysis.sources import (
    EventCoverage,
    SourceError,
    event_coverage,
    read_experiment,
    retryable,
)
from analysis.suites import experiment_period
from analysis.summary import ATTENTION, comparison_rows, markdown_summary, nightly_markdown
from analysis.validation import (
    CheckedData,
    CriticalValidationError,
    ValidationReport,
    check_experiment,
    validate_unit_metrics,
    validation_cache_dir,
)
from analysis.validation_sql import (
    check_experiment_sql,
    check_source,
    kept_rows,
    validates_in_database,
)
from analysis.warehouse import WarehouseMeasurement
from flows import events, locks

PLOTLY_SRC = "../../assets/plotly.min.js"
# The stops a run is expected to meet: a bad config, a source that cannot be read,
# data that fail a critical expectation. Their message says it all: the CLI prints
# it without Prefect's traceback (`--debug` shows it). Any other exception is a bug.
EXPECTED_FAILURES: tuple[type[Exception], ...] = (
    ConfigError,
    SourceError,
    CriticalValidationError,
)
NIGHTLY_PARALLEL = 2  # experiments analysed at once by `nightly` (deployments may change it)

# Great Expectations keeps its current context in a process-wide global, and
# the validation adapter swaps warning filters: one validation at a time per
# process (concurrent nightly experiments still load and compute in parallel).
_GX_LOCK = threading.Lock()


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


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


AsOf = Annotated[dt.date | None, BeforeValidator(_as_of_text)]


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def new_run_id(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def artifact_key(experiment_id: str, what: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"proof-{experiment_id}-{what}".lower())


def _worth_retrying(task: Task[Any, Any], task_run: TaskRun | None, state: State[Any]) -> bool:
    """Retry ``load`` only when a retry can succeed: a database that did not answer or
    dropped the connection, not a refused login, an unknown database or a missing table."""
    return isinstance(state.data, BaseException) and retryable(state.data)


@task(
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=_worth_retrying,
)
def load(
    config: ProofConfig, experiment: Experiment, as_of: dt.date
) -> tuple[dict[str, pl.DataFrame] | None, EventCoverage | None]:
    """Read the experiment's tables once, and count events of unassigned units at the source.

    A source checked inside the database (push-down, or DuckDB) is not read
    here: its tables and columns are only checked (None).
    """
    source = config.sources[experiment.source]
    raw: dict[str, pl.DataFrame] | None = None
    if isinstance(source, SqlSource | DuckDBSource) and validates_in_database(source):
        check_source(experiment.source, source)  # tables and columns; no row is read
    else:
        period = experiment_period(experiment, as_of)  # its events without a unit too
        tables = read_experiment(experiment.source, source, experiment.id, null_units=period)
        raw = collect_tables(tables)
    since = dt.datetime.combine(experiment.start, dt.time(), dt.UTC) - dt.timedelta(
        days=experiment.pre_window_days
    )
    until = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    try:
        coverage = event_coverage(experiment.source, source, since, until)
    except SourceError as exc:
        get_run_logger().warning("cannot count unassigned events: %s", exc)
        coverage = None
    return raw, coverage


def _stop_if_failed(report: ValidationReport, experiment_id: str, run_id: str) -> None:
    """A critical failure: emit ``proof.validation.failed`` and stop before any statistic."""
    if not report.success:
        events.validation_failed(experiment_id, run_id, report.summary())
        raise CriticalValidationError(report.summary())


@task(cache_policy=NO_CACHE)
def check(
    raw: dict[str, pl.DataFrame],
    coverage: EventCoverage | None,
    experiment: Experiment,
    as_of: dt.date,
    out_dir: str,
    run_id: str,
    revalidate: bool,
) -> CheckedData:
    """Quarantine row-level failures, then validate (per day partition, cached).

    A critical failure emits ``proof.validation.failed`` and stops the run
    before any statistic; the last good report stays published.
    """
    with _GX_LOCK:
        checked = check_experiment(
            raw,
            experiment,
            as_of,
            coverage=coverage,
            cache_dir=validation_cache_dir(Path(out_dir), experiment.id),
            revalidate=revalidate,
        )
    _stop_if_failed(checked.report, experiment.id, run_id)
    return checked


@task(cache_policy=NO_CACHE)
def check_then_read(
    config: ProofConfig,
    experiment: Experiment,
    as_of: dt.date,
    coverage: EventCoverage | None,
    run_id: str,
) -> CheckedData:
    """Quarantine and validation as SQL inside DuckDB, then read only the kept rows.

    The same split and report as ``check`` (tested), without reading the
    quarantined rows twice or handing pandas copies to GX. A critical failure
    stops the run as in ``check``.
    """
    source = config.sources[experiment.source]
    assert isinstance(source, DuckDBSource)
    now = dt.datetime.now(dt.UTC)
    with _GX_LOCK:
        held, report = check_experiment_sql(
            experiment.source, source, experiment, as_of, now=now, coverage=coverage
        )
    _stop_if_failed(report, experiment.id, run_id)
    kept = kept_rows(experiment.source, source, experiment, as_of, held, now=now)
    return CheckedData(kept, report)


@task(cache_policy=NO_CACHE)
def check_in_database(
    config: ProofConfig,
    experiment: Experiment,
    as_of: dt.date,
    coverage: EventCoverage | None,
    run_id: str,
) -> DatabaseCheck:
    """Quarantine and validation as SQL inside the database (push-down sources).

    A critical failure stops the run as in ``check``.
    """
    source = config.sources[experiment.source]
    assert isinstance(source, SqlSource | DuckDBSource)
    with _GX_LOCK:
        checked = pushdown.check(experiment.source, source, experiment, as_of, coverage=coverage)
    _stop_if_failed(checked.report, experiment.id, run_id)
    return checked


@task(cache_policy=NO_CACHE)
def compute_in_database(
    config: ProofConfig,
    experiment: Experiment,
    metrics: list[Metric],
    as_of: dt.date,
    checked: DatabaseCheck,
) -> tuple[Measurement, WarehouseMeasurement]:
    """Per-arm statistics of the kept rows, aggregated inside the database."""
    source = config.sources[experiment.source]
    assert isinstance(source, SqlSource | DuckDBSource)
    measurement, found = pushdown.measure(
        experiment.source, source, experiment, metrics, as_of, checked
    )
    get_run_logger().info(
        "%s: aggregated inside the database (%s); rows returned: %s",
        experiment.id, found.dialect, dict(found.rows),
    )  # fmt: skip
    return measurement, found


@task(cache_policy=NO_CACHE)
def compute(
    checked: CheckedData,
    experiment: Experiment,
    metrics: list[Metric],
    as_of: dt.date,
    out_dir: str,
    no_cache: bool,
) -> Measurement:
    """Per-arm statistics; per-day partials of unchanged (day, cohort)s come from the cache."""
    clean = checked.quarantine
    cache_dir = partials_cache_dir(Path(out_dir), experiment.id)
    inputs = clean.partial_inputs()
    uses: list[CacheUse] = []

    def partial_rows(spec: PartialSpec) -> pl.LazyFrame:
        rows, use = cached_partials_of(inputs, spec, cache_dir, as_of, refresh=no_cache)
        uses.append(use)
        return rows

    def unit_check(table: pl.LazyFrame) -> ValidationReport:
        with _GX_LOCK:
            return validate_unit_metrics(
                table, experiment, metrics, clean.analysed_units(as_of), as_of=as_of
            )

    measurement = measure(
        clean.tables(), experiment, metrics, as_of, unit_check,
        partial_rows=partial_rows, unique_events=True,
    )  # fmt: skip
    for use in uses:
        get_run_logger().info("%s: %s", experiment.id, use.summary)
    return replace(measurement, cleaning=clean.cleaning(measurement.cleaning))


@task(cache_policy=NO_CACHE)
def analyse(
    experiment: Experiment,
    metrics: list[Metric],
    measurement: Measurement,
    checked: CheckedData | DatabaseCheck,
    run_id: str,
    as_of: dt.date,
) -> dict[str, Any]:
    report = checked.report
    if measurement.unit_validation is not None:
        report = report.merge(measurement.unit_validation)
    _stop_if_failed(report, experiment.id, run_id)
    quarantined = sum(checked.quarantine.rows_quarantined.values())
    return summarise(
        experiment, metrics, measurement, report.summary(), run_id, as_of,
        dt.datetime.now(dt.UTC), quarantined,
    )  # fmt: skip


@task(cache_policy=NO_CACHE)
def publish(results: dict[str, Any], out_dir: Path, checked: CheckedData | DatabaseCheck) -> Path:
    """Publish the run; one publisher per experiment, and one index writer, at a time."""
    files = {"results.json": to_json(results), **render_run_files(results, PLOTLY_SRC)}
    return publish_files(
        Path(out_dir), results["experiment_id"], results["run_id"], files,
        checked.quarantine.quarantined, get_run_logger(),
    )  # fmt: skip


def publish_files(
    out_dir: Path,
    experiment_id: str,
    run_id: str,
    files: Mapping[str, str | bytes],
    quarantined: Mapping[str, pl.DataFrame],
    logger: locks.Logger,
) -> Path:
    """Publish a rendered run with its quarantine files, all or nothing; then the index.

    Under the output directory's file locks (they die with a killed run): the
    leftovers of killed publishers are repaired or removed first; the run,
    quarantine included, becomes visible by one rename.
    """
    what = f"publishing {experiment_id} run {run_id}"
    with locks.exclusive(out_dir, locks.INDEX, what=what, logger=logger):
        for line in remove_site_leftovers(out_dir):
            logger.info(line)
        ensure_plotly_asset(out_dir)
    with locks.exclusive(out_dir, locks.publish_lock(experiment_id), what=what, logger=logger):
        for line in recover_runs(out_dir, experiment_id):
            logger.info("%s: %s", experiment_id, line)
        run_dir = publish_run(
            out_dir, experiment_id, run_id, files,
            fill=lambda folder: write_quarantine(folder, quarantined),
        )  # fmt: skip
    with locks.exclusive(out_dir, locks.INDEX, what=what, logger=logger):
        write_index(out_dir)
    return run_dir


@task(cache_policy=NO_CACHE)
def record_artifacts(results: dict[str, Any], report_url: str) -> None:
    """A link to the report, a markdown summary and the comparisons, in the Prefect UI."""
    experiment_id, run_id = results["experiment_id"], results["run_id"]
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
    create_table_artifact(
        comparison_rows(results),
        key=artifact_key(experiment_id, "comparisons"),
        description=f"Every comparison of {experiment_id}, run {run_id}.",
    )


@task(cache_policy=NO_CACHE)
def announce(results: dict[str, Any], report_url: str) -> None:
    """Emit ``proof.decision.made`` (automations notify on it)."""
    attention = results["decision"]["recommendation"] in ATTENTION
    events.decision_made(results, report_url, attention)


@flow(name="analyze-experiment", log_prints=True)
def analyze_experiment(
    experiment_id: str,
    as_of: AsOf = None,
    run_id: str | None = None,
    config_dir: str = "configs",
    out_dir: str = "reports",
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
    asked = as_of or yesterday()
    day = data_through(experiment, asked)
    rid = run_id or new_run_id(dt.datetime.now(dt.UTC))
    if day != asked:
        logger.info(
            "%s ended on %s: analysing its data through the planned end (asked for %s)",
            experiment.id, day, asked,
        )  # fmt: skip
    logger.info("analysing %s as of %s (run %s)", experiment.id, day, rid)

    raw, coverage = load(config, experiment, day)
    checked: CheckedData | DatabaseCheck
    found: WarehouseMeasurement | None = None
    source = config.sources[experiment.source]
    if raw is None and pushdown.enabled(source):  # pushed down into the database
        checked = check_in_database(config, experiment, day, coverage, rid)
        measurement, found = compute_in_database(config, experiment, metrics, day, checked)
    elif raw is None:  # checked inside DuckDB; only the kept rows were read
        checked = check_then_read(config, experiment, day, coverage, rid)
        measurement = compute(checked, experiment, metrics, day, out_dir, no_cache)
    else:
        checked = check(raw, coverage, experiment, day, out_dir, rid, revalidate or no_cache)
        raw = None  # the source's rows: the split keeps the used ones, free the rest now
        measurement = compute(checked, experiment, metrics, day, out_dir, no_cache)
    results = analyse(experiment, metrics, measurement, checked, rid, day)
    if found is not None:
        results = pushdown.annotate(results, found)
    run_dir = publish(results, Path(out_dir), checked)
    report_url = (run_dir / "report.html").resolve().as_uri()
    record_artifacts(results, report_url)
    announce(results, report_url)
    logger.info("%s: %s — %s", experiment.id, results["decision"]["recommendation"], run_dir)
    return {
        "experiment_id": experiment.id,
        "run_id": rid,
        "report": str(run_dir / "report.html"),
        "decision": results["decision"]["recommendation"],
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


def _outcome(experiment_id: str, future: PrefectFuture[dict[str, Any]]) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:
        return {"experiment_id": experiment_id, "error": str(exc)}


@flow(name="nightly", log_prints=True)
def nightly(
    as_of: AsOf = None,
    config_dir: str = "configs",
    out_dir: str = "reports",
    run_id: str | None = None,
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
    day = as_of or yesterday()
    running = [e.id for e in config.experiments.values() if e.status == "running"]
    # A runner of its own, so that the bound is a parameter (the UI form, schedule.yaml).
    with ThreadPoolTaskRunner(max_workers=max_parallel) as runner:
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
