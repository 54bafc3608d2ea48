"""Deployments, schedules and the data-landed trigger, against a REAL Prefect server.

The module starts ``prefect server start`` on a free 127.0.0.1 port and
``proof serve`` against it (both in their own process groups, both stopped at
teardown). The fixture starts three runs at once — a Run-button run and two
``proof.data.landed`` events with a missing and a badly typed ``as_of`` — so
that they share the wait; the data-landed test emits its own event once the
Run-button run is done (and its validation is cached). The wiring snapshot and
the parameter checks at the bottom need no server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from analysis.config.base import ConfigError
from analysis.config.load import load_config
from analysis.devtools.simulate import simulate, write_duckdb
from flows.analyze import analyze_experiment, nightly
from flows.deployments import build_deployments, load_schedule
from flows.watch import watch_sources
from tests.conftest import AS_OF, make_config_dir

T = TypeVar("T")
SERVER_START_TIMEOUT = 180.0
RUN_TIMEOUT = 240.0
NIGHTLY = "nightly/nightly-all-experiments"
ANALYZE = "analyze-experiment/analyze-one-experiment"
WATCH = "watch-sources/watch-for-new-data"
DEPLOYMENTS = (NIGHTLY, ANALYZE, WATCH)
EXPERIMENT_ID = "{{ event.resource.id.removeprefix('proof.experiment.') }}"
AS_OF_TEXT = "{{ (event.payload.get('as_of') or '') | string }}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (serve pauses its deployments), then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # children of the group that outlived their parent (flow-run processes)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait(what: str, probe: Callable[[], T | None], timeout: float, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n--- {log.name}:\n{tail}")


def serve_env(root: Path, api: str) -> dict[str, str]:
    """The environment of a Prefect server and `proof serve` under ``root`` (PREFECT_HOME)."""
    return {
        **os.environ,
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": api,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }


def start_prefect_server(
    port: int, env: dict[str, str], log_path: Path, processes: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """`prefect server start` on 127.0.0.1:``port``, in its own process group (appended to
    ``processes``, for the caller to stop); returns once it answers."""
    api = f"http://127.0.0.1:{port}/api"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start",
             "--host", "127.0.0.1", "--port", str(port)],
            env={k: v for k, v in env.items() if k != "PREFECT_API_URL"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    processes.append(process)

    def healthy() -> bool | None:
        if process.poll() is not None:
            pytest.fail(f"prefect server exited:\n{log_path.read_text()[-4000:]}")
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200 or None
        except httpx.HTTPError:
            return None

    _wait("the Prefect server", healthy, SERVER_START_TIMEOUT, log_path)
    return process


@dataclass
class Served:
    api: str
    config_dir: Path
    out: Path
    serve_log: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]
    timings: dict[str, float] = field(default_factory=dict)
    kicked: dict[str, Any] = field(default_factory=dict)
    # its reports server: a free port, the same one across restarts
    reports_port: int = field(default_factory=_free_port)

    @property
    def reports_url(self) -> str:
        return f"http://127.0.0.1:{self.reports_port}/"

    def start_serve(self) -> subprocess.Popen[bytes]:
        """`proof serve` in its own process group; returns once every deployment is live."""
        with self.serve_log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flows.cli", "serve",
                 "--config-dir", str(self.config_dir), "--out", str(self.out),
                 "--reports-port", str(self.reports_port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)

        def live() -> bool | None:
            if process.poll() is not None:
                pytest.fail(f"proof serve exited:\n{self.serve_log.read_text()[-4000:]}")
            found = [self.deployment(name) for name in DEPLOYMENTS]
            return all(d is not None and not d["paused"] for d in found) or None

        _wait("the deployments", live, 120, self.serve_log)
        return process

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{self.api}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def deployment(self, name: str) -> dict[str, Any] | None:
        flow_name, deployment_name = name.split("/")
        response = httpx.get(f"{self.api}/deployments/name/{flow_name}/{deployment_name}")
        return response.json() if response.status_code == 200 else None

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 50}
        runs: list[dict[str, Any]] = self.post("/flow_runs/filter", body)
        return runs

    def wait_for_run(
        self, deployment_id: str, match: Callable[[dict[str, Any]], bool], final: bool = True
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            for run in self.flow_runs(deployment_id):
                if match(run["parameters"]) and (
                    not final or run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED"}
                ):
                    return run
            return None

        return _wait("a flow run", probe, RUN_TIMEOUT, self.serve_log)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served")
    config_dir = make_config_dir(root)
    config = load_config(config_dir)
    write_duckdb(
        root / "data" / "warehouse.duckdb",
        simulate(list(config.experiments.values()), 2_000, AS_OF, seed=11),
    )
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = serve_env(root, api)
    server_log, serve_log = root / "server.log", root / "serve.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        started = time.monotonic()
        start_prefect_server(port, env, server_log, processes)
        timings = {"server_start_s": time.monotonic() - started}

        started = time.monotonic()
        served = Served(api, config_dir, root / "reports", serve_log, env, processes, timings)
        served.start_serve()
        timings["serve_ready_s"] = time.monotonic() - started
        _kick_off(served)
        yield served
        print("\ntimings:", json.dumps({k: round(v, 1) for k, v in timings.items()}))
    finally:
        for process in reversed(processes):
            _stop(process)


def _emit_landed(served: Served, experiment_id: str, payload: dict[str, Any]) -> None:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: served.api}):
        emit_event(
            "proof.data.landed",
            resource={"prefect.resource.id": f"proof.experiment.{experiment_id}"},
            payload=payload,
        )
        EventsWorker.drain_all()


def _kick_off(served: Served) -> None:
    """The Run button, and two events whose as_of is missing or not a date string."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: served.api}):
        clicked = run_deployment(
            ANALYZE,
            parameters={"experiment_id": "smart-compose", "as_of": AS_OF, "run_id": "ui-run"},
            timeout=0,
        )
    served.kicked["clicked"] = str(clicked.id)
    _emit_landed(served, "auto-triage", {})  # no as_of: yesterday
    _emit_landed(served, "auto-triage", {"as_of": 20261120})  # not a date string


