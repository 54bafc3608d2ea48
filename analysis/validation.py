"""Validate the input tables with Great Expectations before any statistic.

The suites are data, versioned in ``expectations/<table>.json`` in GX's own
serialised form and filled in for each experiment by :mod:`analysis.suites`;
each expectation carries ``meta.severity``: ``critical`` failures stop the run
before statistics, ``warning`` failures are reported. Rows that break a
row-level rule are quarantined by :mod:`analysis.quarantine`, from the same
suite files; this module reports what GX found.

GX has no polars engine: :class:`GxBatchValidator` is the one place where a
polars frame becomes a pandas frame — only the columns the suite names, one
bounded batch at a time (events per day partition, :mod:`analysis.partitions`;
other tables in hash chunks of at most ``max_batch_rows`` rows). Suites are
loaded into an ephemeral context and never saved.

Entry points, all pure functions of their inputs (no Prefect):

- :func:`validate_experiment`: assignments and events of one experiment, events
  per cached day partition; the cross-table checks Proof evaluates itself.
- :func:`validate_unit_metrics`: the per-unit metric table.
- :func:`validate_tables`: the tables as given, without partitions or cache.
- :func:`format_summary`: the printable text of a summary (``proof validate``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from analysis import partitions, quarantine
from analysis.config import Experiment, Metric
from analysis.partitions import MAX_BATCH_ROWS, MAX_EXAMPLES, BatchOutcome
from analysis.sources import EventCoverage, Tables
from analysis.suites import (
    DEFAULT_SUITE_DIR,
    Expectation,
    Suite,
    load_suite,
    parse_condition,
    run_params,
    share_params,
)

__all__ = [
    "DEFAULT_SUITE_DIR",
    "CheckedData",
    "CriticalValidationError",
    "ExpectationOutcome",
    "GxBatchValidator",
    "ValidationReport",
    "check_experiment",
    "format_summary",
    "validate_experiment",
    "validate_table_cached",
    "validate_tables",
    "validate_unit_metrics",
    "validation_cache_dir",
]

log = logging.getLogger(__name__)

_QUIET_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")
_ROW_COUNT = "expect_table_row_count_"
_UNASSIGNED_SHARE = "expect_unassigned_event_share_to_be_at_most"


class CriticalValidationError(RuntimeError):
    """A critical expectation failed: the run stops before any statistic.

    The message names, per failure, the table, column, rule and count.
    """

    def __init__(self, summary: Mapping[str, Any]) -> None:
        self.summary = summary
        lines = [
            _failure_line(f) for f in summary["failed_expectations"] if f["severity"] == "critical"
        ]
        super().__init__("critical validation failed:\n  " + "\n  ".join(lines))


def _failure_line(f: Mapping[str, Any]) -> str:
    line = f"table {f['table']!r}, column {f['column']!r}: {f['expectation']} failed"
    if f.get("condition"):
        line += f" where {f['condition']}"
    count = f.get("unexpected_count")
    if count is not None:
        total = f.get("element_count")
        line += f" ({count:,} of {total:,} rows)" if total else f" ({count:,} rows)"
    elif f.get("observed") is not None:
        line += f" (found {f['observed']})"
    if f.get("reason"):
        line += f", rule {f['reason']}"
    if f.get("examples"):
        line += "; e.g. " + "; ".join(str(x) for x in f["examples"][:3])
    if f.get("explain"):
        line += f" — {f['explain']}"
    if f.get("error"):
        line += f" [error: {f['error']}]"
    return line


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    """The result of one expectation over a whole table (merged over batches)."""

    table: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    examples: tuple[str, ...] = ()
    element_count: int | None = None
    condition: str | None = None
    reason: str | None = None
    explain: str | None = None
    observed: Any = None
    error: str | None = None
    key: str | None = None

    def record(self) -> dict[str, Any]:
        """The ``failed_expectations[]`` entry of results.json."""
        share = (
            self.unexpected_count / self.element_count
            if self.unexpected_count is not None and self.element_count
            else None
        )
        return {
            "table": self.table,
            "expectation": self.expectation,
            "column": self.column,
            "severity": self.severity,
            "unexpected_count": self.unexpected_count,
            "examples": list(self.examples),
            "element_count": self.element_count,
            "unexpected_share": share,
            "condition": self.condition,
            "reason": self.reason,
            "explain": self.explain,
            "observed": _json_scalar(self.observed),
            "error": self.error,
        }


def _json_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


@dataclass(frozen=True)
class ValidationReport:
    """Every outcome of a run's validation, with row, quarantine and partition counts."""

    outcomes: tuple[ExpectationOutcome, ...]
    rows: Mapping[str, int] = field(default_factory=dict)
    quarantine: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    partitions: Mapping[str, int] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when no critical expectation failed."""
        return not self.critical()

    def critical(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "critical")

    def warnings(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity != "critical")

    def merge(self, other: ValidationReport) -> ValidationReport:
        """This report and ``other`` (e.g. the unit-metric table's) as one."""
        quarantine = {t: dict(c) for t, c in self.quarantine.items()}
        for table, counts in other.quarantine.items():
            quarantine.setdefault(table, {}).update(counts)
        return ValidationReport(
            self.outcomes + other.outcomes,
            {**self.rows, **other.rows},
            quarantine,
            {k: self.partitions.get(k, 0) + other.partitions.get(k, 0) for k in
             {*self.partitions, *other.partitions}},
        )  # fmt: skip

    def with_quarantine(self, counts: Mapping[str, Mapping[str, int]]) -> ValidationReport:
        return replace(self, quarantine={t: dict(c) for t, c in counts.items()})

    def summary(self) -> dict[str, Any]:
        """The ``validation`` object of results.json."""
        failed = [o for o in self.outcomes if not o.success]
        return {
            "success": self.success,
            "expectations_evaluated": len(self.outcomes),
            "passed": len(self.outcomes) - len(failed),
            "failed": len(failed),
            "rows": dict(self.rows),
            "failed_expectations": [o.record() for o in failed],
            "expectations": [{**o.record(), "success": o.success} for o in self.outcomes],
            "quarantine": {t: dict(c) for t, c in self.quarantine.items()},
            "partitions": {
                "validated": int(self.partitions.get("validated", 0)),
                "reused": int(self.partitions.get("reused", 0)),
            },
        }


# --------------------------------------------------------------------------- GX adapter


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
        observed=_int(observed) if isinstance(observed, int | float) else _json_scalar(observed),
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


# --------------------------------------------------------------------------- running suites


def expectation_outcome(e: Expectation, b: BatchOutcome) -> ExpectationOutcome:
    severity: str = e.severity
    share = e.critical_share
    if (
        share is not None
        and not b.success
        and b.unexpected_count
        and b.element_count
        and b.unexpected_count / b.element_count > share
    ):
        severity = "critical"
    return ExpectationOutcome(
        table=e.table,
        expectation=e.type,
        column=e.column,
        severity=severity,
        success=b.success,
        unexpected_count=b.unexpected_count,
        examples=b.examples,
        element_count=b.element_count,
        condition=e.condition,
        reason=e.reason if e.row_level else None,
        explain=e.explain,
        observed=b.observed,
        error=b.error,
        key=e.key,
    )


def validate_frame(
    suite: Suite, frame: pl.DataFrame, max_batch_rows: int = MAX_BATCH_ROWS
) -> dict[str, BatchOutcome]:
    """GX over a whole table, in hash chunks of the suite's index column.

    Rows sharing an index value fall in one chunk, so uniqueness counts are
    exact; row-count expectations see the whole table's height.
    """
    validator = GxBatchValidator(suite.table, suite.index_columns)
    expectations = suite.gx()
    order = [e.key for e in expectations]
    if frame.height <= max_batch_rows or not suite.index_columns:
        return partitions.merge_outcomes([validator(frame, expectations)], order)
    counts = [e for e in expectations if e.type.startswith(_ROW_COUNT)]
    rest = [e for e in expectations if not e.type.startswith(_ROW_COUNT)]
    # One byte per row: GX sees the table's height without its columns.
    height = pl.select(pl.repeat(0, frame.height, dtype=pl.Int8).alias("__rows"))
    batches = [validator(height, counts)] if counts else []
    batches += [
        validator(chunk, rest)
        for chunk in partitions.chunks(frame, suite.index_columns[0], max_batch_rows)
    ]
    return partitions.merge_outcomes(batches, order)


def validate_table_cached(
    suite: Suite,
    frame: pl.DataFrame,
    cache_dir: Path | None,
    *,
    ts: str,
    revalidate: bool = False,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> tuple[dict[str, BatchOutcome], bool]:
    """:func:`validate_frame`, reusing the cached result of an unchanged table.

    The table is one partition: its fingerprint, and datetime bounds on ``ts``
    that none of its rows reach dropped (so a later ``now`` reuses it).
    Returns the outcomes and whether they came from the cache.
    """
    if cache_dir is None:
        return validate_frame(suite, frame, max_batch_rows), False
    part = partitions.table_fingerprint(frame, suite.table)
    first, last = frame.select(pl.col(ts).min().alias("lo"), pl.col(ts).max().alias("hi")).row(0)
    seen = [partitions.clamp_to_range(e, first, last, ts) for e in suite.gx()]
    key = partitions.cache_key(suite, part, [e for e in seen if e is not None])
    path = partitions.cache_path(cache_dir, part, key)
    cached = None if revalidate else partitions.read_cache(path)
    if cached is not None:
        return partitions.merge_outcomes([cached], [e.key for e in suite.gx()]), True
    found = validate_frame(suite, frame, max_batch_rows)
    partitions.write_cache(path, part, list(found.values()))
    return found, False


def _collect(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    return frame if isinstance(frame, pl.DataFrame) else frame.collect(engine="streaming")


def _frames(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
) -> dict[str, pl.DataFrame]:
    if isinstance(tables, Tables):
        tables = {"assignments": tables.assignments, "events": tables.events}
    return {name: _collect(frame) for name, frame in tables.items()}


def unassigned_share(
    e: Expectation, frames: Mapping[str, pl.DataFrame], coverage: EventCoverage | None
) -> BatchOutcome | None:
    """Share of events whose unit no assignment names: from the source, else from the tables."""
    if coverage is None:
        if "assignments" not in frames or "events" not in frames:
            return None
        events = frames["events"].filter(pl.col("unit_id").is_not_null())
        orphans = events.join(
            frames["assignments"].select("unit_id").unique(), on="unit_id", how="anti"
        )
        examples = orphans.get_column("unit_id").unique().sort().head(MAX_EXAMPLES)
        coverage = EventCoverage(events.height, orphans.height, tuple(examples))
    limit = float(e.kwargs["max_value"])
    return BatchOutcome(
        key=e.key,
        success=coverage.share <= limit,
        element_count=coverage.events,
        unexpected_count=coverage.unassigned,
        examples=tuple(f"unit_id={u}" for u in coverage.examples),
        observed=round(coverage.share, 6),
    )


def _report(
    suites: Sequence[Suite],
    found: Mapping[str, BatchOutcome],
    rows: Mapping[str, int],
    **counts: Any,
) -> ValidationReport:
    outcomes = tuple(
        expectation_outcome(e, found[e.key])
        for s in suites
        for e in s.expectations
        if e.key in found
    )
    return ValidationReport(outcomes, dict(rows), **counts)


def validation_cache_dir(out_dir: Path | str, experiment_id: str) -> Path:
    """Where an experiment's per-partition results are cached: ``<out>/.cache/validation/<id>``."""
    return Path(out_dir) / ".cache" / "validation" / experiment_id


def validate_experiment(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    quarantine: Mapping[str, Mapping[str, int]] | None = None,
    cache_dir: Path | None = None,
    revalidate: bool = False,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> ValidationReport:
    """Validate one experiment's raw ``assignments`` and ``events`` (before quarantine).

    Assignments are validated whole (in hash chunks of ``unit_id`` when
    large); events per day partition. With ``cache_dir``, the result of the
    unchanged assignments and of every unchanged event partition is reused
    (``revalidate=True`` ignores the cache). ``coverage`` (from
    :func:`analysis.sources.event_coverage`) feeds the unassigned-event share;
    without it the share is computed from ``tables``. ``quarantine``
    (``QuarantineResult.counts``) is carried into the summary.
    """
    now = now or dt.datetime.now(dt.UTC)
    frames = _frames(tables)
    params = run_params(experiment, as_of, now)
    assignments = load_suite("assignments", params, suite_dir)
    events = load_suite("events", params, suite_dir)
    found, _ = validate_table_cached(
        assignments,
        frames["assignments"],
        cache_dir,
        ts="assigned_at",
        revalidate=revalidate,
        max_batch_rows=max_batch_rows,
    )
    parted = partitions.validate_partitions(
        frames["events"],
        events,
        GxBatchValidator("events", events.index_columns),
        cache_dir=cache_dir,
        revalidate=revalidate,
        max_batch_rows=max_batch_rows,
    )
    found |= parted.outcomes
    for e in events.proof():
        if e.type == _UNASSIGNED_SHARE and (share := unassigned_share(e, frames, coverage)):
            found[e.key] = share
    return _report(
        [assignments, events],
        found,
        {name: frame.height for name, frame in frames.items()},
        quarantine={t: dict(c) for t, c in (quarantine or {}).items()},
        partitions={"validated": parted.validated, "reused": parted.reused},
    )


@dataclass(frozen=True)
class CheckedData:
    """What the checks of one run found: the quarantine split and the validation report."""

    quarantine: quarantine.QuarantineResult
    report: ValidationReport


def check_experiment(
    tables: Tables | Mapping[str, pl.DataFrame | pl.LazyFrame],
    experiment: Experiment,
    as_of: dt.date,
    *,
    now: dt.datetime | None = None,
    coverage: EventCoverage | None = None,
    cache_dir: Path | None = None,
    revalidate: bool = False,
    suite_dir: Path = DEFAULT_SUITE_DIR,
) -> CheckedData:
    """Everything a run checks before statistics, reading the tables once.

    :func:`analysis.quarantine.split`, then :func:`validate_experiment` with its
    counts. The caller decides what a failure does: ``report.success`` is
    False when a critical expectation failed (raise
    :class:`CriticalValidationError`); ``quarantine.tables()`` are the rows to
    measure.
    """
    now = now or dt.datetime.now(dt.UTC)
    raw = quarantine.collect_tables(tables)
    split = quarantine.split(raw, experiment, as_of, now=now, suite_dir=suite_dir)
    report = validate_experiment(
        raw,
        experiment,
        as_of,
        now=now,
        coverage=coverage,
        quarantine=split.counts,
        cache_dir=cache_dir,
        revalidate=revalidate,
        suite_dir=suite_dir,
    )
    return CheckedData(split, report)


def validate_tables(
    tables: Mapping[str, pl.DataFrame | pl.LazyFrame],
    suite_dir: Path = DEFAULT_SUITE_DIR,
    *,
    experiment: Experiment | None = None,
    as_of: dt.date | None = None,
    now: dt.datetime | None = None,
    metrics: Sequence[Metric] = (),
    assigned_units: int | None = None,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> ValidationReport:
    """Run each table's suite over the whole table, without partitions or cache.

    Without ``experiment``, expectations that need its parameters (variants,
    dates, value ranges) are left out: only the experiment-free checks run,
    with the default shares of ``validation:`` (``max_null_key_share`` ...).
    """
    now = now or dt.datetime.now(dt.UTC)
    params: dict[str, Any] = dict(share_params())
    if experiment is not None:
        day = as_of or now.date()
        params = run_params(experiment, day, now, metrics=metrics, assigned_units=assigned_units)
    frames = _frames(tables)
    suites = [load_suite(t, params, suite_dir, strict=False) for t in frames]
    found: dict[str, BatchOutcome] = {}
    for suite in suites:
        found |= validate_frame(suite, frames[suite.table], max_batch_rows)
        for e in suite.proof():
            if e.type == _UNASSIGNED_SHARE and (share := unassigned_share(e, frames, None)):
                found[e.key] = share
    return _report(suites, found, {name: frame.height for name, frame in frames.items()})


def validate_unit_metrics(
    table: pl.DataFrame | pl.LazyFrame,
    experiment: Experiment,
    metrics: Sequence[Metric],
    assigned_units: int,
    *,
    as_of: dt.date,
    now: dt.datetime | None = None,
    suite_dir: Path = DEFAULT_SUITE_DIR,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> ValidationReport:
    """The per-unit metric table (``metrics.unit_table``) against ``unit_metrics.json``.

    ``assigned_units`` is how many units the table must hold: the clean,
    non-crossed-over units assigned by the end of ``as_of``
    (``QuarantineResult.analysed_units(as_of)``).
    """
    now = now or dt.datetime.now(dt.UTC)
    params = run_params(experiment, as_of, now, metrics=metrics, assigned_units=assigned_units)
    suite = load_suite("unit_metrics", params, suite_dir)
    frame = _collect(table)
    found = validate_frame(suite, frame, max_batch_rows)
    return _report([suite], found, {"unit_metrics": frame.height})


# --------------------------------------------------------------------------- text


def format_summary(summary: Mapping[str, Any], title: str | None = None) -> str:
    """A readable, plain-text account of a ``validation`` summary (for ``proof validate``)."""
    failed: Sequence[Mapping[str, Any]] = summary.get("failed_expectations") or []
    critical = [f for f in failed if f.get("severity") == "critical"]
    warned = [f for f in failed if f.get("severity") != "critical"]
    verdict = "FAILED" if not summary.get("success") else "passed"
    if summary.get("success") and warned:
        verdict = "passed with warnings"
    head = f"{title}: " if title else ""
    lines = [f"{head}validation {verdict}"]
    evaluated = summary.get("expectations_evaluated", 0)
    passed = summary.get("passed", evaluated - len(failed))
    lines.append(
        f"  {evaluated} expectations: {passed} passed, {len(critical)} critical, "
        f"{len(warned)} warnings"
    )
    rows = summary.get("rows") or {}
    if rows:
        lines.append("  rows: " + ", ".join(f"{t} {n:,}" for t, n in rows.items()))
    parts = summary.get("partitions") or {}
    if parts.get("validated") or parts.get("reused"):
        lines.append(
            f"  event partitions: {parts.get('validated', 0)} validated, "
            f"{parts.get('reused', 0)} reused from the cache"
        )
    lines += [f"  CRITICAL: {_failure_line(f)}" for f in critical]
    lines += [f"  warning: {_failure_line(f)}" for f in warned]
    quarantine = summary.get("quarantine") or {}
    for table, reasons in quarantine.items():
        if reasons:
            total = sum(reasons.values())
            detail = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
            lines.append(f"  quarantined from {table}: {total:,} rows ({detail})")
    if any(quarantine.values()):
        lines.append("  (quarantined rows are kept in quarantine/<table>.parquet with a reason)")
    return "\n".join(lines)
