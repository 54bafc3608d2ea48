"""Global concurrency limits (Prefect server side), created on first use.

``exclusive(name)`` holds the one slot of a limit of size 1: across processes
and machines served by the same Prefect server, two holders never overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

INDEX = "proof-publish-index"
WAIT_SECONDS = 1800.0
_KNOWN: set[str] = set()  # "<api url>|<limit>" this process has seen exist


def publish_limit(experiment_id: str) -> str:
    """The limit held while an experiment's run is published: ``proof-publish-<id>``."""
    return "proof-publish-" + re.sub(r"[^A-Za-z0-9_.-]", "-", experiment_id)


def ensure_limit(name: str, limit: int = 1) -> None:
    """Create the global concurrency limit ``name`` unless it exists (then it is left as is).

    Read first: a create that loses to an existing limit is refused (409) but
    makes the server log a database integrity error.
    """
    key = f"{PREFECT_API_URL.value()}|{name}"
    if key in _KNOWN:
        return
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another process was faster
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit)
                )
    _KNOWN.add(key)


@contextmanager
def exclusive(name: str, timeout_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the single slot of limit ``name`` (created with size 1 if missing)."""
    ensure_limit(name)
    with concurrency(name, occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield
