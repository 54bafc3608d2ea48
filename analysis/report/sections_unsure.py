"""The report's "When it is unsure" section, from ``results.unsure``."""

from __future__ import annotations

from typing import Any

from analysis.report.sections_failures import share_text
from analysis.report.text import fmt_count, fmt_pct
from analysis.results.model import Results

__all__ = ["unsure_context"]

_DASH = "\u2013"
TITLES = {"confidence": "By the model's confidence", "latency": "By the AI's latency"}


def unsure_context(results: Results) -> list[dict[str, Any]] | None:
    """Per AI arm, its calibration error and a table per dimension; None without."""
    found = results.unsure
    if found is None:
        return None
    arms = []
    for arm in found.arms:
        tables = []
        for dimension, title in TITLES.items():
            rows = [
                {
                    "label": b.label,
                    "tasks": fmt_count(b.tasks),
                    "confidence": fmt_pct(b.confidence) if b.confidence is not None else _DASH,
                    "accepted": share_text(b.accepted, b.accepted_ci),
                    "edited": share_text(b.edited, b.edited_ci),
                    "rejected": share_text(b.rejected, b.rejected_ci),
                }
                for b in arm.buckets
                if b.dimension == dimension
            ]
            if rows:
                tables.append({"dimension": dimension, "title": title, "rows": rows})
        error = arm.calibration_error
        arms.append(
            {
                "arm": arm.arm,
                "error": None if error is None else f"{error * 100:.1f} points",
                "tables": tables,
            }
        )
    return arms
