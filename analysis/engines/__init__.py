"""Engines: where a run's rows are checked and measured, behind one contract.

A run is written once (``flows/analyze.py``): pick the engine, ``check``,
``measure``, then the statistics (:func:`analysis.pipeline.summarise`), which
read only the :class:`~analysis.measurement.Measurement`.

- :class:`~analysis.engines.polars_engine.PolarsEngine`: rows read into
  memory, checked and measured with polars (every source; for a DuckDB file
  with ``validate_in_database: true`` the checks run in the file first);
- :class:`~analysis.engines.database.DatabaseEngine`: checked and measured
  inside the database (``pushdown: true`` on a ``sql`` or ``duckdb`` source;
  always for a ``spark`` source).

:func:`engine_for` is the only place that reads ``pushdown`` and
``validate_in_database``.
"""

from __future__ import annotations

from typing import Any

from analysis.config.sources import AnySource, DuckDBSource, SparkSource, SqlSource
from analysis.engines.base import GX_LOCK, Checked, Engine, RunOptions
from analysis.engines.database import DatabaseEngine
from analysis.engines.polars_engine import PolarsEngine
from analysis.measurement import Measurement

__all__ = [
    "GX_LOCK",
    "Checked",
    "DatabaseEngine",
    "Engine",
    "Measurement",
    "PolarsEngine",
    "RunOptions",
    "engine_for",
]


def engine_for(
    source_name: str,
    source: AnySource,
    options: RunOptions | None = None,
) -> Engine[Any]:
    """The engine a run over ``source`` uses."""
    options = options or RunOptions()
    if isinstance(source, SparkSource) or (
        isinstance(source, SqlSource | DuckDBSource) and source.pushdown
    ):
        return DatabaseEngine(source_name, source, options)
    in_file = isinstance(source, DuckDBSource) and source.validate_in_database
    return PolarsEngine(source_name, source, options, checks_in_database=in_file)
