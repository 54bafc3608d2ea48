"""The GX batch adapter: Great Expectations over one bounded polars batch at a time.

GX has no polars engine: :class:`GxBatchValidator` is the one place where a
polars frame becomes a pandas frame — only the columns the suite names — in an
ephemeral GX context that is never saved. :func:`batch_outcome` turns GX's
result into a mergeable :class:`~analysis.partitions.batches.BatchOutcome`,
with up to five failing rows as examples.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl

from analysis.partitions.batches import MAX_EXAMPLES, BatchOutcome
from analysis.suites.conditions import parse_condition
from analysis.suites.load import Expectation
from analysis.validation_report import json_scalar

__all__ = ["GxBatchValidator", "batch_outcome", "raw_alias"]

log = logging.getLogger(__name__)

_QUIET_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")
_CONDITION_KWARGS = ("row_condition", "condition_parser")


@contextmanager
def _without_gx_batch_fingerprint() -> Iterator[None]:
    """GX without the md5 of every pandas batch it loads, for the duration of a validation.

    GX's pandas engine hashes each batch (``hash_pandas_object`` over every
    cell) only to store the digest in the batch's metadata, which Proof never
    reads: it fingerprints partitions itself (:mod:`analysis.partitions`). On
    10M events that hash was a third of the validation time. The outcomes do
    not depend on it; if GX renames the function, nothing is replaced.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    original = getattr(engine, "hash_pandas_dataframe", None)
    if original is None:
        yield
        return
    engine.hash_pandas_dataframe = _row_count_marker
    try:
        yield
    finally:
        engine.hash_pandas_dataframe = original


def _row_count_marker(df: Any) -> str:
    return f"rows={len(df)}"


class GxBatchValidator:
    """One ephemeral GX context for one table; validates polars frames batch by batch.

    Create one per table and run; GX keeps its current context in a global, so
    callers that validate in threads serialise the calls (flows hold a lock).
    """

    def __init__(self, table: str, index_columns: Sequence[str] = ()) -> None:
        self.table = table
        self.index_columns = tuple(index_columns)
        self.batches = 0
        self._definition: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """For a worker process (``partitions.validate``): it builds a GX context of its own."""
        return {"table": self.table, "index_columns": self.index_columns, "batches": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _definition=None)

    def _batch_definition(self) -> Any:
        if self._definition is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            for name in _QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            source = context.data_sources.add_pandas(f"proof_{self.table}")
            asset = source.add_dataframe_asset(self.table)
            self._definition = asset.add_batch_definition_whole_dataframe("batch")
        return self._definition

    def __call__(
        self, frame: pl.DataFrame, expectations: Sequence[Expectation]
    ) -> list[BatchOutcome]:
        """GX over ``frame``; expectations with a ``row_condition`` over their rows only.

        A condition is ``column == value``: polars selects those rows and GX
        checks them without the condition. GX would otherwise run a pandas
        query over the whole batch for every metric of every conditioned
        expectation (a third of its time on events); the outcome is the same,
        since GX's domain for a conditioned expectation is exactly those rows.
        """
        plain = [e for e in expectations if e.condition is None]
        by_column: dict[str, dict[str, list[Expectation]]] = {}
        for e in expectations:
            if e.condition is not None:
                column, value = parse_condition(e.condition)
                by_column.setdefault(column, {}).setdefault(value, []).append(e)
        # The index column's own expectations (uniqueness of event_id...) need no
        # row index: GX would build one per unexpected row, in Python.
        own = [
            e for e in plain if _columns_of(e) and set(_columns_of(e)) <= set(self.index_columns)
        ]
        outcomes = self._validate(frame, [e for e in plain if e not in own])
        outcomes += self._validate(frame, own, with_index=False)
        for column, by_value in by_column.items():
            if column not in frame.columns:  # GX reports the missing column
                outcomes += self._validate(frame, [e for g in by_value.values() for e in g])
                continue
            parts = frame.filter(pl.col(column).is_in(list(by_value))).partition_by(
                column, as_dict=True, maintain_order=True
            )
            for value, group in by_value.items():
                rows = parts.get((value,), frame.clear())
                unconditioned = [
                    e.with_kwargs({k: v for k, v in e.kwargs.items() if k not in _CONDITION_KWARGS})
                    for e in group
                ]
                outcomes += self._validate(rows, unconditioned)
        return outcomes

    def _validate(
        self, frame: pl.DataFrame, expectations: Sequence[Expectation], *, with_index: bool = True
    ) -> list[BatchOutcome]:
        if not expectations:
            return []
        present = set(frame.columns)
        index = [c for c in self.index_columns if c in present] if with_index else []
        # pandas reads a NaN as null: a non_finite rule reads its column under an
        # alias, Arrow-backed (NaN and null apart); finite_only rules read the
        # column with its NaN and ±inf as null, so that they pass them as nulls.
        aliases = {raw_alias(str(e.column)): str(e.column) for e in expectations
                   if e.non_finite and e.column in present}  # fmt: skip
        expectations = [
            e.with_kwargs({**e.kwargs, "column": raw_alias(str(e.column))})
            if e.non_finite and e.column in present
            else e
            for e in expectations
        ]
        wanted = [*index, *(c for e in expectations for c in _columns_of(e))]
        # At least one column: a frame without columns has no rows for pandas.
        columns = [c for c in dict.fromkeys(wanted) if c in present] or frame.columns[:1]
        nulled = {
            str(e.column)
            for e in expectations
            if e.finite_only and e.column in columns and frame.schema[str(e.column)].is_float()
        }
        result_format: dict[str, Any] = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": MAX_EXAMPLES,
        }
        if index:
            result_format["unexpected_index_column_names"] = index
        with warnings.catch_warnings():
            # GX and its dependencies emit deprecation noise on import and use.
            warnings.simplefilter("ignore")
            from great_expectations.core import ExpectationSuite
            from great_expectations.expectations.expectation_configuration import (
                ExpectationConfiguration,
            )
            from great_expectations.validator.v1_validator import Validator

            suite = ExpectationSuite(
                name=f"proof_{self.table}",
                expectations=[ExpectationConfiguration(**e.gx_config()) for e in expectations],
            )
            pdf = frame.select(
                pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) if c in nulled else c
                for c in columns
            ).to_pandas()
            for alias, column in aliases.items():
                pdf[alias] = _nan_apart(frame.get_column(column))
            # The validator GX's own ValidationDefinition uses: it loads the batch
            # once (get_batch() then Batch.validate() would load, and hash, it twice).
            validator = Validator(
                self._batch_definition(),
                result_format=result_format,
                batch_parameters={"dataframe": pdf},
            )
            with _without_gx_batch_fingerprint():
                result = validator.validate_expectation_suite(suite)
        self.batches += 1
        return [
            batch_outcome(r, index, None if with_index else self.index_columns, aliases)
            for r in result.results
            if r.expectation_config
        ]


