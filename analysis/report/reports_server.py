"""The reports dir over HTTP on 127.0.0.1, for the report links of ``proof serve``.

A browser does not follow a ``file://`` link from the Prefect UI; an
``http://127.0.0.1:<port>/`` one it opens. ``proof serve`` starts this server
(the standard library's, in a daemon thread) and links its runs' reports under
it, unless ``PROOF_REPORTS_URL`` names a real web server or bucket.

It serves the published site only: files and folders whose name starts with a
dot (``.cache`` with its partial aggregates and validation results, lock files)
are answered with 404.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["HOST", "ReportsServer", "start_reports_server"]

HOST = "127.0.0.1"
_log = logging.getLogger("proof.reports_server")


class _ReportsHandler(SimpleHTTPRequestHandler):
    """Static files of the reports dir; hidden paths are not found; access logged at DEBUG."""

    def _hidden(self) -> bool:
        path = unquote(urlsplit(self.path).path)
        return any(part.startswith(".") for part in path.split("/") if part)

    def do_GET(self) -> None:
        if self._hidden():
            self.send_error(404)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if self._hidden():
            self.send_error(404)
            return
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)


class ReportsServer:
    """A running reports server: its ``url``; :meth:`stop` ends it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def port(self) -> int:
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_reports_server(directory: Path | str, port: int) -> ReportsServer:
    """Serve ``directory`` on 127.0.0.1:``port`` (0: a free port) from a daemon thread.

    The directory is created if it does not exist yet (no run has published).
    Raises OSError when the port is taken.
    """
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    handler = partial(_ReportsHandler, directory=str(root))
    httpd = ThreadingHTTPServer((HOST, port), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="proof-reports-server", daemon=True)
    thread.start()
    return ReportsServer(httpd, thread)
