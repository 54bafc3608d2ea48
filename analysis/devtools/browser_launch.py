"""Finding and launching Chromium for :mod:`analysis.devtools.browser`, and serving a site.

Chromium (Debian's ``chromium``) runs headless with every host name except
127.0.0.1 unresolvable (:data:`_FLAGS`), so a page that needs the network fails
loudly; :func:`serve_directory` serves the published site on 127.0.0.1 from a
thread.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from analysis.report.reports_server import start_reports_server

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


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port) and yield the base URL:
    the reports server of ``proof serve`` (:mod:`analysis.report.reports_server`)."""
    server = start_reports_server(root, 0)
    try:
        yield server.url
    finally:
        server.stop()
