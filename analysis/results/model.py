"""The typed ``results.json`` (schema_version 1): what a run publishes.

:class:`Results` describes the file exactly: every key the writer
(:func:`analysis.results.build_results`) sets, its JSON type, and its place
(fields are declared in the order they are written). :func:`to_json` gives
the published text; :meth:`Results.from_json` / ``Results.model_validate``
read it back, for the report renderer, the tests and scripts.

Presence. The contract's own fields are required. The documented extensions
(docs/contract.md), and every field inside an extension block, have a
default: a file written before an extension existed, or the contract's
minimal shape, still reads, and the default (``None``, ``()``, an empty
record) reads like the missing key. A field is written when it was given
(``exclude_unset``): the builder gives every field of today's file, so the
ones left out are exactly those the writer leaves out (``pushdown`` unless
the run was aggregated inside the database, CUPED's estimates unless it
applied, a histogram without data), and a file read back is written back
unchanged.

Numbers. A null number is undefined, and its record's ``note`` or
``reason`` says why; NaN and infinities are refused (``allow_inf_nan=False``),
so no record holds one and the JSON never does.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from analysis.results.records import (
    ComparisonRecord,
    DecayRecord,
    DescriptiveRecord,
    Distributions,
    FailurePatternsRecord,
    FunnelRecord,
    HeterogeneityRecord,
    OverTimeRecord,
    PreExposureRecord,
    Record,
    SegmentRecord,
    TaskFlowRecord,
    TrendRecord,
)
from analysis.results.records_unsure import UnsureRecord

SCHEMA_VERSION = 1


class VariantRecord(Record):
    share: float | None = None
    ai: bool | None = None


class MetricsRecord(Record):
    primary: str | None = None
    secondary: tuple[str, ...] = ()
    guardrails: tuple[str, ...] = ()


class ExperimentRecord(Record):
    """The analysed config (an extension): dates are ISO text, as written."""

    name: str | None = None
    hypothesis: str | None = None
    owner: str | None = None
    status: str | None = None
    kind: str | None = None
    start: str | None = None
    end: str | None = None
    control: str | None = None
    variants: dict[str, VariantRecord] = Field(default_factory=dict)
    alpha: float | None = None
    source: str | None = None
    window_days: int | None = None
    metrics: MetricsRecord = Field(default_factory=MetricsRecord)
    segments: tuple[str, ...] = ()


class DataRecord(Record):
    """What cleaning kept and set aside (docs/contract.md, "Cleaning")."""

    units: dict[str, int]
    events: int
    duplicates_dropped: int
    crossovers_excluded: int
    quarantined_rows: int


class ExpectationRecord(Record):
    """One expectation's outcome (``failed_expectations[]``, ``expectations[]``).

    ``success`` is written in ``expectations[]`` only. ``min_value``,
    ``max_value`` and ``value_set`` are not written by Proof's validation; the
    report names a value rule's bounds when a record carries them.
    """

    table: str | None = None
    expectation: str | None = None
    column: str | None = None
    severity: str | None = None
    unexpected_count: int | None = None
    examples: tuple[str, ...] = ()
    element_count: int | None = None
    unexpected_share: float | None = None
    condition: str | None = None
    reason: str | None = None
    explain: str | None = None
    observed: bool | int | float | str | None = None
    error: str | None = None
    success: bool | None = None
    min_value: int | float | None = None
    max_value: int | float | None = None
    value_set: tuple[bool | int | float | str | None, ...] = ()


class PartitionsRecord(Record):
    validated: int = 0
    reused: int = 0


class ValidationRecord(Record):
    """The validation summary (:meth:`analysis.validation_report.ValidationReport.summary`).

    ``page`` is not written by Proof: a results file may name its data quality
    page, which the report then links when it is a plain ``*.html`` name.
    """

    success: bool
    expectations_evaluated: int | None = None
    passed: int | None = None
    failed: int | None = None
    rows: dict[str, int] = Field(default_factory=dict)
    failed_expectations: tuple[ExpectationRecord, ...]
    expectations: tuple[ExpectationRecord, ...] = ()
    quarantine: dict[str, dict[str, int]] = Field(default_factory=dict)
    partitions: PartitionsRecord = Field(default_factory=PartitionsRecord)
    page: str | None = None


class SrmRecord(Record):
    p_value: float | None
    flagged: bool
    chi2: float | None = None
    expected: dict[str, float]
    observed: dict[str, int]
    note: str | None = None


class DecisionRecord(Record):
    recommendation: str
    reasons: tuple[str, ...]


class PushdownRecord(Record):
    """A run aggregated inside the database: where, and what it did not compute."""

    computed_in: str | None = None
    dialect: str | None = None
    rows_returned: dict[str, int] = Field(default_factory=dict)
    not_available: tuple[str, ...] = ()


# --------------------------------------------------------------------------- results


class Results(Record):
    """One run's ``results.json``.

    ``pushed_down`` is the file's ``pushdown`` record, written only for runs
    aggregated inside the database.
    """

    schema_version: int
    experiment_id: str
    run_id: str
    analysis_date: str
    generated_at: str | None = None
    experiment: ExperimentRecord = Field(default_factory=ExperimentRecord)
    data: DataRecord
    validation: ValidationRecord
    srm: SrmRecord
    comparisons: tuple[ComparisonRecord, ...]
    pooled_ai: tuple[ComparisonRecord, ...] = ()
    pre_exposure: PreExposureRecord | None = None
    descriptive: tuple[DescriptiveRecord, ...] = ()
    segments: tuple[SegmentRecord, ...]
    heterogeneity: tuple[HeterogeneityRecord, ...] = ()
    over_time: OverTimeRecord | None = None
    exposure_trend: tuple[TrendRecord, ...] = ()
    funnel: tuple[FunnelRecord, ...] = ()
    distributions: Distributions = Field(default_factory=Distributions)
    failure_patterns: FailurePatternsRecord | None = None
    decay: DecayRecord | None = None
    task_flow: TaskFlowRecord | None = None
    unsure: UnsureRecord | None = None
    decision: DecisionRecord
    pushed_down: PushdownRecord | None = Field(default=None, alias="pushdown")

    @classmethod
    def from_json(cls, text: str | bytes) -> Results:
        """A published ``results.json`` (raises ``pydantic.ValidationError`` if it is not one)."""
        return cls.model_validate_json(text)

    def has(self, field: str) -> bool:
        """Whether the file has the top-level ``field`` (older files lack the extensions)."""
        return field in self.model_fields_set

    def to_json(self) -> str:
        return to_json(self)


def to_json(results: Results) -> str:
    """The published text: the fields that are set, in order, indented; never NaN."""
    data: dict[str, Any] = results.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
