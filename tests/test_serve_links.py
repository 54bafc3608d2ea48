"""Report links a PM can open, the artifacts' text, the reports server, and serve's shutdown.

- :func:`analysis.report.links.report_link`: ``file://`` without a base URL, the
  local reports server's or a configured base URL (with a path) otherwise, every
  path part URL-quoted.
- The summary and comparisons artifacts say what the report says, formatted as
  it does.
- :func:`analysis.report.reports_server.start_reports_server` serves a published report
  (and nothing hidden under the reports dir).
- ``proof serve`` ends within seconds of SIGTERM once its Prefect server has gone
  (real processes; Prefect's own pause on shutdown retried for over a minute).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from analysis.report.links import check_base_url, report_link
from analysis.report.publish import publish_run
from analysis.report.reports_server import start_reports_server
from analysis.report.sections_comparisons import comparison_row
from analysis.report.summary import comparison_rows, markdown_summary
from analysis.report.text import fmt_ci, fmt_lift
from analysis.results.records import ComparisonRecord
from tests.conftest import make_config_dir
from tests.test_deployments import (
    DEPLOYMENTS,
    _free_port,
    _results,
    _stop,
    _wait,
    serve_env,
    start_prefect_server,
)

# --------------------------------------------------------------------------- report_link


def test_report_link_without_a_base_url_is_the_file_uri(tmp_path: Path) -> None:
    run_dir = tmp_path / "reports" / "smart-compose" / "r1"
    link = report_link(tmp_path / "reports", run_dir, None)
    assert link == (run_dir / "report.html").resolve().as_uri()
    assert link.startswith("file:///")


def test_report_link_under_the_local_reports_server(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    link = report_link(out, out / "smart-compose" / "20261120T020000Z", "http://127.0.0.1:8765/")
    assert link == "http://127.0.0.1:8765/smart-compose/20261120T020000Z/report.html"


@pytest.mark.parametrize(
    "base", ["https://reports.example.com/proof/", "https://reports.example.com/proof"]
)
def test_report_link_keeps_the_path_of_a_configured_base_url(tmp_path: Path, base: str) -> None:
    out = tmp_path / "reports"
    link = report_link(out, out / "auto-triage" / "r2", base)
    assert link == "https://reports.example.com/proof/auto-triage/r2/report.html"


def test_report_link_quotes_odd_run_ids(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    link = report_link(out, out / "smart compose" / "run #2?x=1&y%", "http://127.0.0.1:8765/")
    assert link == "http://127.0.0.1:8765/smart%20compose/run%20%232%3Fx%3D1%26y%25/report.html"


def test_report_link_of_a_run_outside_the_served_dir_is_the_file_uri(tmp_path: Path) -> None:
    run_dir = tmp_path / "elsewhere" / "r1"
    link = report_link(tmp_path / "reports", run_dir, "http://127.0.0.1:8765/")
    assert link == (run_dir / "report.html").resolve().as_uri()


def test_a_relative_out_dir_links_like_an_absolute_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    link = report_link("reports", Path("reports") / "e" / "r", "http://127.0.0.1:8765/")
    assert link == "http://127.0.0.1:8765/e/r/report.html"


def test_base_urls_end_in_a_slash_and_carry_no_credentials() -> None:
    assert check_base_url("https://reports.example.com/proof") == (
        "https://reports.example.com/proof/"
    )
    assert check_base_url("http://127.0.0.1:8765/") == "http://127.0.0.1:8765/"
    for bad in (
        "reports.example.com/proof",  # no scheme
        "ftp://reports.example.com/",
        "file:///srv/reports/",
        "https://user:secret@reports.example.com/",
        "https://reports.example.com/?token=secret",
        "https://reports.example.com/#frag",
    ):
        with pytest.raises(ValueError, match="PROOF_REPORTS_URL"):
            check_base_url(bad)


# --------------------------------------------------------------------------- artifact text


def _with_validation(failed: list[dict[str, Any]], success: bool = True) -> dict[str, Any]:
    results = _results()
    results["validation"] = {"success": success, "failed_expectations": failed}
    return results


def test_summary_says_passed_with_warnings() -> None:
    warned = [
        {"expectation": "expect_column_values_to_be_unique", "severity": "warning"},
        {"expectation": "expect_column_values_to_not_be_null", "severity": "warning"},
    ]
    text = markdown_summary(_with_validation(warned))
    assert (
        "- Validation: passed with 2 warnings "
        "(expect_column_values_to_be_unique, expect_column_values_to_not_be_null)"
    ) in text
    assert "expectation(s) failed" not in text
    assert "- Validation: passed\n" in markdown_summary(_with_validation([]))
    failed = [{"expectation": "expect_column_values_to_not_be_null", "severity": "critical"}]
    assert "- Validation: **failed**: 1 critical, 1 warning (" in markdown_summary(
        _with_validation(failed + warned[:1], success=False)
    )
    assert (
        "- Validation: **failed**: 1 critical (expect_column_values_to_not_be_null)\n"
        in markdown_summary(_with_validation(failed, success=False))
    )


def test_comparisons_table_reads_like_the_report() -> None:
    results = _results()
    results["comparisons"][1] |= {"lift": -0.034, "lift_ci": [-0.061, -0.007], "verdict": "worse"}
    rows = comparison_rows(results)
    assert rows == [
        {
            "metric": "Task completion | rate",  # the display name, not task_completion_rate
            "arms": "ai vs control",
            "lift": "+10.0%",
            "interval": "[+2.0%, +18.0%]",
            "p (adjusted)": "0.012",
            "verdict": "better",
        },
        {
            "metric": "Edit rate",
            "arms": "ai vs control",
            "lift": "\u22123.4%",  # a typographic minus, as in the report
            "interval": "[\u22126.1%, \u22120.7%]",
            "p (adjusted)": "0.012",
            "verdict": "worse",
        },
    ]
    # the very numbers of the report's scorecard row, in its formats
    for row, raw in zip(rows, results["comparisons"], strict=True):
        scorecard = comparison_row(ComparisonRecord.model_validate(raw))
        assert row["lift"] == fmt_lift(scorecard["lift"])
        assert row["interval"] == fmt_ci(scorecard["lift_ci"])
        assert row["metric"] == scorecard["label"]


def test_comparisons_table_shows_the_numbers_the_verdict_read() -> None:
    results = _results()
    results["comparisons"][0] |= {
        "verdict_basis": "fixed_horizon_cuped",
        "cuped": {"applied": True, "lift": 0.08, "lift_ci": [0.03, 0.13], "p_value": 0.002},
    }
    [row, _] = comparison_rows(results)
    assert (row["lift"], row["interval"]) == ("+8.0%", "[+3.0%, +13.0%]")


# --------------------------------------------------------------------------- reports server


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_reports_server_serves_a_published_report(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    page = "<!doctype html><title>Smart compose</title><h1>ship</h1>"
    run_dir = publish_run(out, "smart-compose", "ui-run", {"report.html": page})
    odd = out / "odd dir" / "run #2"
    odd.mkdir(parents=True)
    (odd / "report.html").write_text("odd", encoding="utf-8")
    (out / ".cache").mkdir()
    (out / ".cache" / "partials.parquet").write_bytes(b"per-unit data")

    server = start_reports_server(out, 0)  # a free port
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        status, body = _fetch(report_link(out, run_dir, server.url))
        assert (status, body.decode()) == (200, page)
        assert _fetch(report_link(out, odd, server.url)) == (200, b"odd")
        assert _fetch(f"{server.url}.cache/partials.parquet")[0] == 404
        assert _fetch(f"{server.url}%2Ecache/partials.parquet")[0] == 404
        assert _fetch(f"{server.url}smart-compose/no-such-run/report.html")[0] == 404
    finally:
        server.stop()


def test_reports_server_creates_a_missing_reports_dir(tmp_path: Path) -> None:
    server = start_reports_server(tmp_path / "not-yet", 0)
    try:
        assert (tmp_path / "not-yet").is_dir()
        assert _fetch(server.url)[0] == 200  # an empty listing
    finally:
        server.stop()


# --------------------------------------------------------------------------- shutdown


@pytest.mark.alone  # times the exit: a test on the other core would stretch it
def test_serve_exits_promptly_on_sigterm_after_its_server_is_gone(tmp_path: Path) -> None:
    """Prefect's pause on shutdown retried the gone server for over a minute (exit 1)."""
    config_dir = make_config_dir(tmp_path)
    port, reports_port = _free_port(), _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = serve_env(tmp_path, api)
    serve_log = tmp_path / "serve.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        server = start_prefect_server(port, env, tmp_path / "server.log", processes)
        with serve_log.open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "flows.cli", "serve", "--config-dir", str(config_dir),
                 "--out", str(tmp_path / "reports"), "--reports-port", str(reports_port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        processes.append(serve)

        def live() -> bool | None:
            if serve.poll() is not None:
                pytest.fail(f"proof serve exited:\n{serve_log.read_text()[-4000:]}")
            found = []
            for name in DEPLOYMENTS:
                response = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
                found.append(response.status_code == 200 and not response.json()["paused"])
            return all(found) or None

        _wait("the deployments", live, 120, serve_log)
        assert _fetch(f"http://127.0.0.1:{reports_port}/")[0] == 200  # its reports server

        os.killpg(server.pid, signal.SIGKILL)  # the Prefect server is gone
        server.wait(timeout=10)
        time.sleep(1)  # serve's client notices (its websocket closes)
        started = time.monotonic()
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            code = serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"proof serve still runs 30 s after SIGTERM:\n{serve_log.read_text()}")
        took = time.monotonic() - started
        log_text = serve_log.read_text(errors="replace")
        assert took < 10, f"{took:.1f} s\n{log_text[-4000:]}"
        assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), log_text[-4000:]
        assert "were not paused" in log_text
    finally:
        for process in reversed(processes):
            _stop(process)


