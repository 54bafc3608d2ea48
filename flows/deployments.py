"""Every deployment, schedule and event trigger of Proof, declared in one place.

======================================== ============================ ============================
deployment (``<flow>/<deployment>``)     when                         what
======================================== ============================ ============================
nightly/nightly-all-experiments          cron (schedule.yaml: 02:00)  every running experiment,
                                                                      as of yesterday
analyze-experiment/analyze-one-experiment "Run" in the UI, run_deploy- one experiment; form:
                                         ment, ``proof.data.landed``  experiment_id (a choice),
                                                                      as_of (a date), run_id,
                                                                      revalidate, no_cache
watch-sources/watch-for-new-data         every 15 min (schedule.yaml) emits ``proof.data.landed``
======================================== ============================ ============================

``proof serve`` builds these with :func:`build_deployments` and serves them
from one process against the server ``PREFECT_API_URL`` names. Serving is
restart-safe: deployments are upserted by name, and an event that arrives
while the process is down still queues a run that starts when it is back.
``prefect.yaml`` at the project root declares the same deployments for
``prefect deploy`` (a test keeps the two equal).

The run form: ``experiment_id`` offers the experiments of the config dir (as of
when the deployments were built), ``as_of`` is a date field, and ``config_dir``
and ``out_dir`` are not in it: they are the deployment's parameters, and a run
that names other values is refused by the server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import threading
import zoneinfo
from pathlib import Path
from typing import Any

import yaml
from prefect import get_client, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.exceptions import TerminationSignal
from prefect.logging import get_logger
from prefect.schedules import Cron, Interval
from prefect.types.entrypoint import EntrypointType
from prefect.utilities.callables import ParameterSchema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.config.base import ConfigError
from analysis.config.load import load_config
from flows import events
from flows.analyze import analyze_experiment, nightly
from flows.names import deployment_name
from flows.watch import watch_sources

SCHEDULE_FILE = "schedule.yaml"
# Set per deployment (proof serve/deploy --config-dir/--out), never in the run form.
FIXED_PARAMETERS = ("config_dir", "out_dir")
# How long `proof serve` may spend pausing its deployments when it is stopped.
PAUSE_TIMEOUT_S = 5.0

# The trigger's parameter templates. A single-expression template renders to a
# native value, and a value of the wrong type (or a missing key) would fail the
# deployment's parameter schema and create no run at all — only an
# automation-failed event. So both always render to strings: an absent, null or
# empty ``as_of`` becomes "" (yesterday); anything else reaches the flow, whose
# parameter validation fails the run visibly if it is not YYYY-MM-DD.
EXPERIMENT_ID_TEMPLATE = "{{ event.resource.id.removeprefix('proof.experiment.') }}"
AS_OF_TEMPLATE = "{{ (event.payload.get('as_of') or '') | string }}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NightlySchedule(_Strict):
    cron: str = Field(default="0 2 * * *", description="When the nightly run starts (cron).")
    timezone: str = Field(
        default="UTC", description="IANA time zone of the cron, e.g. Europe/Berlin."
    )
    max_parallel: int = Field(
        default=2, ge=1, le=64, description="Experiments analysed at the same time."
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        Cron(value)  # raises ValueError on a bad expression
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r}"
            raise ValueError(msg) from None
        return value


class WatchSchedule(_Strict):
    every_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="How often sources are checked for new data."
    )
    enabled: bool = Field(default=True, description="Whether watch-sources runs on its schedule.")


class ScheduleConfig(_Strict):
    """``<config_dir>/schedule.yaml``: optional; every key has a default."""

    nightly: NightlySchedule = NightlySchedule()
    watch: WatchSchedule = WatchSchedule()
    serve_limit: int = Field(
        default=4, ge=1, le=64, description="Flow runs `proof serve` executes at the same time."
    )


def load_schedule(config_dir: Path | str) -> ScheduleConfig:
    """Read ``schedule.yaml`` from the config dir; defaults when the file is absent."""
    path = Path(config_dir) / SCHEDULE_FILE
    if not path.exists():
        return ScheduleConfig()
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"not valid YAML: {exc}") from None
    try:
        return ScheduleConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(path, key, err["msg"]) from None


def landed_trigger() -> DeploymentEventTrigger:
    """``proof.data.landed`` on ``proof.experiment.<id>`` runs analyze-experiment for <id>."""
    return DeploymentEventTrigger(
        name="analyze on proof.data.landed",
        description="New data for an experiment: analyse it (as of the payload's as_of, "
        "default yesterday).",
        expect={events.DATA_LANDED},
        match={"prefect.resource.id": events.RESOURCE_PREFIX + "*"},
        parameters={"experiment_id": EXPERIMENT_ID_TEMPLATE, "as_of": AS_OF_TEMPLATE},
    )


class _RunForm(ParameterSchema):
    """A parameter schema that keeps JSON-schema keywords Prefect's model has no field for."""

    model_config = ConfigDict(extra="allow")


