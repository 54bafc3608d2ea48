"""Open published report pages in headless Chromium and check what a reader sees.

Used by ``tests/test_browser.py`` and ``scripts/check_report.py`` (``make
check-report``).  The site is served over HTTP on 127.0.0.1 from a thread;
Chromium (Debian's ``chromium``) runs headless with every host name except
127.0.0.1 unresolvable, so a page that needs the network fails loudly.  The
pages are driven through the DevTools protocol over a websocket: console
errors, uncaught exceptions and failed loads are collected, the DOM is
queried once the Plotly figures have drawn, and screenshots are taken.

Nothing here is imported by the analysis or the report renderer.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from websockets.sync.client import ClientConnection, connect

__all__ = [
    "Browser",
    "BrowserError",
    "PageCheck",
    "find_chromium",
    "serve_directory",
]

CHROMIUM_NAMES: Final[tuple[str, ...]] = ("chromium", "chromium-browser", "google-chrome")
DESKTOP: Final = (1280, 900)
PHONE: Final = (390, 844)
_FLAGS: Final[tuple[str, ...]] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--no-proxy-server",
    # Loopback only: any other host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

#: Runs in the page once the figures have drawn; returns what the checks need.
_PROBE: Final = """
(() => {
  const visible = (el) => {
    if (!el) { return null; }
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return {top: r.top, bottom: r.bottom, height: r.height, text: el.innerText.slice(0, 400),
            shown: r.height > 0 && r.width > 0 && s.visibility !== "hidden"
              && s.display !== "none"};
  };
  const figures = Array.from(document.querySelectorAll(".plotly-graph-div")).map((d) => ({
    id: d.id, svg: d.querySelectorAll(".main-svg").length}));
  const ids = Array.from(document.querySelectorAll("[id]")).map((e) => e.id);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  const paint = performance.getEntriesByType("paint")
    .find((e) => e.name === "first-contentful-paint");
  const wanted = %s;
  const elements = {};
  for (const sel of wanted) { elements[sel] = visible(document.querySelector(sel)); }
  return {title: document.title, figures: figures, elements: elements,
          scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          innerHeight: window.innerHeight, xss: window.__xss === true, duplicates: duplicates,
          firstPaintMs: paint ? paint.startTime : null};
})()
"""
_FIGURES_DRAWN: Final = """
(() => {
  if (document.querySelector(".proof-figure") !== null) {  // Proof's loader says when it is done
    return document.documentElement.getAttribute("data-figures") === "drawn";
  }
  return Array.from(document.querySelectorAll(".plotly-graph-div"))
    .every((x) => x.querySelector(".main-svg") !== null);
})()
"""

_PAINTED: Final = """
new Promise((resolve) => requestAnimationFrame(() => resolve(
  performance.getEntriesByType("paint").some((e) => e.name === "first-contentful-paint"))))
"""


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or did not answer."""


