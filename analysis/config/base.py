"""What every config model shares: strictness, the identifier rule, the reserved names, the error.

A model refuses unknown keys (:class:`_Strict`), so that a typo fails loudly.
An id is letters, digits, ``_ . -`` (:data:`Identifier`), and may not take a
name the output directory uses for itself (:data:`RESERVED_OUTPUT_NAMES`).
A bad config raises :class:`ConfigError` naming the file, the key path and
the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Identifier = Annotated[str, Field(pattern=_IDENTIFIER, max_length=100)]

#: Names the output directory uses for itself (analysis/report/publish.py, the caches,
#: flows/watch.py): an experiment's report folder must not take one of them.  Hidden
#: names (.cache, .state, .tmp-*) cannot be ids; names ending in .html are refused too.
RESERVED_OUTPUT_NAMES = frozenset({"index.html", "assets", ".cache", ".state"})


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid."""

    def __init__(self, path: Path | str, key: str, reason: str) -> None:
        self.path = str(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")


def _reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be a folder of the output directory, or None."""
    folded = name.casefold()
    if folded in RESERVED_OUTPUT_NAMES:
        return "is a name the output directory uses for itself"
    if folded.endswith(".html"):
        return "ends in .html, like the pages of the output directory"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