def _nan_apart(values: pl.Series) -> Any:
    """``values`` as an Arrow-backed pandas column: null is missing, NaN is a value.

    A numpy-backed pandas column cannot tell them apart, and GX skips both.
    (GX compares such a column row by row, about 0.5 µs a row: only the
    ``non_finite`` rules read it.)
    """
    return values.to_frame().to_pandas(use_pyarrow_extension_array=True).iloc[:, 0]


#: The prefix of the column a ``non_finite`` rule reads its column's raw values from.
RAW_PREFIX = "__proof_raw_"


def raw_alias(column: str) -> str:
    """The alias under which a ``non_finite`` rule reads ``column`` (NaN apart from null)."""
    return RAW_PREFIX + column


def _columns_of(e: Expectation) -> list[str]:
    columns = [str(e.kwargs["column"])] if "column" in e.kwargs else []
    columns += [str(c) for c in e.kwargs.get("column_list", ())]
    if e.condition:
        columns.append(parse_condition(e.condition)[0])
    return columns


def batch_outcome(
    r: Any,
    index: Sequence[str],
    labels: Sequence[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> BatchOutcome:
    """A GX result as a mergeable outcome; ``labels``: columns whose values read as ``col=v``.

    ``aliases`` (alias -> column): columns GX read under another name (a
    ``non_finite`` rule's raw values), named as the column in the examples,
    where a NaN reads ``nan``, not ``null``.
    """
    details: Mapping[str, Any] = r.result or {}
    observed = details.get("observed_value")
    return BatchOutcome(
        key=str(r.expectation_config.meta["proof_key"]),
        success=bool(r.success),
        element_count=_int(details.get("element_count")),
        unexpected_count=_int(details.get("unexpected_count")),
        examples=_examples(details, index, _label(r, labels), aliases, _column(r)),
        observed=_int(observed) if isinstance(observed, int | float) else json_scalar(observed),
        error=None if r.success else _exception_message(r.exception_info),
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _fmt(value: Any, nan: str = "null") -> str:
    if value is None or str(value) in {"NaT", "<NA>"}:  # pandas' missing values
        return "null"
    if (isinstance(value, float) and math.isnan(value)) or str(value) == "nan":
        return nan  # missing, unless the column keeps NaN apart from null
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if hasattr(value, "item"):  # numpy scalars
        return str(value.item())
    return str(value)


def _column(r: Any) -> str | None:
    column = (r.expectation_config.kwargs or {}).get("column")
    return None if column is None else str(column)


def _label(r: Any, labels: Sequence[str] | None) -> str | None:
    column = _column(r)
    return column if labels and column in labels else None


def _examples(
    details: Mapping[str, Any],
    index: Sequence[str],
    label: str | None = None,
    aliases: Mapping[str, str] | None = None,
    column: str | None = None,
) -> tuple[str, ...]:
    """Up to five failing rows (``key=…, column=…``), else failing values; ``column``: GX's."""
    aliases = aliases or {}

    def value(key: str, v: Any) -> str:
        return f"{aliases.get(key, key)}={_fmt(v, 'nan' if key in aliases else 'null')}"

    def named(row: Mapping[str, Any]) -> str:
        keys = [*(k for k in index if k in row), *(k for k in row if k not in index)]
        return ", ".join(value(k, row[k]) for k in keys)

    rows = details.get("partial_unexpected_index_list") or []
    examples = [named(row) for row in rows[:MAX_EXAMPLES] if isinstance(row, Mapping)]
    if examples:
        return tuple(examples)
    values = details.get("partial_unexpected_list") or []
    prefix = "" if label is None else f"{label}="
    nan = "nan" if column in aliases else "null"
    # A compound rule's values are rows (GX's SQL engine gives no index list for it).
    return tuple(
        named(v) if isinstance(v, Mapping) else prefix + _fmt(v, nan) for v in values[:MAX_EXAMPLES]
    )


def _exception_message(info: Any) -> str | None:
    """GX's exception info is flat or keyed by metric; the first message found."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None
