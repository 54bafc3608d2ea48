"""A run's id and its default analysis date, checked before any config is read."""

from __future__ import annotations

import datetime as dt
import re

from analysis.config.base import _IDENTIFIER, ConfigError, _reserved_reason


class RunIdError(ConfigError):
    """A run id that cannot name a run's report folder (``--run-id``, a flow's ``run_id``)."""

    def __init__(self, what: str, run_id: str, reason: str) -> None:
        ValueError.__init__(self, f"{what} {run_id!r} {reason}")
        self.path, self.key, self.reason = what, "", reason


class AsOfError(ConfigError):
    """An analysis date with nothing to analyse: in the future, or before the experiment began."""

    def __init__(self, reason: str) -> None:
        ValueError.__init__(self, reason)
        self.path, self.key, self.reason = "as_of", "", reason


def check_as_of(
    as_of: dt.date, start: dt.date | None = None, *, today: dt.date | None = None
) -> dt.date:
    """``as_of`` if a run can analyse it; else :class:`AsOfError` saying why.

    A date after today (UTC) has no data yet: its report would show a verdict
    on days that have not happened. A date before the experiment's ``start``
    has no unit assigned: its report would say "keep running" with 0 units.
    Today itself is allowed (the events so far).
    """
    today = today or dt.datetime.now(dt.UTC).date()
    if as_of > today:
        raise AsOfError(
            f"the analysis date {as_of} is in the future (today is {today}, UTC): "
            "there is no data for it yet; leave it out for yesterday"
        )
    if start is not None and as_of < start:
        raise AsOfError(
            f"the analysis date {as_of} is before the experiment's start ({start}): "
            "no unit was assigned yet; pick a date from the start on"
        )
    return as_of


def yesterday() -> dt.date:
    """The default analysis date: the last whole UTC day."""
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def validate_run_id(run_id: str, what: str = "run id") -> str:
    """``run_id`` if it can name a run's report folder; else :class:`RunIdError`.

    The rule of experiment ids (letters, digits, ``_ . -``, starting with a
    letter or digit, at most 100 characters), and no name ending in ``.html``:
    so no path separator, no ``..``, no hidden name (``.tmp-*`` and ``.old-*``
    are the publisher's own).  Checked before anything is read or computed.
    """
    rule = "; use letters, digits, '_', '.' and '-', starting with a letter or digit"
    if not run_id:
        reason = "is empty: leave the run id out for the UTC time"
    elif "/" in run_id or "\\" in run_id:
        reason = "holds a path separator: a run id names one folder"
    elif run_id.startswith("."):
        reason = "starts with '.': hidden names are Proof's own (.tmp-*, .old-*)"
    elif len(run_id) > 100:
        reason = "is longer than 100 characters"
    elif not re.fullmatch(_IDENTIFIER, run_id):
        reason = "holds a character that is not allowed"
    else:
        reserved = _reserved_reason(run_id)
        if reserved is None:
            return run_id
        reason = reserved
    raise RunIdError(what, run_id, f"cannot name the run's folder: {reason}{rule}")