def run_form(
    schema: ParameterSchema, parameters: dict[str, Any], experiment_ids: list[str]
) -> ParameterSchema:
    """The deployment's run form (its parameter schema), from the flow's.

    - ``experiment_id``: one of ``experiment_ids`` (a drop-down).
    - Optional values (``as_of``, ``run_id``) have no ``null`` default: the UI shows a
      date or text field, left empty for "not given", instead of a "None" choice;
      Prefect still accepts ``null`` for them.
    - ``config_dir``/``out_dir`` are not fields of the form (the flow's signature already
      skips them); the deployment's values are the only ones a run may carry (a run
      from the UI without them gets them from the deployment).
    """
    form = schema.model_dump()
    properties: dict[str, dict[str, Any]] = form["properties"]
    for name in FIXED_PARAMETERS:
        properties.pop(name, None)
    for prop in properties.values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]
    if "experiment_id" in properties:
        properties["experiment_id"]["enum"] = sorted(experiment_ids)
    form["patternProperties"] = {
        f"^{re.escape(name)}$": {"const": parameters[name]}
        for name in FIXED_PARAMETERS
        if name in parameters
    }
    return _RunForm.model_validate(form)


def _built(deployment: object, experiment_ids: list[str]) -> RunnerDeployment:
    """``to_deployment`` is typed sync-or-async; called from sync code it is sync."""
    assert isinstance(deployment, RunnerDeployment)
    # Prefect has no public setter for a deployment's schema (`prefect deploy` sets it so too).
    deployment._parameter_openapi_schema = run_form(
        deployment._parameter_openapi_schema, deployment.parameters, experiment_ids
    )
    return deployment


def build_deployments(
    config_dir: Path | str,
    out_dir: Path | str,
    schedule: ScheduleConfig | None = None,
    suffix: str = "",
) -> list[RunnerDeployment]:
    """The three deployments, with the config and report dirs as fixed parameters.

    ``suffix`` is appended to every deployment name (to serve a second config dir
    against the same server).
    """
    schedule = schedule or load_schedule(config_dir)
    experiment_ids = list(load_config(config_dir).experiments)
    dirs = {"config_dir": str(Path(config_dir).resolve()), "out_dir": str(Path(out_dir).resolve())}
    nightly_parameters = dirs | {"max_parallel": schedule.nightly.max_parallel}
    # Module entrypoints (flows.analyze.nightly) work from any directory and on workers.
    common: dict[str, Any] = {"tags": ["proof"], "entrypoint_type": EntrypointType.MODULE_PATH}
    return [
        _built(
            nightly.to_deployment(
                deployment_name(nightly.name, suffix),
                schedules=[Cron(schedule.nightly.cron, timezone=schedule.nightly.timezone)],
                description="Every running experiment, as of yesterday (UTC); "
                f"{schedule.nightly.max_parallel} at a time. One failure does not stop the others.",
                parameters=nightly_parameters,
                **common,
            ),
            experiment_ids,
        ),
        _built(
            analyze_experiment.to_deployment(
                deployment_name(analyze_experiment.name, suffix),
                triggers=[landed_trigger()],
                description="One experiment: validate its data, compare the arms, publish the "
                "report. Also runs on the event proof.data.landed.",
                parameters=dirs,
                **common,
            ),
            experiment_ids,
        ),
        _built(
            watch_sources.to_deployment(
                deployment_name(watch_sources.name, suffix),
                schedules=[
                    Interval(
                        dt.timedelta(minutes=schedule.watch.every_minutes),
                        active=schedule.watch.enabled,
                    )
                ],
                description="Looks for new data in each running experiment's source and emits "
                "proof.data.landed.",
                parameters=dirs,
                **common,
            ),
            experiment_ids,
        ),
    ]


