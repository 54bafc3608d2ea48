"""The URL a run's report is linked by (Prefect artifacts, ``proof.decision.made`` events).

A browser opens an ``http(s)://`` link from the Prefect UI, not a ``file://`` one.
So a report is linked under a base URL when there is one: ``PROOF_REPORTS_URL``
(a web server or bucket that serves the reports dir, e.g.
``https://reports.example.com/proof/``), or the local reports server of
``proof serve`` (``http://127.0.0.1:8765/``). Without one (``proof run``), the
link is the report's ``file://`` URI, which a browser on the same machine opens
from an address bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final
from urllib.parse import quote, urlsplit

__all__ = ["REPORTS_URL_ENV", "check_base_url", "report_link"]

#: The environment variable that names the base URL the reports dir is served under.
REPORTS_URL_ENV: Final = "PROOF_REPORTS_URL"


def check_base_url(url: str) -> str:
    """``url`` as a base URL for report links (ending in ``/``), or ValueError.

    Only ``http``/``https`` URLs with a host, and no user name, password, query
    or fragment: the link lands in artifacts and events that anyone with access
    to the Prefect UI reads, so no credential may ride along in it.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{REPORTS_URL_ENV} must be an http(s) URL with a host, not {url!r}"
        raise ValueError(msg)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        msg = (
            f"{REPORTS_URL_ENV} must not carry a user name, password, query or fragment "
            "(it is shown in Prefect artifacts and events)"
        )
        raise ValueError(msg)
    text = parts.geturl()
    return text if text.endswith("/") else f"{text}/"


def report_link(out_dir: Path | str, run_dir: Path | str, base_url: str | None) -> str:
    """The link to ``run_dir/report.html``, a run folder published under ``out_dir``.

    With ``base_url`` (the URL that serves ``out_dir``; a path in it is kept): the
    base joined with the report's path below ``out_dir``, each part URL-quoted.
    Without one, or for a run folder outside ``out_dir``: the ``file://`` URI.
    """
    report = Path(run_dir).resolve() / "report.html"
    if not base_url:
        return report.as_uri()
    try:
        relative = report.relative_to(Path(out_dir).resolve())
    except ValueError:  # not below the served dir: no URL of the base reaches it
        return report.as_uri()
    base = base_url if base_url.endswith("/") else f"{base_url}/"
    return base + "/".join(quote(part, safe="") for part in relative.parts)
