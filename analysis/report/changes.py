"""What changed since the last run of the same experiment: verdicts and numbers that moved.

:func:`previous_results` finds the run published just before this one, in the
site index's order (``analysis_date``, ``generated_at``, run id);
:func:`changes_since` compares two runs' results and keeps what matters, in
plain words: the recommendation, the verdicts that changed, comparisons added
or removed, then the lifts that moved most. Nothing is estimated: the lifts
and intervals are those the verdicts read (:func:`basis_view`), formatted as
the report formats them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from analysis.report.formatting import basis_view
from analysis.report.text import finite, fmt_lift
from analysis.results.model import SCHEMA_VERSION, Results
from analysis.results.records import ComparisonRecord, Pair

__all__ = ["MAX_ROWS", "ChangeRow", "Changes", "changes_since", "previous_results"]

logger = logging.getLogger(__name__)

#: At most this many rows are listed; the rest are counted (``Changes.more``).
MAX_ROWS: Final = 8
#: A lift is listed as moved when it moved by this share of itself (or of 1 point) or more.
MIN_RELATIVE_MOVE: Final = 0.10
_FLOOR: Final = 0.01  # below a 1-point lift, moves are measured against 1 point
_ARROW: Final = " \u2192 "
_RESULTS_FILE: Final = "results.json"

Key = tuple[str, str, str]  # metric, control arm, treatment arm


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One line of the list: ``subject`` (metric and arms) and what moved, in words.

    ``kind`` is ``verdict`` (the verdict changed), ``added``, ``removed`` or
    ``lift`` (same verdict, the lift moved or its interval crossed 0).
    """

    kind: str
    subject: str
    detail: str

    @property
    def text(self) -> str:
        return f"{self.subject}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Changes:
    """What moved since the previous run (:func:`changes_since`).

    ``recommendation`` is ``(old, new)`` when it changed; ``rows`` are at most
    :data:`MAX_ROWS`, verdict changes first, and ``more`` counts those left off.
    """

    previous_run_id: str
    previous_analysis_date: str
    recommendation: tuple[str, str] | None
    rows: tuple[ChangeRow, ...]
    more: int = 0

    @property
    def moved(self) -> bool:
        """Whether anything is worth saying (else the report says "Nothing moved")."""
        return self.recommendation is not None or bool(self.rows)

    @property
    def lines(self) -> tuple[str, ...]:
        """The list as plain text lines (the report's wording)."""
        if not self.moved:
            return ("Nothing moved",)
        lines = []
        if self.recommendation is not None:
            old, new = self.recommendation
            lines.append(f"Recommendation: {old}{_ARROW}{new}")
        lines += [row.text for row in self.rows]
        if self.more:
            lines.append(f"and {self.more} more")
        return tuple(lines)


# --------------------------------------------------------------------------- previous run


def _order(analysis_date: object, generated_at: object, run_id: object) -> tuple[str, str, str]:
    """The index's order of runs (:func:`analysis.report.site_index.collect_index_entries`)."""
    return (str(analysis_date or ""), str(generated_at or ""), str(run_id or ""))


def previous_results(
    out_dir: Path,
    experiment_id: str,
    run_id: str,
    analysis_date: str,
    generated_at: str | None,
) -> Results | None:
    """The results of the latest published run of ``experiment_id`` before this one, or None.

    "Before" is the site index's order: (analysis date, generated at, run id).
    The run ``run_id`` itself (being replaced), hidden folders (runs in
    flight), and unreadable files or files of another schema are skipped.
    Read it while holding the experiment's publish lock.
    """
    experiment_dir = Path(out_dir) / experiment_id
    if experiment_id.startswith(".") or {"/", "\\"} & set(experiment_id):
        return None  # not a folder name of the site (publish_run refuses it too)
    if not experiment_dir.is_dir():
        return None
    here = _order(analysis_date, generated_at, run_id)
    found: list[tuple[tuple[str, str, str], str]] = []
    for path in experiment_dir.glob(f"*/{_RESULTS_FILE}"):
        name = path.parent.name
        if name.startswith(".") or name == run_id:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as exc:
            logger.debug("skipping unreadable %s: %s", path, exc)
            continue
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            continue
        order = _order(data.get("analysis_date"), data.get("generated_at"), name)
        if order < here:
            found.append((order, text))
    for _, text in sorted(found, key=lambda pair: pair[0], reverse=True):
        try:
            return Results.from_json(text)
        except ValidationError as exc:  # not results.json as Proof writes it
            logger.debug("skipping a results.json that does not read: %s", exc)
    return None


