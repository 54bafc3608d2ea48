"""What a validation found: outcomes per expectation, the run's report, and the stop.

No dataframe or GX import: the engines, the measurement and the flows pass
these around; :mod:`analysis.validation` (GX over polars) and
:mod:`analysis.sql.gx` (GX inside a database) produce them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class CriticalValidationError(RuntimeError):
    """A critical expectation failed: the run stops before any statistic.

    The message names, per failure, the table, column, rule and count.
    """

    def __init__(self, summary: Mapping[str, Any]) -> None:
        self.summary = summary
        lines = [
            failure_line(f) for f in summary["failed_expectations"] if f["severity"] == "critical"
        ]
        super().__init__("critical validation failed:\n  " + "\n  ".join(lines))


def failure_line(f: Mapping[str, Any]) -> str:
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
            "observed": json_scalar(self.observed),
            "error": self.error,
        }


def json_scalar(value: Any) -> Any:
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


# --------------------------------------------------------------------------- text


def format_summary(
    summary: Mapping[str, Any], title: str | None = None, quarantine_dir: str | None = None
) -> str:
    """A readable, plain-text account of a ``validation`` summary (for ``proof validate``).

    ``quarantine_dir``: where the quarantined rows were written, if they were.
    """
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
    lines += [f"  CRITICAL: {failure_line(f)}" for f in critical]
    lines += [f"  warning: {failure_line(f)}" for f in warned]
    quarantine = summary.get("quarantine") or {}
    for table, reasons in quarantine.items():
        if reasons:
            total = sum(reasons.values())
            detail = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
            lines.append(f"  quarantined from {table}: {total:,} rows ({detail})")
    if any(quarantine.values()):
        if quarantine_dir is not None:
            where = f"{quarantine_dir}/<table>.parquet"
            lines.append(f"  quarantined rows, each with its reason: {where}")
        else:
            lines.append(
                "  (not written: a run publishes them in quarantine/<table>.parquet with a reason; "
                "`proof validate --quarantine DIR` writes them to DIR)"
            )
    return "\n".join(lines)