def find_chromium() -> str:
    """The path of a Chromium executable; BrowserError naming how to install one if none."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    msg = (
        "no Chromium found (looked for: " + ", ".join(CHROMIUM_NAMES) + "). Install Debian's "
        "chromium: apt-get install -y chromium"
    )
    raise BrowserError(msg)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) and yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="report-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class PageCheck:
    """What a reader of one page saw, and what went wrong."""

    url: str
    viewport: tuple[int, int]
    title: str = ""
    errors: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)  # div id -> number of SVG layers
    elements: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)
    overflow_px: int = 0
    xss: bool = False
    duplicate_ids: list[str] = field(default_factory=list)
    first_paint_ms: float | None = None
    seconds: float = 0.0
    script_result: Any = None

    def problems(
        self, first_screen: Sequence[str] = (), first_paint_budget_ms: float | None = None
    ) -> list[str]:
        """Everything wrong with the page, as sentences; empty when it is fine.

        ``first_screen``: selectors that must be visible without scrolling.
        ``first_paint_budget_ms``: the longest acceptable first contentful paint.
        """
        found = [f"console/page error: {e}" for e in self.errors]
        found += [f"duplicate element id {i!r}" for i in self.duplicate_ids]
        if first_paint_budget_ms is not None and (
            self.first_paint_ms is None or self.first_paint_ms > first_paint_budget_ms
        ):
            found.append(
                f"first paint after {self.first_paint_ms} ms (budget {first_paint_budget_ms:.0f})"
            )
        found += [f"figure #{fid} has no SVG" for fid, n in self.figures.items() if n == 0]
        for selector in first_screen:
            box = self.elements.get(selector)
            if box is None:
                found.append(f"{selector} is missing")
            elif not box["shown"]:
                found.append(f"{selector} is not visible")
            elif float(box["top"]) >= self.viewport[1]:
                found.append(f"{selector} starts below the first screen (top {box['top']:.0f}px)")
        if self.overflow_px > 1:
            found.append(f"the page scrolls sideways by {self.overflow_px}px")
        if self.xss:
            found.append("an injected script ran (window.__xss is set)")
        return [f"{self.url} @{self.viewport[0]}px: {p}" for p in found]


class Browser:
    """One headless Chromium, driven over the DevTools protocol; use as a context manager."""

    def __init__(self, executable: str | None = None, timeout: float = 20.0) -> None:
        self._executable = executable or find_chromium()
        self._timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="proof-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> Browser:
        profile = Path(self._profile.name) / "profile"
        log = Path(self._profile.name) / "chromium.log"
        command = [self._executable, *_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        with log.open("wb") as stderr:  # a file, not a pipe nobody reads: it cannot fill up
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self._timeout
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if self._process.poll() is not None:
                code, output = self._process.returncode, log.read_text(errors="replace")
                self._cleanup()
                msg = f"chromium exited with {code}: {output[-2000:]}"
                raise BrowserError(msg)
            if time.monotonic() > deadline:
                self._cleanup()
                msg = f"chromium did not open its DevTools port in {self._timeout:.0f} s"
                raise BrowserError(msg)
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = connect(
            f"ws://127.0.0.1:{port.strip()}{path.strip()}",
            max_size=None,
            proxy=None,
            open_timeout=self._timeout,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._send("Browser.close", timeout=5)
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                # Chromium and its helpers run in the session this object started.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGTERM)
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self._process.pid, signal.SIGKILL)
                    self._process.wait(timeout=5)
            self._process = None
        self._profile.cleanup()

    # ----------------------------------------------------------------- protocol

    def _send(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        session: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        if self._ws is None:
            msg = "the browser is not running"
            raise BrowserError(msg)
        self._next_id += 1
        message: dict[str, Any] = {
            "id": self._next_id,
            "method": method,
            "params": dict(params or {}),
        }
        if session is not None:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self._timeout)
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    msg = f"{method}: {reply['error']}"
                    raise BrowserError(msg)
                result: dict[str, Any] = reply.get("result") or {}
                return result
            self._events.append(reply)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        assert self._ws is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"no answer from chromium for {waiting_for}"
            raise BrowserError(msg)
        try:
            raw = self._ws.recv(timeout=remaining)
        except TimeoutError as exc:
            msg = f"no answer from chromium for {waiting_for}"
            raise BrowserError(msg) from exc
        data: dict[str, Any] = json.loads(raw)
        return data

    def _wait_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(index)
            self._events.append(self._receive(deadline, method))

    def _evaluate(self, expression: str, session: str) -> Any:
        result = self._send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session,
        )
        if "exceptionDetails" in result:
            msg = f"page script failed: {result['exceptionDetails']}"
            raise BrowserError(msg)
        return result.get("result", {}).get("value")

    def _errors(self, session: str) -> list[str]:
        errors: list[str] = []
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params") or {}
            method = event.get("method")
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails") or {}
                exception = details.get("exception") or {}
                errors.append(str(exception.get("description") or details.get("text")))
            elif method == "Runtime.consoleAPICalled":
                args = params.get("args") or []
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                # Plotly reports bad figure attributes as console.trace("WARN:", ...).
                if params.get("type") in {"error", "assert", "warning"} or (
                    params.get("type") == "trace" and text.startswith("WARN:")
                ):
                    errors.append(f"console.{params.get('type')}: {text}")
            elif method == "Log.entryAdded":
                entry = params.get("entry") or {}
                if entry.get("level") == "error":
                    errors.append(f"{entry.get('text')} {entry.get('url') or ''}".strip())
        return errors

    # ----------------------------------------------------------------- pages

    def check(
        self,
        url: str,
        viewport: tuple[int, int] = DESKTOP,
        elements: Sequence[str] = (),
        screenshot: Path | None = None,
        script: str | None = None,
    ) -> PageCheck:
        """Load ``url`` at ``viewport`` (width, height), wait for the figures, and probe it.

        ``elements``: CSS selectors whose position and visibility to report.
        ``screenshot``: where to save a PNG of the first screen.
        ``script``: a JavaScript expression to evaluate last (a promise is awaited);
        its JSON value is ``script_result``.
        """
        started = time.monotonic()
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = str(
            self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        )
        try:
            for domain in ("Page", "Runtime", "Log"):
                self._send(f"{domain}.enable", session=session)
            width, height = viewport
            self._send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700},
                session,
            )
            navigation = self._send("Page.navigate", {"url": url}, session)
            if navigation.get("errorText"):
                msg = f"{url}: {navigation['errorText']}"
                raise BrowserError(msg)
            self._wait_event("Page.loadEventFired", session)
            deadline = time.monotonic() + self._timeout
            while not self._evaluate(_FIGURES_DRAWN, session) and time.monotonic() < deadline:
                time.sleep(0.1)
            while not self._evaluate(_PAINTED, session) and time.monotonic() < deadline + 3:
                time.sleep(0.05)
            probe = self._evaluate(_PROBE % json.dumps(list(elements)), session)
            if screenshot is not None:
                shot = self._send("Page.captureScreenshot", {"format": "png"}, session)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            script_result = self._evaluate(script, session) if script is not None else None
            return PageCheck(
                url=url,
                viewport=viewport,
                title=str(probe["title"]),
                errors=self._errors(session),
                figures={str(f["id"]): int(f["svg"]) for f in probe["figures"]},
                elements=dict(probe["elements"]),
                overflow_px=int(probe["scrollWidth"]) - int(probe["innerWidth"]),
                xss=bool(probe["xss"]),
                duplicate_ids=[str(i) for i in probe["duplicates"]],
                first_paint_ms=probe["firstPaintMs"],
                script_result=script_result,
                seconds=time.monotonic() - started,
            )
        finally:
            self._send("Target.closeTarget", {"targetId": target})
            self._events = [e for e in self._events if e.get("sessionId") != session]
