"""Prefect flows and the ``proof`` command line: orchestration only."""

import os

# Prefect reads these when it is first imported; the CLI and the flows are the
# edge where the process environment is set (analysis/ never reads it).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_UI_ENABLED", "true")
# The first start of the temporary local server migrates its database, which
# takes longer than Prefect's 20 s default on a busy two-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
