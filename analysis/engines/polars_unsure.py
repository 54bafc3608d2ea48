"""The polars engine's calibration by bucket (:mod:`analysis.unsure`)."""

from __future__ import annotations

import polars as pl

from analysis.aggregates import Moments, moments_from_row
from analysis.engines.polars_tasks import SHOWN
from analysis.measurement import UnsureData
from analysis.polars_exprs import moment_exprs
from analysis.unsure import CONFIDENCE, DIMENSIONS, GAP, OUTCOMES


def _bucket(value: pl.Expr, edges: tuple[float, ...]) -> pl.Expr:
    """The index of the bucket ``[edges[i], edges[i+1])`` (the last one closed); null outside."""
    inner = pl.sum_horizontal([(value >= e).cast(pl.Int64) for e in edges[1:-1]])
    inside = (value >= edges[0]) & (value <= edges[-1])
    return pl.when(inside).then(inner)


def unsure_data(tasks: pl.LazyFrame) -> UnsureData:
    """Per dimension, arm and bucket the moments of each rate over single-output tasks.

    ``tasks``: the run's :func:`~analysis.engines.polars_tasks.task_table`.
    """
    tasks = tasks.filter(pl.col(SHOWN) == 1)
    whats = [name for name, _ in OUTCOMES]
    found: dict[str, dict[str, dict[int, dict[str, Moments]]]] = {}
    for dimension, _, edges in DIMENSIONS:
        per_unit = (
            tasks.with_columns(_bucket(pl.col(dimension), edges).alias("bucket"))
            .filter(pl.col("bucket").is_not_null())
            .group_by("unit_id", "variant", "bucket")
            .agg(
                pl.len().cast(pl.Float64).alias("tasks"),
                *[pl.col(w).sum() for w in whats],
                pl.col("confidence").sum().alias(CONFIDENCE),
                pl.col("confidence").is_null().any().alias("unknown"),
            )
            .with_columns(
                # confidence and gap only where every task of the unit there has one
                pl.when(~pl.col("unknown")).then(pl.col(CONFIDENCE)).alias(CONFIDENCE),
                pl.when(~pl.col("unknown"))
                .then(pl.col("accepted") - pl.col(CONFIDENCE))
                .alias(GAP),
            )
        )
        exprs = [
            e
            for what in (*whats, CONFIDENCE, GAP)
            for e in moment_exprs(pl.col(what), pl.col("tasks"), f"{what}|")
        ]
        rows = per_unit.group_by("variant", "bucket").agg(exprs).collect(engine="streaming")
        by_arm: dict[str, dict[int, dict[str, Moments]]] = {}
        for row in rows.iter_rows(named=True):
            cells = {what: moments_from_row(row, f"{what}|") for what in (*whats, CONFIDENCE, GAP)}
            by_arm.setdefault(row["variant"], {})[int(row["bucket"])] = {
                w: m for w, m in cells.items() if m.n
            }
        found[dimension] = by_arm
    return UnsureData(found)
