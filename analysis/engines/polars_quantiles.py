"""The polars engine's quantile metrics: each arm's summary from its events in memory.

Quantiles need the event values themselves, not per-unit sums; the summary
(:class:`~analysis.stats.quantile.QuantileSummary`) is what the statistics
read, as from the database engine (:mod:`analysis.sql.quantile_summaries`).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.config.experiments import POOLED, Experiment, Metric
from analysis.stats.quantile import QuantileSample, QuantileSummary, summarize


def quantile_events(metrics: Sequence[Metric]) -> list[str]:
    """The events whose values quantile metrics need."""
    return sorted({m.value.event for m in metrics if m.kind == "quantile" and m.value})


def quantile_summaries(
    in_window: pl.LazyFrame, metrics: Sequence[Metric], experiment: Experiment
) -> dict[str, dict[str, QuantileSummary]]:
    """``{metric: {arm: QuantileSummary}}`` for every quantile metric.

    ``in_window``: the run's in-window events (:func:`in_window_events`,
    without the pre-period). Each arm's summary is computed from its events'
    values and units (:func:`~analysis.stats.quantile.summarize`); where the
    experiment pools its AI arms, so is a metric they share, under ``POOLED``.
    """
    alpha = experiment.alpha
    pooled = experiment.pooled_ai_variants()
    result: dict[str, dict[str, QuantileSummary]] = {}
    for m in metrics:
        if m.kind != "quantile":
            continue
        assert m.value is not None
        assert m.quantile is not None
        frame = (
            in_window.filter((pl.col("event") == m.value.event) & pl.col("value").is_not_null())
            .select(
                "variant",
                pl.col("value").cast(pl.Float64),
                pl.col("unit_id").cast(pl.Categorical).to_physical().cast(pl.Int64).alias("unit"),
            )
            .collect(engine="streaming")
        )
        groups = {
            str(v): part for (v,), part in frame.partition_by("variant", as_dict=True).items()
        }
        if pooled and not m.ai_only:
            groups[POOLED] = frame.filter(pl.col("variant").is_in(pooled))
        result[m.name] = {
            arm: summarize(
                QuantileSample(part["value"].to_numpy(), part["unit"].to_numpy().astype("int64")),
                m.quantile,
                alpha,
            )
            for arm, part in groups.items()
            if part.height
        }
    return result
