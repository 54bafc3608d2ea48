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


#: The environment variable that sets how many processes validate events at once.
VALIDATION_WORKERS_ENV = "PROOF_VALIDATION_WORKERS"


def validation_workers() -> int:
    """``PROOF_VALIDATION_WORKERS`` (default 1): processes that run GX over event
    batches at once, the run's own and ``N - 1`` spawned workers.

    Each worker holds at most two batches (of at most 2M rows, about 1-2 GB as
    pandas) and its own GX; 1 validates in the run's process alone. Not the
    cores by default: on two cores, two processes checked 32M events in 42-49 s
    against 48-52 s, and 10.7M in 14.6-14.8 s against 13.2-13.9 s (a worker
    starts a Python and imports GX, and shares the cores with polars), docs/cli.md.
    """
    from analysis.config.base import ConfigError  # a run's expected stop: no traceback

    value = env(VALIDATION_WORKERS_ENV)
    if value is None:
        return 1
    workers = int(value) if value.strip().isdigit() else 0
    if workers < 1:
        raise ConfigError(
            "environment",
            VALIDATION_WORKERS_ENV,
            f"{value!r} is not a whole number of processes, 1 or more",
        )
    return workers
