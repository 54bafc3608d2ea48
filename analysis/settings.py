"""The one place that reads the process environment.

Secrets (database URIs) come from the environment, never from a committed file;
they are read here on demand, never at import time, and never logged.
"""

from __future__ import annotations

import os


def env(name: str) -> str | None:
    """The value of environment variable ``name``, or None when unset or empty."""
    value = os.environ.get(name)
    return value or None


def flag_spark_connect_client() -> None:
    """Mark the process a Spark Connect client: pyspark's column functions (GX's Spark
    engine builds its metrics from them) then go to the server. For the process, as a
    process runs one Spark master."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"


def is_spark_connect_client() -> bool:
    """Whether :func:`flag_spark_connect_client` (or the user) made this process one."""
    return env("SPARK_CONNECT_MODE_ENABLED") is not None
