"""The models of ``sources.yaml``: where an experiment's data is (contract section 4).

A DuckDB file, parquet or CSV files (paths or globs), or a SQL database whose
URI an environment variable holds; each may map the contract's columns to its
own (``columns:``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from analysis.config.base import _Strict


class DuckDBSource(_Strict):
    kind: Literal["duckdb"]
    path: Path
    assignments: str = "assignments"
    events: str = "events"
    columns: dict[str, str] = Field(default_factory=dict)
    validate_in_database: bool = Field(
        default=False,
        description=(
            "Run the quarantine and the GX suites as SQL inside DuckDB and read only "
            "the rows the quarantine keeps (no pandas, no validation cache); false: "
            "read every row and validate pandas copies per day partition, cached."
        ),
    )
    pushdown: bool = Field(
        default=False,
        description=(
            "Run validation, quarantine and the aggregation inside DuckDB, as for a "
            "sql source with pushdown: only sufficient statistics and the quarantined "
            "rows come back, and DuckDB spills to disk beyond memory_limit."
        ),
    )
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description=(
            "DuckDB's memory_limit for Proof's queries in the file, e.g. '8GB' "
            "(default: DuckDB's, 80% of RAM); beyond it DuckDB spills to disk."
        ),
    )


class FileSource(_Strict):
    kind: Literal["parquet", "csv"]
    assignments: str = Field(description="Path or glob, relative to the config dir.")
    events: str = Field(description="Path or glob, relative to the config dir.")
    columns: dict[str, str] = Field(default_factory=dict)


class SqlSource(_Strict):
    kind: Literal["sql"]
    uri_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Name of the environment variable holding the database URI.",
    )
    assignments: str
    events: str
    columns: dict[str, str] = Field(default_factory=dict)
    pushdown: bool = Field(
        default=False,
        description=(
            "Run validation, quarantine and the aggregation inside the database; "
            "only sufficient statistics come back."
        ),
    )
    dialect: str | None = Field(
        default=None,
        description="The sqlglot dialect of the database (default: guessed from the URI).",
    )

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlglot.dialects.dialect import Dialects

        known = sorted(d.value for d in Dialects if d.value)
        if value not in known:
            raise ValueError(f"unknown SQL dialect {value!r} (known: {', '.join(known)})")
        return value


Source = Annotated[DuckDBSource | FileSource | SqlSource, Field(discriminator="kind")]
