"""Prefect flows and the ``proof`` command line: orchestration only."""

import os

# Prefect reads these when it is first imported; the CLI and the flows are the
# edge where the process environment is set (analysis/ never reads it).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_UI_ENABLED", "true")
