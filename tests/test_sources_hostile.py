"""Hostile or wrong source configs: nothing injected runs, nothing hopeless is retried.

- ``columns:`` values and table names reach the database only as quoted (or
  refused) identifiers, on every path that builds SQL from them: a payload that
  would call ``pg_sleep`` fails at once with an error naming the column or table.
- A login the database refuses (unknown role, wrong password) or an unknown
  database fails at once, with a one-line error naming the source and the
  reason, and is not retried; a database that does not answer still is.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlglot
from prefect.states import Failed
from sqlglot import exp

from analysis import schema
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource, SqlSource
from analysis.sources.coverage import event_coverage
from analysis.sources.errors import SourceError, SourceSchemaError, retryable
from analysis.sources.read import read_experiment
from analysis.sql.aggregate import compile_queries
from analysis.sql.database import check_source
from flows.analyze import check
from tests.conftest import CONFIGS, make_config_dir
from tests.pg_factories import PG_URI, throwaway_schema

T0 = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
PERIOD = (T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=1))
SLEEP = 3.0
#: Well under the payloads' sleep, with room for a slow machine.
FAST = 2.0

#: Payloads for ``columns:``. The first is valid SQL when pasted between double
#: quotes into the assignments query: on the code as found, it slept.
COLUMN_PAYLOADS = [
    ("experiment_id", 'experiment_id" IS NULL OR (SELECT pg_sleep(3)) IS NULL OR "experiment_id'),
    ("unit_id", 'user_id" , pg_sleep(3) --'),
    ("unit_id", 'user_id" IS NOT NULL AND (SELECT pg_sleep(3)) IS NULL OR "user_id'),
    ("ts", 'Event Time" IS NOT NULL AND (SELECT pg_sleep(3)) IS NULL OR "Event Time'),
]  # fmt: skip
TABLE_PAYLOADS = [
    ("assignments", '{schema}.assignments" WHERE (SELECT pg_sleep(3)) IS NULL --'),
    ("events", "{schema}.events; SELECT pg_sleep(3); --"),
]


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """Assignments keyed by ``user_id``, events by ``user_id``, one odd column name each."""
    with throwaway_schema("proof_hostile") as (con, name):
        con.execute(
            f"CREATE TABLE {name}.assignments (experiment_id text, user_id text, variant text,"
            ' assigned_at timestamptz, "Signup Platform" text)'
        )
        con.execute(
            f'CREATE TABLE {name}.events (event_id text, user_id text, "Event Time" timestamptz,'
            ' event text, value double precision, "task""id" text)'
        )
        con.execute(
            f"INSERT INTO {name}.assignments VALUES ('exp', 'u1', 'control', %s, 'web'),"
            " ('exp', 'u2', 'ai', %s, 'ios'), ('other', 'u9', 'control', %s, 'web')",
            (T0, T0, T0),
        )
        con.execute(
            f"INSERT INTO {name}.events VALUES ('e1', 'u1', %s, 'task_started', NULL, 't1'),"
            " ('e2', 'u2', %s, 'task_started', NULL, 't2'), ('e3', NULL, %s, 'retry', NULL, NULL),"
            " ('e9', 'u9', %s, 'retry', NULL, NULL)",
            (T0, T0, T0, T0),
        )
        yield name


def _source(pg_schema: str, **changes: object) -> SqlSource:
    columns = {"unit_id": "user_id", "ts": "Event Time", "task_id": 'task"id'}
    base: dict[str, object] = {
        "kind": "sql",
        "uri_env": "PROOF_TEST_PG_URI",
        "assignments": f"{pg_schema}.assignments",
        "events": f"{pg_schema}.events",
        "columns": columns,
    }
    return SqlSource.model_validate(base | changes)


@pytest.fixture
def pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROOF_TEST_PG_URI", PG_URI)


@pytest.mark.usefixtures("pg_env")
def test_odd_but_legitimate_column_names_are_quoted_and_work(pg_schema: str) -> None:
    """Spaces, mixed case and even a double quote inside a column name are read."""
    source = _source(pg_schema)
    tables = read_experiment("pg", source, "exp", null_units=PERIOD)
    a = tables.assignments.collect().sort("unit_id")
    e = tables.events.collect().sort("event_id")
    assert a.get_column("unit_id").to_list() == ["u1", "u2"]
    assert a.get_column("Signup Platform").to_list() == ["web", "ios"]
    assert e.get_column("event_id").to_list() == ["e1", "e2", "e3"]  # e3: no unit, in period
    assert e.get_column("task_id").to_list() == ["t1", "t2", None]
    assert e.schema["ts"] == schema.UTC_MICROS
    coverage = event_coverage("pg", source, *PERIOD)
    assert (coverage.events, coverage.unassigned) == (3, 0)


def _timed(call: object) -> tuple[BaseException, float]:
    assert callable(call)
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        call()
    return info.value, time.monotonic() - started


@pytest.mark.usefixtures("pg_env")
@pytest.mark.parametrize(("contract", "payload"), COLUMN_PAYLOADS)
def test_a_column_payload_never_runs(pg_schema: str, contract: str, payload: str) -> None:
    columns = {"unit_id": "user_id", "ts": "Event Time", contract: payload}
    source = _source(pg_schema, columns=columns)
    for null_units in (None, PERIOD):
        exc, took = _timed(lambda: read_experiment("pg", source, "exp", null_units=null_units))  # noqa: B023
        assert took < FAST, f"{took:.1f} s: the payload ran"
        assert isinstance(exc, SourceSchemaError), exc
        assert "source 'pg'" in str(exc)
        assert payload in str(exc)  # the column, as configured
        assert "no such column" in str(exc)
    if contract in {"unit_id", "ts"}:
        exc, took = _timed(lambda: event_coverage("pg", source, *PERIOD))
        assert took < FAST, f"{took:.1f} s: the payload ran"
        assert "source 'pg'" in str(exc)


@pytest.mark.usefixtures("pg_env")
@pytest.mark.parametrize(("role", "payload"), TABLE_PAYLOADS)
def test_a_table_payload_never_runs(pg_schema: str, role: str, payload: str) -> None:
    source = _source(pg_schema, **{role: payload.format(schema=pg_schema)})
    for call in (
        lambda: read_experiment("pg", source, "exp", null_units=PERIOD),
        lambda: event_coverage("pg", source, *PERIOD),
    ):
        exc, took = _timed(call)
        assert took < FAST, f"{took:.1f} s: the payload ran"
        assert "source 'pg'" in str(exc)
        assert "is not valid" in str(exc)


def test_a_column_payload_is_inert_in_duckdb_too(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE assignments (experiment_id TEXT, unit_id TEXT, variant TEXT,"
            " assigned_at TIMESTAMPTZ)"
        )
        con.execute("CREATE TABLE events (event_id TEXT, unit_id TEXT, ts TIMESTAMPTZ, event TEXT)")
    # Valid SQL when pasted between double quotes: would drop the filter on the experiment.
    payload = 'experiment_id" IS NOT NULL OR "experiment_id'
    source = DuckDBSource(kind="duckdb", path=path, columns={"experiment_id": payload})
    with pytest.raises(SourceSchemaError, match="no such column"):
        read_experiment("w", source, "exp", null_units=PERIOD).assignments.collect()


@pytest.mark.usefixtures("pg_env")
@pytest.mark.parametrize(("contract", "payload"), COLUMN_PAYLOADS)
def test_push_down_checks_refuse_a_column_payload(
    pg_schema: str, contract: str, payload: str
) -> None:
    """Push-down reflects the tables first: a mapped name must be a column there."""
    source = _source(pg_schema, columns={"unit_id": "user_id", contract: payload}, pushdown=True)
    exc, took = _timed(lambda: check_source("pg", source))
    assert took < FAST
    assert isinstance(exc, SourceSchemaError), exc
    assert payload in str(exc)


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "mysql", "tsql", "trino"])
def test_push_down_sql_holds_payloads_as_identifiers(dialect: str) -> None:
    """The generated push-down SQL: one statement each, every payload one whole identifier."""
    config = load_config(CONFIGS)
    experiment = config.experiment("smart-compose")
    unit, table = COLUMN_PAYLOADS[0][1], 'events"; SELECT pg_sleep(3); --'
    queries = compile_queries(
        experiment, config.metrics_of(experiment), dt.date(2026, 11, 20), dialect,
        tables={"assignments": "analytics.assignments", "events": table},
        columns={"unit_id": unit},
    )  # fmt: skip
    for name, sql in queries.items():
        statements = sqlglot.parse(sql, read=dialect)
        assert len(statements) == 1, (dialect, name)
        tree = statements[0]
        assert tree is not None
        identifiers = {i.this for i in tree.find_all(exp.Identifier)}
        assert {unit, table} <= identifiers, (dialect, name)
        assert not any("pg_sleep" in f.sql().lower() for f in tree.find_all(exp.Anonymous))


# --------------------------------------------------------------------------- slow failures


def _pg(user: str = "postgres", database: str = "test", password: str = "") -> str:
    secret = f":{password}" if password else ""
    return f"postgresql://{user}{secret}@127.0.0.1:5432/{database}"


WRONG_LOGINS = [
    ("role", _pg(user="proof_no_such_role", password="s3cret-pass"), 'role "proof_no_such_role"'),
    ("database", _pg(database="proof_no_such_db", password="s3cret-pass"), "proof_no_such_db"),
]


@pytest.mark.parametrize(("what", "uri", "reason"), WRONG_LOGINS)
def test_a_refused_login_fails_at_once_and_is_not_retryable(
    monkeypatch: pytest.MonkeyPatch, what: str, uri: str, reason: str
) -> None:
    monkeypatch.setenv("PROOF_TEST_PG_URI", uri)
    source = _source("analytics")
    exc, took = _timed(lambda: read_experiment("pg", source, "exp", null_units=PERIOD))
    assert took < FAST, f"{took:.1f} s to fail on a wrong {what}"
    message = str(exc)
    assert "source 'pg'" in message
    assert reason in message
    assert "does not exist" in message
    assert "PROOF_TEST_PG_URI" in message  # where to fix it
    assert "s3cret-pass" not in message
    assert "\n" not in message
    assert not retryable(exc)


@pytest.mark.parametrize(
    ("message", "retry"),
    [
        ('connection failed: FATAL:  password authentication failed for user "x"', False),
        ('timed out waiting for connection: db error: FATAL: role "x" does not exist', False),
        ('db error: FATAL: database "x" does not exist', False),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "x"', False),
        ("Connection refused (os error 111)", True),
        ("server closed the connection unexpectedly", True),
        ("timed out waiting for connection: error connecting to server: timed out", True),
        ("terminating connection due to administrator command", True),
        ('relation "analytics.events" does not exist', False),
    ],
)
def test_which_failures_a_retry_can_mend(message: str, retry: bool) -> None:
    assert retryable(SourceError(f"source 'pg': cannot read ({message})")) is retry


def test_the_check_task_retries_only_what_a_retry_can_mend() -> None:
    """Prefect asks the reading task's condition; an unreachable database is still retried."""
    condition = check.retry_condition_fn
    assert condition is not None
    assert check.retries >= 1
    down = SourceError("source 'pg': cannot reach the database at 127.0.0.1:1 (refused)")
    refused = SourceError("source 'pg': login refused (role \"x\" does not exist)")
    for exc, retry in ((down, True), (ConnectionResetError(104, "reset"), True), (refused, False)):
        state = Failed(data=exc, message=repr(exc))
        assert condition(check, None, state) is retry  # type: ignore[arg-type]
    assert condition(check, None, Failed(data=ValueError("a bug"))) is False  # type: ignore[arg-type]