def deploy_to_work_pool(
    config_dir: Path | str, out_dir: Path | str, work_pool: str, suffix: str = ""
) -> list[str]:
    """Register the deployments with a work pool instead of serving them (scale-out).

    Workers of the pool (``prefect worker start --pool <work_pool>``) run the
    flows by their module entrypoints: each worker machine needs this package
    installed and the config dir, data and reports dir at the same paths.
    """
    names = []
    for deployment in build_deployments(config_dir, out_dir, suffix=suffix):
        deployment.apply(work_pool_name=work_pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def serve_deployments(config_dir: Path | str, out_dir: Path | str, suffix: str = "") -> None:
    """Register the deployments with the server and execute their runs until stopped.

    On SIGTERM or Ctrl-C the deployments are paused (a restart resumes them),
    within :data:`PAUSE_TIMEOUT_S`: Prefect's own pause on shutdown retries a
    server that has gone for a minute or more, so it is done here instead.
    """
    schedule = load_schedule(config_dir)
    deployments = build_deployments(config_dir, out_dir, schedule, suffix)
    # Prefect's runner takes SIGTERM over only once it starts, after the deployments are
    # registered and a slow import: a SIGTERM in between would kill the process unpaused.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        serve(*deployments, limit=schedule.serve_limit, pause_on_shutdown=False)
    except TerminationSignal:
        get_logger("proof.serve").info("SIGTERM received before the runner started")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        pause_deployments([f"{d.flow_name}/{d.name}" for d in deployments])


def _terminate(signum: int, frame: object) -> None:
    raise TerminationSignal(signum)


async def _pause(names: list[str]) -> None:
    # A client of its own: a fresh client fails at once when nothing listens (Prefect
    # retries a refused connection only on a client that has connected before).
    async with get_client() as client:
        for name in names:
            deployment = await client.read_deployment_by_name(name)
            await client.pause_deployment(deployment.id)


def pause_deployments(names: list[str], timeout: float = PAUSE_TIMEOUT_S) -> bool:
    """Pause the deployments ``names`` (``<flow>/<deployment>``); give up after ``timeout`` s.

    Returns whether they were paused. A server that does not answer (stopped,
    unreachable, too slow) is logged and left as it is: ``proof serve`` must end
    promptly when it is told to, and its restart takes the deployments over again.
    """
    logger = get_logger("proof.serve")
    logger.info("Pausing the deployments (at most %.0f s)...", timeout)
    try:
        asyncio.run(asyncio.wait_for(_pause(names), timeout))
    except TimeoutError:
        logger.warning(
            "The Prefect server did not answer within %.0f s: the deployments were not "
            "paused (a restart of proof serve takes them over again)",
            timeout,
        )
        return False
    except Exception as exc:  # unreachable, or a deployment deleted meanwhile: end anyway
        logger.warning(
            "The deployments were not paused (%s: %s); a restart of proof serve takes "
            "them over again",
            type(exc).__name__,
            exc,
        )
        return False
    logger.info("Paused %s.", ", ".join(names))
    return True
