"""Validate the input tables with Great Expectations before any statistic.

The suites are data, versioned in ``expectations/<table>.json`` in GX's own
serialised form; each expectation carries ``meta.severity``: ``critical``
failures stop the run before statistics, ``warning`` failures are reported.

GX has no polars engine: this module is the one place where a polars frame
becomes a pandas frame, and only the columns the suite names are converted.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

log = logging.getLogger(__name__)

DEFAULT_SUITE_DIR = Path(__file__).resolve().parent.parent / "expectations"


class CriticalValidationError(RuntimeError):
    """A critical expectation failed: the run stops before any statistic."""

    def __init__(self, summary: Mapping[str, Any]) -> None:
        self.summary = summary
        lines = [
            f"table {f['table']!r}, column {f['column']!r}: {f['expectation']} failed"
            + (f" ({f['unexpected_count']} rows)" if f.get("unexpected_count") is not None else "")
            for f in summary["failed_expectations"]
            if f["severity"] == "critical"
        ]
        super().__init__("critical validation failed:\n  " + "\n  ".join(lines))


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    table: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    outcomes: tuple[ExpectationOutcome, ...]
    rows: Mapping[str, int] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when no critical expectation failed."""
        return not any(o for o in self.outcomes if not o.success and o.severity == "critical")

    def summary(self) -> dict[str, Any]:
        """The ``validation`` object of results.json."""
        return {
            "success": self.success,
            "expectations_evaluated": len(self.outcomes),
            "rows": dict(self.rows),
            "failed_expectations": [
                {
                    "table": o.table,
                    "expectation": o.expectation,
                    "column": o.column,
                    "severity": o.severity,
                    "unexpected_count": o.unexpected_count,
                    "examples": list(o.examples),
                }
                for o in self.outcomes
                if not o.success
            ],
        }


def load_suite_spec(table: str, suite_dir: Path = DEFAULT_SUITE_DIR) -> dict[str, Any]:
    path = suite_dir / f"{table}.json"
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec


def _suite_columns(spec: Mapping[str, Any]) -> list[str]:
    cols = [e["kwargs"]["column"] for e in spec["expectations"] if "column" in e["kwargs"]]
    return list(dict.fromkeys(cols))


def validate_tables(
    tables: Mapping[str, pl.LazyFrame], suite_dir: Path = DEFAULT_SUITE_DIR
) -> ValidationReport:
    """Run each table's suite over the table; returns every outcome."""
    outcomes: list[ExpectationOutcome] = []
    rows: dict[str, int] = {}
    for table, lf in tables.items():
        spec = load_suite_spec(table, suite_dir)
        present = lf.collect_schema().names()
        columns = [c for c in _suite_columns(spec) if c in present]
        frame = lf.select(columns).collect(engine="streaming")
        rows[table] = frame.height
        outcomes += _run_suite(table, spec, frame)
    return ValidationReport(tuple(outcomes), rows)


def _run_suite(
    table: str, spec: Mapping[str, Any], frame: pl.DataFrame
) -> list[ExpectationOutcome]:
    with warnings.catch_warnings():
        # GX and its dependencies emit deprecation noise on import and use.
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.core import ExpectationSuite
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        asset = context.data_sources.add_pandas(f"proof_{table}").add_dataframe_asset(table)
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
        suite = ExpectationSuite(
            name=spec["name"],
            expectations=[ExpectationConfiguration(**e) for e in spec["expectations"]],
        )
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame.to_pandas()})
        result = batch.validate(suite, result_format="SUMMARY")

    outcomes = []
    for r in result.results:
        config = r.expectation_config
        if config is None:  # GX types it optional; a suite's results always carry it
            continue
        details = r.result or {}
        examples = tuple(str(x) for x in (details.get("partial_unexpected_list") or [])[:5])
        outcomes.append(
            ExpectationOutcome(
                table=table,
                expectation=config.type,
                column=config.kwargs.get("column"),
                severity=str((config.meta or {}).get("severity", "critical")),
                success=bool(r.success),
                unexpected_count=details.get("unexpected_count"),
                examples=examples,
            )
        )
    return outcomes
