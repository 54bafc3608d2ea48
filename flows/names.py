"""The names the Prefect UI shows: each flow's, and the name of its deployment.

Apart from the flows (which import Prefect), so that ``proof --help`` can name
the deployments without importing Prefect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

NIGHTLY: Final = "nightly"
ANALYZE_EXPERIMENT: Final = "analyze-experiment"
WATCH_SOURCES: Final = "watch-sources"

# Deployment names say what a deployment does; the UI shows them under the flow's name.
DEPLOYMENT_NAMES: Final[Mapping[str, str]] = {
    NIGHTLY: "nightly-all-experiments",
    ANALYZE_EXPERIMENT: "analyze-one-experiment",
    WATCH_SOURCES: "watch-for-new-data",
}


def deployment_name(flow_name: str, suffix: str = "") -> str:
    """``nightly`` -> ``nightly-all-experiments`` (``-<suffix>`` appended when given)."""
    base = DEPLOYMENT_NAMES[flow_name]
    return f"{base}-{suffix}" if suffix else base
