"""The input tables of the contract (section 1) and their Arrow/polars types."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

UTC_MICROS = pl.Datetime("us", "UTC")

ASSIGNMENTS: Mapping[str, pl.DataType] = {
    "experiment_id": pl.String(),
    "unit_id": pl.String(),
    "variant": pl.String(),
    "assigned_at": UTC_MICROS,
}

EVENTS: Mapping[str, pl.DataType] = {
    "event_id": pl.String(),
    "unit_id": pl.String(),
    "ts": UTC_MICROS,
    "event": pl.String(),
    "value": pl.Float64(),
    "task_id": pl.String(),
    # What the product says about the event: a rejection reason, an error type, a model
    # version, a confidence bucket. Text from the data: escaped wherever it is shown.
    "label": pl.String(),
}

TABLES: Mapping[str, Mapping[str, pl.DataType]] = {"assignments": ASSIGNMENTS, "events": EVENTS}

# Columns that may be absent from a source: they are added as nulls.
OPTIONAL_COLUMNS: Mapping[str, frozenset[str]] = {
    "assignments": frozenset(),
    "events": frozenset({"value", "task_id", "label"}),
}