def test_proof_server_on_another_port_serves_a_ui_that_calls_that_port(tmp_path: Path) -> None:
    """The UI asks /ui-settings for its API; on a port other than 4200 it must name that port."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_API")}
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "server", "--port", str(port)],
        env=env | {"PREFECT_HOME": str(tmp_path / "prefect")},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=2) as r:
                    settings = json.load(r)
                break
            except OSError:
                assert server.poll() is None, "proof server exited"
                assert time.monotonic() < deadline, "proof server did not start"
                time.sleep(0.5)
        assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_a_sigterm_before_prefects_runner_starts_still_pauses_the_deployments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefect installs its SIGTERM handler only in the runner's start, after it has
    registered the deployments (and imported its web server): a SIGTERM in that gap
    killed ``proof serve`` without pausing them (seen in CI under load)."""
    from flows import deployments

    paused: list[list[str]] = []

    def registers_then_is_terminated(*served: Any, **options: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # before any handler of Prefect's
        time.sleep(5)  # the handler interrupts this
        pytest.fail("SIGTERM did not interrupt proof serve")

    monkeypatch.setattr(deployments, "serve", registers_then_is_terminated)
    monkeypatch.setattr(deployments, "pause_deployments", paused.append)
    previous = signal.getsignal(signal.SIGTERM)
    deployments.serve_deployments(make_config_dir(tmp_path), tmp_path / "reports")
    assert paused == [list(DEPLOYMENTS)]
    assert signal.getsignal(signal.SIGTERM) == previous  # the process's own handler is back