def _proof_run(tmp_path: Path, uri: str, *, pushdown: bool) -> tuple[int, str, float, float]:
    """`proof run` on a sql source at ``uri``, as tests/test_flows.py runs it.

    Returns the exit code, the output, the wall time, and the seconds from the
    flow run's start to the check task's final state (it reads the source) (retries included).
    """
    from prefect.settings import PREFECT_API_URL

    config_dir = make_config_dir(tmp_path)
    (config_dir / "sources.yaml").write_text(
        "sources:\n  warehouse:\n    kind: sql\n    uri_env: PROOF_TEST_LOGIN_URI\n"
        "    assignments: analytics.assignments\n    events: analytics.events\n"
        f"    pushdown: {str(pushdown).lower()}\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env["PROOF_TEST_LOGIN_URI"] = uri
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--config-dir", str(config_dir),
         "--out", str(tmp_path / "out"), "-e", "smart-compose", "--as-of", "2026-11-20"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    flow_started = _clock(output, "Beginning flow run")
    load_failed = _clock(output, "Task run 'check smart-compose'", "Finished in state Failed")
    return done.returncode, output, took, (load_failed - flow_started) % 86_400


def _clock(output: str, *parts: str) -> float:
    """Seconds since midnight of the first log line holding every one of ``parts``."""
    line = next((line for line in output.splitlines() if all(p in line for p in parts)), None)
    assert line is not None, f"no log line with {parts}:\n{output}"
    hours, minutes, seconds = line.split(" | ", 1)[0].split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.alone  # "took < 30": a test on the other core would stretch the process start
@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("pushdown", [False, True])
@pytest.mark.parametrize(("what", "uri", "reason"), WRONG_LOGINS)
def test_proof_run_stops_at_once_on_a_refused_login(
    tmp_path: Path, pushdown: bool, what: str, uri: str, reason: str
) -> None:
    code, output, took, loading = _proof_run(tmp_path, uri, pushdown=pushdown)
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "source 'warehouse'" in errors[0], errors[0]
    assert reason in errors[0], errors[0]
    assert "does not exist" in errors[0]
    assert "s3cret-pass" not in output
    assert "Traceback" not in output
    assert "Retry 1/" not in output, output
    # Retries would add 12 s (their delays), connectorx's pool 30 s per query.
    assert loading < 3, f"{loading:.1f} s in the check task on a wrong {what}\n{output}"
    # The rest is the process's start (imports, Prefect): about 16 s on this machine.
    assert took < 30, f"{took:.1f} s to fail on a wrong {what}\n{output}"
    assert not (tmp_path / "out" / "smart-compose").exists()


@pytest.mark.usefixtures("prefect_server")
def test_proof_run_still_retries_a_database_that_does_not_answer(tmp_path: Path) -> None:
    # port 1 on loopback: nothing listens there
    uri = "postgresql://proof:s3cret-pass@127.0.0.1:1/test"
    code, output, _, loading = _proof_run(tmp_path, uri, pushdown=False)
    assert code == 2, output
    assert "127.0.0.1:1" in output
    assert "s3cret-pass" not in output
    assert loading >= 12, f"{loading:.1f} s: the retries (2 s, then 10 s) did not happen\n{output}"