def _deployment_id(served: Served, name: str) -> str:
    deployment = served.deployment(name)
    assert deployment is not None, name
    return str(deployment["id"])


def _artifacts(served: Served, flow_run_id: str) -> list[dict[str, Any]]:
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    artifacts: list[dict[str, Any]] = served.post("/artifacts/filter", body)
    return artifacts


def test_nightly_deployment_has_its_cron_schedule(served: Served) -> None:
    nightly = served.deployment(NIGHTLY)
    assert nightly is not None
    [schedule] = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "UTC"
    assert schedule["active"]
    assert not nightly["paused"]
    assert nightly["parameters"]["config_dir"] == str(served.config_dir.resolve())
    watch = served.deployment(WATCH)
    assert watch is not None
    assert watch["schedules"][0]["schedule"]["interval"] == 900.0


def test_run_button_publishes_the_report_and_links_it(served: Served) -> None:
    run_id = served.kicked["clicked"]
    run = served.wait_for_run(
        _deployment_id(served, ANALYZE),
        lambda p: p.get("run_id") == "ui-run",
    )
    assert run["id"] == run_id
    assert run["state"]["type"] == "COMPLETED", run["state"]
    report = served.out / "smart-compose" / "ui-run" / "report.html"
    assert report.stat().st_size > 10_000
    results = json.loads((report.parent / "results.json").read_text())
    assert results["analysis_date"] == AS_OF.isoformat()

    artifacts = {a["key"]: a for a in _artifacts(served, run_id)}
    link = artifacts["proof-smart-compose-report"]
    url = f"{served.reports_url}smart-compose/ui-run/report.html"  # served by proof serve
    assert f"({url})" in link["data"]
    fetched = httpx.get(url, timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == report.read_bytes()
    summary = artifacts["proof-smart-compose-summary"]["data"]
    assert f"Decision: **{results['decision']['recommendation']}**" in summary
    assert f"[Open the report]({url})" in summary
    table = artifacts["proof-smart-compose-comparisons"]["data"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert {r["metric"] for r in rows} == {c["label"] for c in results["comparisons"]}

    def decided() -> list[dict[str, Any]] | None:
        body = {
            "filter": {
                "event": {"name": ["proof.decision.made"]},
                "resource": {"id": ["proof.experiment.smart-compose"]},
            }
        }
        found = [e for e in served.post("/events/filter", body)["events"]
                 if e["payload"]["run_id"] == "ui-run"]  # fmt: skip
        return found or None

    [event] = _wait("the proof.decision.made event", decided, 30, served.serve_log)
    assert event["payload"]["recommendation"] == results["decision"]["recommendation"]
    assert event["payload"]["report"] == url


def test_runs_and_tasks_have_names_people_can_read(served: Served) -> None:
    run = served.wait_for_run(
        _deployment_id(served, ANALYZE), lambda p: p.get("run_id") == "ui-run"
    )
    assert run["name"] == f"smart-compose {AS_OF.isoformat()}"
    # the Run button sent no dirs: the run has the deployment's
    assert run["parameters"]["config_dir"] == str(served.config_dir.resolve())
    assert run["parameters"]["out_dir"] == str(served.out.resolve())
    body = {"flow_runs": {"id": {"any_": [run["id"]]}}}
    names = {t["name"] for t in served.post("/task_runs/filter", body)}
    steps = ("check", "measure", "analyse", "publish", "record artifacts", "announce")
    assert {f"{step} smart-compose" for step in steps} <= names, names

    # no as_of: named after the day it analyses
    landed = served.wait_for_run(
        _deployment_id(served, ANALYZE),
        lambda p: p.get("experiment_id") == "auto-triage" and p.get("as_of") == "",
    )
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert landed["name"] == f"auto-triage {yesterday.isoformat()}"


def test_run_form_offers_the_experiments_and_keeps_the_dirs(served: Served) -> None:
    deployment = served.deployment(ANALYZE)
    assert deployment is not None
    schema = deployment["parameter_openapi_schema"]
    properties = schema["properties"]
    assert properties["experiment_id"]["enum"] == [
        "auto-triage",
        "smart-compose",
        "summaries-holdout",
    ]
    assert properties["as_of"]["type"] == "string"
    assert properties["as_of"]["format"] == "date"
    assert "anyOf" not in properties["as_of"]
    assert "config_dir" not in properties
    assert "out_dir" not in properties

    def form_errors(values: dict[str, Any]) -> bool:  # what the UI's form checks
        checked = served.post("/ui/schemas/validate", {"schema": schema, "values": values})
        return not checked["valid"]

    assert not form_errors({"experiment_id": "smart-compose"})
    assert not form_errors({"experiment_id": "smart-compose", "as_of": "2026-11-20"})
    assert form_errors({"experiment_id": "smart-compose", "as_of": "20261120"})
    assert form_errors({"experiment_id": "no-such-experiment"})

    # Through the API too, a run cannot name another experiment or other dirs.
    for parameters in (
        {"experiment_id": "no-such-experiment"},
        {"experiment_id": "smart-compose", "config_dir": "/tmp/elsewhere"},
        {"experiment_id": "smart-compose", "out_dir": "/tmp/elsewhere"},
    ):
        response = httpx.post(
            f"{served.api}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": parameters},
            timeout=30,
        )
        assert response.status_code == 409, (parameters, response.text)


def test_data_landed_event_runs_the_experiment(served: Served) -> None:
    deployment_id = _deployment_id(served, ANALYZE)
    served.wait_for_run(deployment_id, lambda p: p.get("run_id") == "ui-run")
    served.timings["emitted_at"] = time.time()
    _emit_landed(served, "smart-compose", {"as_of": AS_OF.isoformat()})
    created = served.wait_for_run(
        deployment_id,
        lambda p: p.get("experiment_id") == "smart-compose" and "run_id" not in p,
        final=False,
    )
    assert created["parameters"]["as_of"] == AS_OF.isoformat()
    assert created["parameters"]["out_dir"] == str(served.out.resolve())
    created_at = dt.datetime.fromisoformat(created["created"]).timestamp()
    served.timings["trigger_to_flow_run_s"] = created_at - served.timings["emitted_at"]

    run = served.wait_for_run(deployment_id, lambda p: p == created["parameters"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    start = dt.datetime.fromisoformat(run["start_time"]).timestamp()
    served.timings["trigger_to_start_s"] = start - served.timings["emitted_at"]
    artifacts = {a["key"]: a for a in _artifacts(served, run["id"])}
    url = artifacts["proof-smart-compose-report"]["data"].split("(")[-1].rstrip(")")
    assert url.startswith(served.reports_url)
    published = served.out.resolve() / url.removeprefix(served.reports_url)
    assert published.is_file()
    assert published.parent.parent == served.out.resolve() / "smart-compose"
    results = json.loads((published.parent / "results.json").read_text())
    assert results["analysis_date"] == AS_OF.isoformat()


def test_data_landed_without_as_of_analyses_yesterday(served: Served) -> None:
    run = served.wait_for_run(
        _deployment_id(served, ANALYZE),
        lambda p: p.get("experiment_id") == "auto-triage" and p.get("as_of") == "",
    )
    assert run["state"]["type"] == "COMPLETED", run["state"]
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    dates = {
        json.loads(p.read_text())["analysis_date"]
        for p in (served.out / "auto-triage").glob("*/results.json")
    }
    assert yesterday.isoformat() in dates


def test_data_landed_with_a_bad_as_of_fails_visibly(served: Served) -> None:
    run = served.wait_for_run(
        _deployment_id(served, ANALYZE),
        lambda p: p.get("experiment_id") == "auto-triage" and p.get("as_of") == "20261120",
    )
    assert run["state"]["type"] == "FAILED"
    assert "as_of must be a date as YYYY-MM-DD" in run["state"]["message"]


def test_serve_stops_and_restarts_cleanly(served: Served) -> None:
    """SIGTERM pauses the deployments; the next `proof serve` takes them over again."""
    deployment_id = _deployment_id(served, ANALYZE)

    def all_final() -> bool | None:
        runs = served.flow_runs(deployment_id)
        return all(r["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED"} for r in runs) or None

    _wait("every run to finish", all_final, RUN_TIMEOUT, served.serve_log)
    _stop(served.processes[-1])
    assert all(served.deployment(name)["paused"] for name in DEPLOYMENTS)  # type: ignore[index]

    started = time.monotonic()
    served.start_serve()  # returns once every deployment is live again
    served.timings["serve_restart_s"] = time.monotonic() - started
    nightly = served.deployment(NIGHTLY)
    assert nightly is not None
    assert nightly["schedules"][0]["active"]
    assert "serving against" in served.serve_log.read_text()


# --------------------------------------------------------------------------- without a server


def _wiring(config_dir: Path, out: Path) -> list[dict[str, Any]]:
    return [
        {
            "deployment": f"{d.flow_name}/{d.name}",
            "entrypoint": d.entrypoint,
            "schedules": [
                s.schedule.model_dump(include={"cron", "timezone", "interval"})
                for s in d.schedules or []
            ],
            "triggers": [
                t.model_dump(include={"expect", "match", "parameters"}) for t in d.triggers
            ],
            "form": sorted(d._parameter_openapi_schema.properties),
            "defaults": sorted(d.parameters),
        }
        for d in build_deployments(config_dir, out)
    ]


def test_deployment_and_trigger_wiring_snapshot(tmp_path: Path) -> None:
    """The whole graph in one place: a change in the wiring shows up in review here."""
    graph = _wiring(make_config_dir(tmp_path), tmp_path / "reports")
    dirs = ["config_dir", "out_dir"]
    assert graph == [
        {
            "deployment": NIGHTLY,
            "entrypoint": "flows.analyze.nightly",
            "schedules": [{"cron": "0 2 * * *", "timezone": "UTC"}],
            "triggers": [],
            "form": ["as_of", "max_parallel", "no_cache", "run_id"],
            "defaults": [*dirs[:1], "max_parallel", *dirs[1:]],
        },
        {
            "deployment": ANALYZE,
            "entrypoint": "flows.analyze.analyze_experiment",
            "schedules": [],
            "triggers": [
                {
                    "expect": {"proof.data.landed"},
                    "match": {"prefect.resource.id": "proof.experiment.*"},
                    "parameters": {"experiment_id": EXPERIMENT_ID, "as_of": AS_OF_TEXT},
                }
            ],
            "form": ["as_of", "experiment_id", "no_cache", "revalidate", "run_id"],
            "defaults": dirs,
        },
        {
            "deployment": WATCH,
            "entrypoint": "flows.watch.watch_sources",
            "schedules": [{"interval": dt.timedelta(minutes=15), "timezone": "UTC"}],
            "triggers": [],
            "form": [],
            "defaults": dirs,
        },
    ]


def test_suffix_names_a_second_set_of_deployments(tmp_path: Path) -> None:
    built = build_deployments(make_config_dir(tmp_path), tmp_path / "reports", suffix="staging")
    assert [f"{d.flow_name}/{d.name}" for d in built] == [f"{n}-staging" for n in DEPLOYMENTS]


def test_run_form_schema(tmp_path: Path) -> None:
    """What the server (and a trigger) accepts, and what the UI's form checks."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    config_dir = make_config_dir(tmp_path)
    _, analyze, _ = build_deployments(config_dir, tmp_path / "reports")
    schema = analyze._parameter_openapi_schema.model_dump(exclude_unset=True)
    properties = schema["properties"]
    assert properties["experiment_id"]["enum"] == sorted(load_config(config_dir).experiments)
    assert {k: properties["as_of"][k] for k in ("type", "format")} == {
        "type": "string",
        "format": "date",
    }
    assert "default" not in properties["as_of"]
    assert "default" not in properties["run_id"]
    assert set(properties) == {"experiment_id", "as_of", "run_id", "revalidate", "no_cache"}

    def server_accepts(values: dict[str, Any]) -> bool:
        try:
            validate(analyze.parameters | values, schema, raise_on_error=True)
        except ValidationError:
            return False
        return True

    assert server_accepts({"experiment_id": "smart-compose"})
    assert server_accepts({"experiment_id": "smart-compose", "as_of": None, "run_id": None})
    # a trigger's as_of always reaches the flow, which fails visibly if it is not a date
    assert server_accepts({"experiment_id": "auto-triage", "as_of": ""})
    assert server_accepts({"experiment_id": "auto-triage", "as_of": "20261120"})
    assert not server_accepts({"experiment_id": "nope"})
    assert not server_accepts({"experiment_id": "smart-compose", "config_dir": "/elsewhere"})
    # the form (format checks on) refuses what is not a date
    assert validate({"experiment_id": "smart-compose", "as_of": "20261120"}, schema)
    assert not validate({"experiment_id": "smart-compose", "as_of": "2026-11-20"}, schema)


def test_nightly_run_form_has_a_date_field_for_as_of(tmp_path: Path) -> None:
    """Nightly's as_of is a plain date field, as analyze's: no "None" type to pick."""
    from prefect.utilities.schema_tools.validation import validate

    config_dir = make_config_dir(tmp_path)
    nightly_deployment, analyze, _ = build_deployments(config_dir, tmp_path / "reports")
    schema = nightly_deployment._parameter_openapi_schema.model_dump(exclude_unset=True)
    as_of = schema["properties"]["as_of"]
    assert as_of["type"] == "string"  # not ["string", "null"]
    assert as_of["format"] == "date"
    assert not {"anyOf", "oneOf", "allOf", "default"} & set(as_of), as_of
    assert "as_of" not in schema.get("required", [])
    analyze_as_of = analyze._parameter_openapi_schema.model_dump(exclude_unset=True)
    same = ("type", "format", "title")
    assert {k: as_of[k] for k in same} == {k: analyze_as_of["properties"]["as_of"][k] for k in same}
    assert set(as_of) == set(analyze_as_of["properties"]["as_of"])
    # the server runs it without a date (yesterday); the form refuses what is not a date
    assert not validate(nightly_deployment.parameters | {"as_of": None}, schema)
    assert not validate({"as_of": "2026-11-20"}, schema)
    assert validate({"as_of": "20261120"}, schema)


def test_flow_run_names_show_experiment_and_day(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from analysis.config import yesterday
    from flows import analyze

    def name(flow: Any, **parameters: Any) -> str:
        monkeypatch.setattr(analyze, "flow_run", SimpleNamespace(parameters=parameters))
        assert callable(flow.flow_run_name)
        text: str = flow.flow_run_name()
        return text

    day = dt.date(2026, 11, 30)
    assert name(analyze_experiment, experiment_id="smart-compose", as_of=day) == (
        "smart-compose 2026-11-30"
    )
    assert name(analyze_experiment, experiment_id="smart-compose", as_of=None) == (
        f"smart-compose {yesterday().isoformat()}"
    )
    assert name(nightly, as_of=day) == "nightly 2026-11-30"
    assert name(nightly, as_of=None) == f"nightly {yesterday().isoformat()}"
    assert callable(watch_sources.flow_run_name)
    assert watch_sources.flow_run_name().startswith("look for new data ")


def test_prefect_yaml_declares_the_same_deployments() -> None:
    """prefect.yaml (for `prefect deploy`) and flows/deployments.py (`proof deploy`) agree."""
    import yaml
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.flows import load_flow_from_entrypoint

    root = Path(__file__).resolve().parent.parent
    raw = yaml.safe_load((root / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(raw)  # what `prefect deploy` reads
    # The pull step makes the checkout the working directory: relative dirs are in it.
    [pull] = raw["pull"]
    assert "directory" in pull["prefect.deployments.steps.set_working_directory"]
    built = {d.name: d for d in build_deployments(root / "configs", root / "reports")}
    assert [d["name"] for d in raw["deployments"]] == list(built)

    for spec in raw["deployments"]:
        deployment = built[spec["name"]]
        path, function = spec["entrypoint"].split(":")
        flow = load_flow_from_entrypoint(f"{root / path}:{function}", use_placeholder_flow=False)
        assert flow.name == deployment.flow_name
        assert deployment.entrypoint == f"{path.removesuffix('.py').replace('/', '.')}.{function}"
        assert spec["work_pool"]["name"]
        assert spec["tags"] == deployment.tags
        assert spec["description"] == deployment.description

        parameters = {
            k: str((root / v).resolve()) if k in ("config_dir", "out_dir") else v
            for k, v in spec["parameters"].items()
        }
        assert parameters == deployment.parameters

        fields = {"cron", "timezone", "interval"}
        schedules = [_schedule_config_to_deployment_schedule(s) for s in spec["schedules"]]
        assert [
            (s["schedule"].model_dump(include=fields), s.get("active", True)) for s in schedules
        ] == [(s.schedule.model_dump(include=fields), s.active) for s in deployment.schedules or []]

        fields = {"name", "description", "enabled", "expect", "match", "parameters"}
        triggers = _initialize_deployment_triggers(spec["name"], spec.get("triggers", []))
        assert [t.model_dump(include=fields) for t in triggers] == [
            t.model_dump(include=fields) for t in deployment.triggers
        ]


def test_schedule_yaml_sets_cron_zone_and_parallelism(tmp_path: Path) -> None:
    config_dir = make_config_dir(tmp_path)
    (config_dir / "schedule.yaml").write_text(
        "nightly:\n  cron: '30 3 * * 1-5'\n  timezone: Europe/Berlin\n  max_parallel: 3\n"
        "watch:\n  every_minutes: 5\n"
    )
    [nightly, _, watch] = build_deployments(config_dir, tmp_path / "reports")
    assert nightly.parameters["max_parallel"] == 3
    assert nightly.schedules is not None
    assert nightly.schedules[0].schedule.model_dump(include={"cron", "timezone"}) == {
        "cron": "30 3 * * 1-5",
        "timezone": "Europe/Berlin",
    }
    assert watch.schedules is not None
    assert watch.schedules[0].schedule.model_dump()["interval"] == dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ("nightly:\n  cron: 'every night'\n", "nightly.cron", "cron"),
        ("nightly:\n  timezone: Mars/Olympus\n", "nightly.timezone", "unknown time zone"),
        ("watch:\n  every_minutes: 0\n", "watch.every_minutes", "greater than or equal to 1"),
        ("nightly:\n  crn: '0 2 * * *'\n", "nightly.crn", "Extra inputs"),
    ],
)
def test_schedule_yaml_errors_name_the_key(
    tmp_path: Path, body: str, key: str, reason: str
) -> None:
    (tmp_path / "schedule.yaml").write_text(body)
    with pytest.raises(ConfigError) as info:
        load_schedule(tmp_path)
    assert info.value.key == key
    assert reason.lower() in info.value.reason.lower()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("", None), ("  ", None), (None, None), ("2026-11-20", dt.date(2026, 11, 20))],
)
def test_as_of_parameter_accepts_dates_and_blank(given: str | None, expected: object) -> None:
    params = analyze_experiment.validate_parameters({"experiment_id": "x", "as_of": given})
    assert params["as_of"] == expected


@pytest.mark.parametrize("given", ["20261120", "None", "2026-13-01", "yesterday"])
def test_as_of_parameter_refuses_anything_else(given: str) -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="as_of"):
        analyze_experiment.validate_parameters({"experiment_id": "x", "as_of": given})


def test_parameter_form_has_descriptions() -> None:
    schema = analyze_experiment.parameters.model_dump()
    for name in ("experiment_id", "as_of", "run_id", "revalidate", "no_cache"):
        assert schema["properties"][name].get("description"), name
    assert schema["required"] == ["experiment_id"]


def test_documented_automations_are_valid_and_render() -> None:
    """docs/automations/notify.yaml: what `prefect automation create` accepts, and its text."""
    import uuid

    import yaml
    from prefect.events import Event
    from prefect.events.schemas.automations import AutomationCore
    from prefect.server.utilities.user_templates import render_user_template_sync

    path = Path(__file__).resolve().parent.parent / "docs" / "automations" / "notify.yaml"
    text = path.read_text().replace("BLOCK_ID", str(uuid.uuid4()))
    automations = [AutomationCore.model_validate(a) for a in yaml.safe_load(text)["automations"]]
    decision, validation, fading = automations
    assert decision.trigger.model_dump()["expect"] == {"proof.decision.made"}
    assert decision.trigger.model_dump()["match"]["proof.attention"] == "true"
    assert validation.trigger.model_dump()["expect"] == {"proof.validation.failed"}

    event = Event(
        event="proof.decision.made",
        resource={
            "prefect.resource.id": "proof.experiment.smart-compose",
            "prefect.resource.name": "Smart compose",
            "proof.attention": "true",
        },
        payload={
            "recommendation": "investigate",
            "reasons": ["Sample-ratio mismatch."],
            "run_id": "r1",
            "as_of": "2026-11-20",
            "report": "file:///srv/reports/smart-compose/r1/report.html",
        },
    )
    action = decision.actions[0].model_dump()
    subject = render_user_template_sync(action["subject"], {"event": event})
    body = render_user_template_sync(action["body"], {"event": event})
    assert subject == "Proof: Smart compose — investigate"
    assert "- Sample-ratio mismatch." in body
    assert "Report: file:///srv/reports/smart-compose/r1/report.html" in body

    failed = Event(
        event="proof.validation.failed",
        resource={"prefect.resource.id": "proof.experiment.smart-compose"},
        payload={
            "run_id": "r2",
            "failed": [{"table": "events", "column": "ts", "expectation": "not_null",
                        "unexpected_count": 3}],
        },
    )  # fmt: skip
    body = render_user_template_sync(validation.actions[0].model_dump()["body"], {"event": failed})
    assert "table events, column ts: not_null (3 rows)" in body

    assert fading.trigger.model_dump()["expect"] == {"proof.effect.decaying"}
    decaying = Event(
        event="proof.effect.decaying",
        resource={
            "prefect.resource.id": "proof.experiment.summaries-holdout",
            "prefect.resource.name": "AI summaries after launch",
        },
        payload={
            "run_id": "w3",
            "as_of": "2026-11-15",
            "report": "file:///srv/reports/summaries-holdout/w3/report.html",
            "trends": [
                {"metric": "acceptance_rate", "control": None, "treatment": "ai",
                 "slope_per_week": -0.0114, "interval": [-0.0147, -0.0081]},
            ],
        },
    )  # fmt: skip
    action = fading.actions[0].model_dump()
    subject = render_user_template_sync(action["subject"], {"event": decaying})
    body = render_user_template_sync(action["body"], {"event": decaying})
    assert subject == "Proof: the effect of AI summaries after launch is fading"
    line = "- acceptance_rate (ai): -0.0114 per week, always-valid interval [-0.0147, -0.0081]"
    assert line in body
    assert "Report: file:///srv/reports/summaries-holdout/w3/report.html" in body


# --------------------------------------------------------------------------- artifact text


def _results() -> dict[str, Any]:
    comparison = {
        "metric": "task_completion_rate", "label": "Task completion | rate", "role": "primary",
        "category": "outcome", "control": "control", "treatment": "ai",
        "kind": "ratio", "goal": "increase",
        "n_control": 1000, "n_treatment": 1010, "mean_control": 0.5, "mean_treatment": 0.55,
        "diff": 0.05, "diff_ci": [0.01, 0.09],
        "lift": 0.1, "lift_ci": [0.02, 0.18], "p_value": 0.012, "p_value_adjusted": None,
        "method": "delta_method_t", "verdict": "better", "verdict_basis": "fixed_horizon",
        "cuped": {"applied": False}, "sequential": {"lift_ci": None},
    }  # fmt: skip
    secondary = comparison | {"metric": "edit_rate", "label": "Edit rate", "role": "secondary"}
    return {
        "schema_version": 1,
        "experiment_id": "smart-compose",
        "run_id": "r1",
        "analysis_date": "2026-11-20",
        "experiment": {"name": "Smart compose", "metrics": {"primary": "task_completion_rate"}},
        "data": {"units": {"control": 1000, "ai": 1010}, "events": 50_000,
                 "duplicates_dropped": 0, "crossovers_excluded": 0, "quarantined_rows": 0},
        "srm": {"p_value": 0.0004, "flagged": True, "expected": {"control": 0.5, "ai": 0.5},
                "observed": {"control": 1000, "ai": 1010}},
        "validation": {
            "success": True,
            "failed_expectations": [{"expectation": "expect_column_values_to_be_unique"}],
        },
        "comparisons": [comparison, secondary],
        "segments": [],
        "decision": {"recommendation": "investigate", "reasons": ["Sample-ratio mismatch."]},
    }  # fmt: skip


def test_markdown_summary_shows_decision_primary_metric_srm_and_validation() -> None:
    from analysis.report.summary import markdown_summary

    text = markdown_summary(_results(), "file:///r/report.html")
    assert "## Decision: **investigate**" in text
    assert "- Sample-ratio mismatch." in text
    rows = [line for line in text.splitlines() if line.startswith("| Task")]
    assert len(rows) == 1  # the primary metric only
    assert "Task completion \\| rate" in rows[0]  # a pipe in a label does not break the table
    assert "+10.0%" in rows[0]
    assert "[+2.0%, +18.0%]" in rows[0]
    assert "0.012" in rows[0]
    assert "Sample-ratio mismatch: **flagged** (p <0.001)" in text
    assert "Validation: passed with 1 warning (expect_column_values_to_be_unique)" in text
    assert "- Units: control 1,000, ai 1,010" in text
    assert text.rstrip().endswith("[Open the report](file:///r/report.html)")


def test_comparison_rows_are_formatted_as_the_report_shows_them() -> None:
    from analysis.report.summary import comparison_rows

    rows = comparison_rows(_results())
    assert [r["metric"] for r in rows] == ["Task completion | rate", "Edit rate"]
    assert rows[0]["lift"] == "+10.0%"
    assert rows[0]["interval"] == "[+2.0%, +18.0%]"
    json.dumps(rows, allow_nan=False)  # a table artifact takes JSON, not a DataFrame
    no_ci = _results()
    no_ci["comparisons"][0]["lift_ci"] = None
    assert comparison_rows(no_ci)[0]["interval"] == "\u2013"


def test_nightly_markdown_lists_failures_too() -> None:
    from analysis.report.summary import nightly_markdown

    text = nightly_markdown(
        [
            {"experiment_id": "a", "decision": "ship", "report": "/r/a/1/report.html"},
            {"experiment_id": "b", "error": "no parquet file matches x|y"},
        ]
    )
    assert "| a | ship | /r/a/1/report.html |" in text
    assert "| b | **failed**: no parquet file matches x\\|y | – |" in text
    assert text.rstrip().endswith("1 analysed, 1 failed.")
