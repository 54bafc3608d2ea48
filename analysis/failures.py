"""Where the AI fails: the labels of its failure events, as ratio metrics an engine measures.

An ``ai_rejected`` event may carry why (its ``label``: ``wrong_answer``,
``hallucination``, ...), an ``ai_error`` its type. For each label found, the
share of an AI arm's failure events that carry it is a ratio metric per unit
(events with the label / events), measured by the engines as any ratio metric
(:func:`failure_metrics`), compared between AI arms by
:mod:`analysis.failure_patterns`.

Which labels: those of the failure events in the analysis window of the
analysed units (not the pre-period), the :data:`MAX_LABELS` most frequent of
each event (ties by label text, in Python, so that every engine picks the same).
Above :data:`MAX_DISTINCT` distinct labels the label is not a category (an id,
free text) and none is broken down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analysis.config.experiments import LABEL_MAX_LENGTH, EventAggregate, Metric
from analysis.measurement import FailureData

#: The events whose labels say how the AI failed.
FAILURE_EVENTS: tuple[str, ...] = ("ai_rejected", "ai_error")
#: Labels broken down per event, the most frequent first.
MAX_LABELS = 8
#: More distinct labels than this (over the failure events) and none is broken down.
MAX_DISTINCT = 200
#: The longest label broken down: as long as a config's ``label_equals`` may be.
MAX_LABEL_LENGTH = LABEL_MAX_LENGTH


@dataclass(frozen=True, slots=True)
class FailureLabel:
    """One label of one failure event, and the ratio metric of its share."""

    event: str
    label: str
    metric: Metric


def top_labels(counts: Iterable[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """``(event, label)`` to break down from ``(event, label, events)`` rows, in order:
    by event (:data:`FAILURE_EVENTS` order), then the most frequent first, ties by text."""
    rows = [(e, lb, n) for e, lb, n in counts if e in FAILURE_EVENTS and lb]
    if len(rows) > MAX_DISTINCT:
        return []
    chosen: list[tuple[str, str]] = []
    for event in FAILURE_EVENTS:
        mine = sorted((r for r in rows if r[0] == event), key=lambda r: (-r[2], r[1]))
        # A label longer than a config's filter may be is not a category either.
        named = [r for r in mine if len(r[1]) <= MAX_LABEL_LENGTH]
        chosen += [(event, label) for _, label, _ in named[:MAX_LABELS]]
    return chosen


def failure_metrics(chosen: Sequence[tuple[str, str]]) -> tuple[FailureLabel, ...]:
    """The share metric of each chosen label: ``failure_<event>_<k>`` (the label is data,
    never a name), AI arms only, lower is better."""
    found = []
    for k, (event, label) in enumerate(chosen):
        metric = Metric(
            name=f"failure_{event}_{k}",
            label=f"{event} labelled {label}",
            category="trust",
            kind="ratio",
            goal="decrease",
            ai_only=True,
            numerator=EventAggregate(event=event, label_equals=label),
            denominator=EventAggregate(event=event),
        )
        found.append(FailureLabel(event, label, metric))
    return tuple(found)


def labels_of(data: FailureData | None) -> tuple[FailureLabel, ...]:
    """The labels an engine broke down, with their share metrics."""
    return () if data is None else failure_metrics(data.labels)


__all__ = [
    "FAILURE_EVENTS",
    "MAX_DISTINCT",
    "MAX_LABELS",
    "FailureData",
    "FailureLabel",
    "failure_metrics",
    "labels_of",
    "top_labels",
]