# --------------------------------------------------------------------------- changes


def _key(c: ComparisonRecord) -> Key:
    return (c.metric, c.control, c.treatment)


def _subject(c: ComparisonRecord) -> str:
    return f"{c.label or c.metric}, {c.treatment} vs {c.control}"


def _excludes_zero(ci: Pair | None) -> bool | None:
    if ci is None or not (finite(ci[0]) and finite(ci[1])):
        return None
    return ci[0] > 0 or ci[1] < 0


def _move(old: float | None, new: float | None) -> float:
    """How far the lift moved, relative to its old size (at least 1 point); inf to or from none."""
    if old is None and new is None:
        return 0.0
    if old is None or new is None:
        return float("inf")
    return abs(new - old) / max(abs(old), _FLOOR)


def _compare(old: ComparisonRecord, new: ComparisonRecord) -> tuple[ChangeRow, float] | None:
    """The row for a comparison in both runs, with how far its lift moved; None if nothing did."""
    before, after = basis_view(old), basis_view(new)
    lift_text = (fmt_lift(before.lift), fmt_lift(after.lift))
    move = _move(before.lift, after.lift) if lift_text[0] != lift_text[1] else 0.0
    was, now = _excludes_zero(before.ci), _excludes_zero(after.ci)
    crossed = was is not None and now is not None and was != now
    verdict_changed = old.verdict != new.verdict
    if not (verdict_changed or crossed or move >= MIN_RELATIVE_MOVE):
        return None
    parts = [f"{old.verdict}{_ARROW}{new.verdict}"] if verdict_changed else []
    parts.append(f"lift {lift_text[0]}{_ARROW}{lift_text[1]}")
    if crossed:
        parts.append("interval now excludes 0" if now else "interval now includes 0")
    kind = "verdict" if verdict_changed else "lift"
    return ChangeRow(kind, _subject(new), "; ".join(parts)), move


def _listed(comparisons: list[ComparisonRecord]) -> str:
    shown = [f"{_subject(c)} ({c.verdict})" for c in comparisons[:3]]
    rest = len(comparisons) - len(shown)
    return "; ".join(shown) + (f"; and {rest} more" if rest else "")


def changes_since(previous: Results, current: Results) -> Changes:
    """What moved from ``previous`` to ``current`` (two runs of one experiment), in words.

    Per comparison (metric, control and treatment arm) in both runs: a changed
    verdict, a lift that moved by :data:`MIN_RELATIVE_MOVE` of itself or more,
    an interval that now excludes 0 where it did not (or the reverse); and the
    comparisons added or removed. Rows: verdict changes (in the current run's
    order), added, removed, then the biggest moves; at most :data:`MAX_ROWS`.
    """
    before = {_key(c): c for c in previous.comparisons}
    after = {_key(c): c for c in current.comparisons}
    verdicts: list[ChangeRow] = []
    moves: list[tuple[float, int, ChangeRow]] = []
    for index, (key, new) in enumerate(after.items()):
        old = before.get(key)
        if old is None:
            continue
        compared = _compare(old, new)
        if compared is None:
            continue
        row, move = compared
        if row.kind == "verdict":
            verdicts.append(row)
        else:
            moves.append((-move, index, row))
    rows = list(verdicts)
    added = [c for key, c in after.items() if key not in before]
    removed = [c for key, c in before.items() if key not in after]
    if added:
        rows.append(ChangeRow("added", "New comparisons", _listed(added)))
    if removed:
        rows.append(ChangeRow("removed", "No longer compared", _listed(removed)))
    rows += [row for *_, row in sorted(moves, key=lambda m: (m[0], m[1]))]
    old_rec, new_rec = previous.decision.recommendation, current.decision.recommendation
    return Changes(
        previous_run_id=previous.run_id,
        previous_analysis_date=previous.analysis_date,
        recommendation=(old_rec, new_rec) if old_rec != new_rec else None,
        rows=tuple(rows[:MAX_ROWS]),
        more=max(0, len(rows) - MAX_ROWS),
    )
