"""Prefect flows: analyse one experiment, or every running experiment nightly.

Orchestration only: each task calls one function of ``analysis``; retries sit
on the task that reads the source. No statistic is computed here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from analysis.config import Experiment, Metric, ProofConfig, load_config
from analysis.pipeline import Measurement, measure, summarise
from analysis.report.publish import ensure_plotly_asset, publish_run, write_index
from analysis.report.render import render_report
from analysis.results import to_json
from analysis.sources import Tables, read_experiment
from analysis.validation import CriticalValidationError, ValidationReport, validate_tables

PLOTLY_SRC = "../../assets/plotly.min.js"


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def new_run_id(now: dt.datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def load(config: ProofConfig, experiment: Experiment) -> Tables:
    return read_experiment(experiment.source, config.sources[experiment.source], experiment.id)


@task(cache_policy=NO_CACHE)
def validate(tables: Tables) -> ValidationReport:
    report = validate_tables({"assignments": tables.assignments, "events": tables.events})
    if not report.success:
        raise CriticalValidationError(report.summary())
    return report


@task(cache_policy=NO_CACHE)
def compute(
    tables: Tables, experiment: Experiment, metrics: list[Metric], as_of: dt.date
) -> Measurement:
    return measure(tables, experiment, metrics, as_of)


@task(cache_policy=NO_CACHE)
def analyse(
    experiment: Experiment,
    metrics: list[Metric],
    measurement: Measurement,
    validation: ValidationReport,
    run_id: str,
    as_of: dt.date,
) -> dict[str, Any]:
    return summarise(
        experiment, metrics, measurement, validation.summary(), run_id, as_of,
        dt.datetime.now(dt.UTC),
    )  # fmt: skip


@task(cache_policy=NO_CACHE)
def publish(results: dict[str, Any], out_dir: Path) -> Path:
    ensure_plotly_asset(out_dir)
    run_dir = publish_run(
        out_dir,
        results["experiment_id"],
        results["run_id"],
        {"results.json": to_json(results), "report.html": render_report(results, PLOTLY_SRC)},
    )
    write_index(out_dir)
    return run_dir


@flow(name="analyze-experiment", log_prints=True)
def analyze_experiment(
    experiment_id: str,
    as_of: dt.date | None = None,
    run_id: str | None = None,
    config_dir: str = "configs",
    out_dir: str = "reports",
) -> dict[str, Any]:
    """Analyse one experiment as of a date and publish its report.

    Args:
        experiment_id: the id of an experiment in ``<config_dir>/experiments``.
        as_of: the analysis date (UTC); events up to its end count. Default: yesterday.
        run_id: the name of the run's folder; default: the current UTC time.
        config_dir: the config dir (metrics.yaml, sources.yaml, experiments/).
        out_dir: where reports are published.
    """
    logger = get_run_logger()
    config = load_config(config_dir)
    experiment = config.experiment(experiment_id)
    metrics = config.metrics_of(experiment)
    day = as_of or yesterday()
    rid = run_id or new_run_id(dt.datetime.now(dt.UTC))
    logger.info("analysing %s as of %s (run %s)", experiment.id, day, rid)

    tables = load(config, experiment)
    validation = validate(tables)
    measurement = compute(tables, experiment, metrics, day)
    results = analyse(experiment, metrics, measurement, validation, rid, day)
    run_dir = publish(results, Path(out_dir))
    logger.info("%s: %s — %s", experiment.id, results["decision"]["recommendation"], run_dir)
    return {
        "experiment_id": experiment.id,
        "run_id": rid,
        "report": str(run_dir / "report.html"),
        "decision": results["decision"]["recommendation"],
    }


@flow(name="nightly", log_prints=True)
def nightly(
    as_of: dt.date | None = None,
    config_dir: str = "configs",
    out_dir: str = "reports",
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Analyse every running experiment; one failure does not stop the others."""
    logger = get_run_logger()
    config = load_config(config_dir)
    day = as_of or yesterday()
    summaries: list[dict[str, Any]] = []
    for experiment in config.experiments.values():
        if experiment.status != "running":
            continue
        try:
            summaries.append(analyze_experiment(experiment.id, day, run_id, config_dir, out_dir))
        except Exception as exc:
            logger.error("%s failed: %s", experiment.id, exc)
            summaries.append({"experiment_id": experiment.id, "error": str(exc)})
    for s in summaries:
        logger.info("%s: %s", s["experiment_id"], s.get("decision") or f"FAILED: {s['error']}")
    return summaries
