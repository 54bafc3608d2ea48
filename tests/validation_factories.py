"""Small, clean experiment tables for the validation and quarantine tests, and ways to dirty them.

Three days of events (2026-10-01..03) for 12 units; every value in range, every
id unique, every unit assigned once. Tests break one thing at a time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from analysis import schema
from analysis.config.experiments import Experiment

EXPERIMENT_ID = "exp"
START = dt.date(2026, 10, 1)
AS_OF = dt.date(2026, 10, 3)
NOW = dt.datetime(2026, 10, 4, 6, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
UNITS = 12

#: One task per unit and day: event name, value.
EVENTS_OF_A_TASK: tuple[tuple[str, float | None], ...] = (
    ("task_started", None),
    ("ai_shown", None),
    ("ai_edited", 0.25),
    ("task_completed", 95.0),
    ("feedback", 1.0),
    ("trust_survey", 6.0),
)


def experiment(**validation: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": EXPERIMENT_ID,
            "name": "Test experiment",
            "start": START,
            "end": dt.date(2026, 11, 30),
            "source": "warehouse",
            "control": "control",
            "variants": {"control": {"share": 0.5, "ai": False}, "ai": {"share": 0.5, "ai": True}},
            "metrics": {"primary": "task_completion_rate"},
            "pre_window_days": 14,
            "validation": validation,
        }
    )


def assignments(units: int = UNITS) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "experiment_id": [EXPERIMENT_ID] * units,
            "unit_id": [f"u{i:02d}" for i in range(units)],
            "variant": ["control" if i % 2 == 0 else "ai" for i in range(units)],
            "assigned_at": [T0 + dt.timedelta(minutes=i) for i in range(units)],
            "platform": ["web" if i % 3 else "ios" for i in range(units)],
        },
        schema_overrides={"assigned_at": schema.UTC_MICROS},
    )


def events(units: int = UNITS, days: int = 3) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for day in range(days):
        for i in range(units):
            start = T0 + dt.timedelta(days=day, hours=1, minutes=i)
            for k, (name, value) in enumerate(EVENTS_OF_A_TASK):
                rows.append(
                    {
                        "event_id": f"e{len(rows):05d}",
                        "unit_id": f"u{i:02d}",
                        "ts": start + dt.timedelta(seconds=30 * k),
                        "event": name,
                        "value": value,
                        "task_id": f"t{day}-{i}",
                    }
                )
    return pl.DataFrame(rows, schema=schema.EVENTS)


def tables() -> dict[str, pl.DataFrame]:
    return {"assignments": assignments(), "events": events()}


def set_rows(frame: pl.DataFrame, index: list[int], **values: Any) -> pl.DataFrame:
    """``frame`` with the rows at ``index`` given ``values`` (None for null)."""
    hit = pl.int_range(pl.len()).is_in(index)
    return frame.with_columns(
        pl.when(hit).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def rows_of(frame: pl.DataFrame, event: str) -> list[int]:
    return frame.with_row_index("i").filter(pl.col("event") == event).get_column("i").to_list()
