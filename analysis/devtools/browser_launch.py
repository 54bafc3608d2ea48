"""Finding and launching Chromium for :mod:`analysis.devtools.browser`, and serving a site.

Chromium (Debian's ``chromium``) runs headless with every host name except
127.0.0.1 unresolvable (:data:`_FLAGS`), so a page that needs the network fails
loudly; :func:`serve_directory` serves the published site on 127.0.0.1 from a
thread.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

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
