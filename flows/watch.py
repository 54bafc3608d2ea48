"""The ``watch-sources`` flow: has new data landed? Then say so with an event.

Every few minutes (see ``configs/schedule.yaml``) it fingerprints the source of
each running experiment (``analysis.watch``), compares with the state of the
last look (``<out_dir>/.state/watch.json``) and emits ``proof.data.landed`` for
each experiment whose data changed; the deployment trigger of
``analyze-experiment`` does the rest. The first look only records a baseline.
Events are emitted before the state is saved: a crash between the two repeats
an event rather than losing one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic.json_schema import SkipJsonSchema

from analysis import watch
from analysis.config.load import load_config
from analysis.sources.errors import SourceError
from flows import events
from flows.names import WATCH_SOURCES

STATE_FILE = Path(".state") / "watch.json"
Dir = SkipJsonSchema[str]  # set per deployment, not in the run form


def _watch_run_name() -> str:
    return f"look for new data {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def fingerprint(source: watch.AnySource) -> watch.Fingerprint:
    return watch.source_fingerprint(source)


@task(cache_policy=NO_CACHE, task_run_name="emit proof.data.landed")
def emit_landed(landed: list[watch.Landed]) -> None:
    for item in landed:
        events.data_landed(item.experiment_id, item.as_of, source=item.source, reason=item.reason)


@flow(name=WATCH_SOURCES, flow_run_name=_watch_run_name, log_prints=True)
def watch_sources(config_dir: Dir = "configs", out_dir: Dir = "reports") -> list[dict[str, Any]]:
    """Emit ``proof.data.landed`` for every running experiment whose source has new data.

    Args:
        config_dir: The config dir (metrics.yaml, sources.yaml, experiments/).
        out_dir: The reports dir; the watch state is kept in its .state/watch.json.
    """
    logger = get_run_logger()
    config = load_config(config_dir)
    state_path = Path(out_dir) / STATE_FILE
    state = watch.load_state(state_path)
    running = {e.id: e.source for e in config.experiments.values() if e.status == "running"}
    current: dict[str, tuple[str, watch.Fingerprint]] = {}
    for name in sorted(set(running.values())):
        try:
            fp = fingerprint.with_options(task_run_name=f"fingerprint {name}")(config.sources[name])
        except (SourceError, OSError) as exc:
            logger.warning("source %s: cannot fingerprint (%s); its state is kept", name, exc)
            continue
        current.update({e: (name, fp) for e, source in running.items() if source == name})
    landed, new_state = watch.detect(state, current, dt.datetime.now(dt.UTC))
    # A source that could not be read keeps its experiments' previous state.
    new_state.update({e: seen for e, seen in state.items() if e in running and e not in current})
    emit_landed(landed)
    watch.save_state(state_path, new_state)
    for item in landed:
        logger.info("%s: new data (%s), as of %s", item.experiment_id, item.reason, item.as_of)
    if not landed:
        logger.info("no new data in %d experiment(s)", len(current))
    return [
        {"experiment_id": i.experiment_id, "as_of": i.as_of and i.as_of.isoformat()} for i in landed
    ]
