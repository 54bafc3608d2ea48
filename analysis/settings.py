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
