"""Every deployment, schedule and event trigger of Proof, declared in one place.

==================== =============================== ===========================================
deployment           when                            what
==================== =============================== ===========================================
nightly/proof        cron (schedule.yaml: 02:00 UTC) every running experiment, as of yesterday
analyze-experiment/  "Run" in the UI, run_deployment, one experiment; parameters experiment_id,
proof                event ``proof.data.landed``      as_of, run_id, revalidate, no_cache
watch-sources/proof  every 15 min (schedule.yaml)    emits ``proof.data.landed`` on new data
==================== =============================== ===========================================

``proof serve`` builds these with :func:`build_deployments` and serves them
from one process against the server ``PREFECT_API_URL`` names. Serving is
restart-safe: deployments are upserted by name, and an event that arrives
while the process is down still queues a run that starts when it is back.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import yaml
from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval
from prefect.types.entrypoint import EntrypointType
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.config.base import ConfigError
from flows import events
from flows.analyze import analyze_experiment, nightly
from flows.watch import watch_sources

DEPLOYMENT_NAME = "proof"
SCHEDULE_FILE = "schedule.yaml"

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


def _built(deployment: object) -> RunnerDeployment:
    """``to_deployment`` is typed sync-or-async; called from sync code it is sync."""
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def build_deployments(
    config_dir: Path | str,
    out_dir: Path | str,
    schedule: ScheduleConfig | None = None,
    name: str = DEPLOYMENT_NAME,
) -> list[RunnerDeployment]:
    """The three deployments, with the config and report dirs as default parameters."""
    schedule = schedule or load_schedule(config_dir)
    dirs = {"config_dir": str(Path(config_dir).resolve()), "out_dir": str(Path(out_dir).resolve())}
    # Module entrypoints (flows.analyze.nightly) work from any directory and on workers.
    common: dict[str, Any] = {
        "parameters": dirs,
        "tags": ["proof"],
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    return [
        _built(
            nightly.to_deployment(
                name,
                schedules=[Cron(schedule.nightly.cron, timezone=schedule.nightly.timezone)],
                description="Every running experiment, as of yesterday (UTC); "
                f"{schedule.nightly.max_parallel} at a time. One failure does not stop the others.",
                **(common | {"parameters": dirs | {"max_parallel": schedule.nightly.max_parallel}}),
            )
        ),
        _built(
            analyze_experiment.to_deployment(
                name,
                triggers=[landed_trigger()],
                description="One experiment: validate its data, compare the arms, publish the "
                "report. Also runs on the event proof.data.landed.",
                **common,
            )
        ),
        _built(
            watch_sources.to_deployment(
                name,
                schedules=[
                    Interval(
                        dt.timedelta(minutes=schedule.watch.every_minutes),
                        active=schedule.watch.enabled,
                    )
                ],
                description="Looks for new data in each running experiment's source and emits "
                "proof.data.landed.",
                **common,
            )
        ),
    ]


def deploy_to_work_pool(
    config_dir: Path | str, out_dir: Path | str, work_pool: str, name: str = DEPLOYMENT_NAME
) -> list[str]:
    """Register the deployments with a work pool instead of serving them (scale-out).

    Workers of the pool (``prefect worker start --pool <work_pool>``) run the
    flows by their module entrypoints: each worker machine needs this package
    installed and the config dir, data and reports dir at the same paths.
    """
    names = []
    for deployment in build_deployments(config_dir, out_dir, name=name):
        deployment.apply(work_pool_name=work_pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def serve_deployments(
    config_dir: Path | str, out_dir: Path | str, name: str = DEPLOYMENT_NAME
) -> None:
    """Register the deployments with the server and execute their runs until stopped."""
    schedule = load_schedule(config_dir)
    serve(
        *build_deployments(config_dir, out_dir, schedule, name),
        limit=schedule.serve_limit,
    )
