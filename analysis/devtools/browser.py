"""Open published report pages in headless Chromium and check what a reader sees.

Used by ``tests/test_browser.py`` and ``scripts/check_report.py`` (``make
check-report``).  The site is served over HTTP on 127.0.0.1 from a thread;
Chromium (Debian's ``chromium``) runs headless with every host name except
127.0.0.1 unresolvable, so a page that needs the network fails loudly.  The
pages are driven through the DevTools protocol over a websocket: console
errors, uncaught exceptions and failed loads are collected, the DOM is
queried once the Plotly figures have drawn, and screenshots are taken.

Bars are checked for what is drawn, not only that an SVG exists: every bar
must have a fill a reader can see against the plot's background (a hatch
pattern needs a background colour; white lines on nothing are invisible), and
for the figures named in ``sample_bars`` a screenshot of each is decoded
(:func:`decode_png`) and the pixels inside every bar are counted.

This module drives Chromium (:class:`Browser`) and is the one to import from;
:mod:`analysis.devtools.browser_launch` finds Chromium, its flags, and serves
the site; :mod:`analysis.devtools.browser_checks` holds the in-page probes and
what is checked (:class:`Bar`, :class:`PageCheck`, :func:`decode_png`).

Nothing here is imported by the analysis or the report renderer.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from websockets.sync.client import ClientConnection, connect

from analysis.devtools.browser_checks import (
    _BARS,
    _FIGURE_IN_VIEW,
    _FIGURES_DRAWN,
    _INSET_PX,
    _PAINTED,
    _PROBE,
    _SEEN,
    BAR_FIGURES,
    MIN_PAINTED,
    Bar,
    PageCheck,
    decode_png,
)
from analysis.devtools.browser_launch import (
    _FLAGS,
    DESKTOP,
    PHONE,
    BrowserError,
    find_chromium,
    serve_directory,
)

__all__ = [
    "BAR_FIGURES",
    "DESKTOP",
    "MIN_PAINTED",
    "PHONE",
    "Bar",
    "Browser",
    "BrowserError",
    "PageCheck",
    "decode_png",
    "find_chromium",
    "serve_directory",
]


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
        sample_bars: Sequence[str] = (),
        figure_screenshots: Path | None = None,
    ) -> PageCheck:
        """Load ``url`` at ``viewport`` (width, height), wait for the figures, and probe it.

        ``elements``: CSS selectors whose position and visibility to report.
        ``screenshot``: where to save a PNG of the first screen.
        ``script``: a JavaScript expression to evaluate last (a promise is awaited);
        its JSON value is ``script_result``.
        ``sample_bars``: ids of figures to scroll to, screenshot and count the painted
        pixels of every bar in (``samples``); a figure not on the page is left out.
        ``figure_screenshots``: a directory to save those screenshots in, as ``<id>.png``.
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
            probe = self._evaluate(
                _PROBE.replace("__WANTED__", json.dumps(list(elements))).replace("__BARS__", _BARS),
                session,
            )
            if screenshot is not None:
                shot = self._send("Page.captureScreenshot", {"format": "png"}, session)
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            samples = {}
            for figure in sample_bars:
                sampled = self._sample_bars(session, figure, figure_screenshots)
                if sampled is not None:
                    samples[figure] = sampled
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
                bars=[Bar.from_probe(b) for b in probe["bars"]],
                samples=samples,
            )
        finally:
            self._send("Target.closeTarget", {"targetId": target})
            self._events = [e for e in self._events if e.get("sessionId") != session]

    def _sample_bars(self, session: str, figure: str, save_in: Path | None) -> list[Bar] | None:
        """Scroll to ``figure``, screenshot it, and measure how much of each bar is painted.

        None when the page has no such figure.  A bar too thin to sample inside its
        anti-aliased edge, or off the screen, keeps ``painted`` None.
        """
        script = _FIGURE_IN_VIEW.replace("__ID__", json.dumps(figure)).replace("__BARS__", _BARS)
        found = self._evaluate(script, session)
        if found is None:
            return None
        left, top = math.floor(found["left"]), math.floor(found["top"])
        width = max(1, math.ceil(found["left"] + found["width"]) - left)
        height = max(1, math.floor(found["top"] + found["height"]) - top)
        shot = self._send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "clip": {"x": left, "y": top, "width": width, "height": height, "scale": 1},
                "optimizeForSpeed": True,
            },
            session,
        )
        data = base64.b64decode(shot["data"])
        if save_in is not None:
            save_in.mkdir(parents=True, exist_ok=True)
            (save_in / f"{figure}.png").write_bytes(data)
        pixels = decode_png(data)[:, :, :3].astype(np.int16)
        bars = []
        for bar in (Bar.from_probe(b) for b in found["bars"]):
            x, y, w, h = bar.box
            x0 = max(math.ceil(x + _INSET_PX) - left, 0)
            x1 = min(math.floor(x + w - _INSET_PX) - left, pixels.shape[1])
            y0 = max(math.ceil(y + _INSET_PX) - top, 0)
            y1 = min(math.floor(y + h - _INSET_PX) - top, pixels.shape[0])
            painted = None
            if x1 > x0 and y1 > y0:
                inside = pixels[y0:y1, x0:x1]
                distance = np.abs(inside - np.array(bar.background, dtype=np.int16)).max(axis=2)
                painted = float((distance >= _SEEN).mean())
            bars.append(dataclasses.replace(bar, painted=painted))
        return bars
