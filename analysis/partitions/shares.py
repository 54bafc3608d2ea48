"""How a batch's failed expectations are shared out among its partitions.

GX runs once over a batch of partitions; a partition's cached result must be
what GX would say of it alone. :func:`split_repeats` shares out a failed
uniqueness check when GX's count for the batch confirms polars' count;
:func:`may_fail` says where another failed expectation must run again.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.keys import maybe_repeated
from analysis.partitions.batches import MAX_EXAMPLES, BatchOutcome
from analysis.suites.conditions import failing_rows
from analysis.suites.load import Expectation

#: GX's names of a one-column and of a several-column uniqueness check.
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"

_ROW_RULES = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
)


def may_fail(e: Expectation, rows: pl.DataFrame) -> bool:
    """Whether ``e`` can fail on ``rows``: False only when no row breaks it.

    A GX run per partition costs about 0.1 s whatever its size, and a batch
    holds up to a hundred partitions (days, and the rows of units exposed
    later). The per-row rules are the quarantine's own translation
    (:func:`~analysis.suites.conditions.failing_rows`), and uniqueness is a
    repeated value; a partition where one of them finds a row is run through
    GX, so every count is still GX's. Other expectations are always run.
    """
    if e.type == COMPOUND_UNIQUE:
        return _compound_may_fail(e, rows)
    column = e.kwargs.get("column")
    if column is None or str(column) not in rows.columns:
        return True
    if e.type == UNIQUE and e.condition is None:
        return bool(rows.get_column(str(column)).drop_nulls().is_duplicated().any())
    if e.type in _ROW_RULES:
        return bool(rows.select(failing_rows(e).any()).item())
    return True


def _compound_may_fail(e: Expectation, rows: pl.DataFrame) -> bool:
    """Whether a combination of ``column_list`` repeats among ``rows``, as GX sees one.

    GX (pandas) leaves out the rows whose every listed value is missing (its
    default ``ignore_row_if``) and counts the rest that are ``duplicated``,
    where a missing value equals another; so does this. Anything else, run GX.
    The duplicate assignments of a unit land on different days: without this,
    every day of assignments of a batch ran GX again (56 runs, 1.2 s of a cold run).
    """
    columns = [str(c) for c in e.kwargs.get("column_list") or []]
    ignore = e.kwargs.get("ignore_row_if", "all_values_are_missing")
    if e.condition is not None or not columns or ignore != "all_values_are_missing":
        return True
    if not set(columns) <= set(rows.columns):
        return True
    some = pl.any_horizontal(pl.col(c).is_not_null() for c in columns)
    return bool(rows.filter(some).select(pl.struct(columns).is_duplicated().any()).item())


def _repeated(values: pl.Series) -> pl.Series:
    """The non-null values of rows whose value occurs more than once, in row order."""
    candidates = values.filter(values.is_not_null() & maybe_repeated(values))
    return candidates.filter(candidates.is_duplicated())


def split_repeats(
    e: Expectation, parts: Sequence[pl.DataFrame], frame: pl.DataFrame, found: BatchOutcome
) -> list[BatchOutcome] | None:
    """A failed uniqueness check of a batch, as each partition alone would have it.

    GX counts the rows whose value repeats in the batch; run on a partition
    alone it would count the rows whose value repeats there. Polars finds
    both (nulls never repeat, as in GX). When its count for the batch equals
    GX's, the per-partition counts are taken from polars, and GX is not run
    again on each partition (a run costs about 0.1 s, and nearly every day
    of events has a delivery retry); otherwise None, and GX runs again.
    Values repeated across partitions are added after the merge
    (:func:`cross_partition_duplicates`), as before.
    """
    column = e.kwargs.get("column")
    if e.type != UNIQUE or e.condition is not None or column is None:
        return None
    name = str(column)
    if name not in frame.columns or found.unexpected_count is None:
        return None
    if _repeated(frame.get_column(name)).len() != found.unexpected_count:
        return None
    shares = []
    for rows in parts:
        repeated = _repeated(rows.get_column(name))
        examples = tuple(f"{name}={v}" for v in repeated.head(MAX_EXAMPLES))
        shares.append(
            BatchOutcome(e.key, repeated.is_empty(), rows.height, repeated.len(), examples)
        )
    return shares
