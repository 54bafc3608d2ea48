"""What one expectation found in one batch, merged across the batches of a run.

A batch is what one validator call sees: a day partition, several, or a hash
chunk of a large one (:func:`chunks`). :class:`BatchOutcome` adds up across
batches (:func:`merge_outcomes`); :data:`BatchValidator` is the validator's
type (GX in production, :mod:`analysis.validation.gx`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from analysis.suites.load import Expectation, jsonable

#: Largest batch handed to GX at once (pandas memory is about 1 GB per 10M cells).
MAX_BATCH_ROWS = 2_000_000
MAX_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one expectation found in one batch; mergeable across batches."""

    key: str
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    examples: tuple[str, ...] = ()
    observed: Any = None
    error: str | None = None

    def merge(self, other: BatchOutcome) -> BatchOutcome:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        observed = self.observed if self.observed is not None else other.observed
        if isinstance(self.observed, int) and isinstance(other.observed, int):
            observed = self.observed + other.observed  # row counts add up
        return BatchOutcome(
            key=self.key,
            success=self.success and other.success,
            element_count=add(self.element_count, other.element_count),
            unexpected_count=add(self.unexpected_count, other.unexpected_count),
            examples=(self.examples + other.examples)[:MAX_EXAMPLES],
            observed=observed,
            error=self.error or other.error,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "success": self.success,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "examples": list(self.examples),
            "observed": jsonable(self.observed),
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchOutcome:
        return cls(
            key=str(data["key"]),
            success=bool(data["success"]),
            element_count=data.get("element_count"),
            unexpected_count=data.get("unexpected_count"),
            examples=tuple(str(x) for x in data.get("examples") or ()),
            observed=data.get("observed"),
            error=data.get("error"),
        )


#: Validates one pandas-sized batch against expectations: GX in production.
BatchValidator = Callable[[pl.DataFrame, Sequence[Expectation]], list[BatchOutcome]]


def merge_outcomes(
    batches: Sequence[Sequence[BatchOutcome]], order: Sequence[str]
) -> dict[str, BatchOutcome]:
    """One outcome per expectation key, in ``order``, merged over batches."""
    merged: dict[str, BatchOutcome] = {}
    for batch in batches:
        for outcome in batch:
            before = merged.get(outcome.key)
            merged[outcome.key] = outcome if before is None else before.merge(outcome)
    return {key: merged[key] for key in order if key in merged}


def chunks(frame: pl.DataFrame, column: str, max_rows: int) -> Iterator[pl.DataFrame]:
    """``frame`` in batches of about ``max_rows``, each value of ``column`` in one batch."""
    if frame.height <= max_rows:
        yield frame
        return
    n = -(-frame.height // max_rows)
    bucket = (pl.col(column).hash(seed=7) % n).alias("__chunk")
    for _, part in frame.with_columns(bucket).group_by("__chunk", maintain_order=True):
        yield part.drop("__chunk")
