"""The models of ``sources.yaml``: where an experiment's data is (contract section 4).

A DuckDB file, parquet or CSV files (paths or globs), a SQL database whose
URI an environment variable holds, or Apache Spark (parquet paths or tables);
each may map the contract's columns to its own (``columns:``).
:meth:`relations` names the two tables as the source's SQL reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

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

    def relations(self) -> Mapping[str, str]:
        """Each role's table, as the source's SQL names it."""
        return {"assignments": self.assignments, "events": self.events}


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

    def relations(self) -> Mapping[str, str]:
        """Each role's table, as the source's SQL names it."""
        return {"assignments": self.assignments, "events": self.events}


def is_path(value: str) -> bool:
    """A spark source's table given as files (a path, a glob or a URL), not a table name."""
    return "/" in value or "*" in value or value.endswith(".parquet")


class SparkSource(_Strict):
    """Apache Spark: the run's SQL runs in a Spark session (always pushed down)."""

    kind: Literal["spark"]
    master: str = Field(
        default="local[2]",
        description=(
            "Spark master: local[N] (a session in this process with N workers), "
            "spark://host:7077, yarn, k8s://…; a master whose URL carries a "
            "token goes in master_env instead."
        ),
    )
    master_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description=(
            "Name of an environment variable holding the master (instead of master), "
            "for a URL with credentials: it is never written to a log or a report."
        ),
    )
    assignments: str = Field(
        description=(
            "A parquet path or glob (relative to the config dir, or a URL such as "
            "s3a://bucket/assignments/) or the name of a table in Spark's catalog."
        )
    )
    events: str = Field(description="As assignments.")
    columns: dict[str, str] = Field(default_factory=dict)
    conf: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Spark settings for the session (spark.executor.memory: 4g, …); "
            "not for credentials, which Spark reads from the environment."
        ),
    )

    @model_validator(mode="after")
    def _one_master(self) -> SparkSource:
        if self.master_env is not None and "master" in self.model_fields_set:
            raise ValueError("give master or master_env, not both")
        return self

    def relations(self) -> Mapping[str, str]:
        """Each role's table: a table name as it is, files under the view the session
        registers for them (:func:`analysis.sql.spark.open_spark`)."""
        return {
            role: (f"proof_source_{role}" if is_path(value) else value)
            for role, value in (("assignments", self.assignments), ("events", self.events))
        }


#: The sources the database engine runs inside (``pushdown``; Spark always).
DatabaseSource = DuckDBSource | SqlSource | SparkSource
AnySource = DuckDBSource | FileSource | SqlSource | SparkSource

Source = Annotated[DuckDBSource | FileSource | SqlSource | SparkSource, Field(discriminator="kind")]
