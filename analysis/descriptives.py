"""Counts for the report's pictures: the AI funnel and value distributions.

Only counts leave this module (reports see results, never data): events per
funnel step per arm, histograms of time on task (log-spaced bins shared by
the arms) and of trust-survey answers.
"""

from __future__ import annotations

import math

import polars as pl

from analysis.measurement import Histogram

FUNNEL_STEPS = (
    ("ai_shown", "AI output shown"),
    ("ai_accepted", "accepted"),
    ("ai_edited", "edited"),
    ("ai_rejected", "rejected"),
    ("task_completed", "tasks completed"),
)
TRUST_VALUES = tuple(range(1, 8))
#: Every event whose rows the pictures read (the rest never leave the partials).
EVENTS = (*(name for name, _ in FUNNEL_STEPS), "trust_survey")
TIME_BINS = 30


def funnel_counts(events: pl.LazyFrame, ai_variants: list[str]) -> dict[str, list[tuple[str, int]]]:
    """``{variant: [(step label, events), ...]}`` for the AI arms, in funnel order."""
    names = [name for name, _ in FUNNEL_STEPS]
    rows = (
        events.filter(pl.col("variant").is_in(ai_variants) & pl.col("event").is_in(names))
        .group_by("variant", "event")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect(engine="streaming")
    )
    found = {(r["variant"], r["event"]): int(r["n"]) for r in rows.iter_rows(named=True)}
    return {
        v: [(label, found.get((v, name), 0)) for name, label in FUNNEL_STEPS] for v in ai_variants
    }


def time_on_task_histogram(events: pl.LazyFrame, variants: list[str]) -> Histogram | None:
    """Completed-task durations, log10-spaced bins from the pooled 0.5-99.5 % range."""
    values = events.filter((pl.col("event") == "task_completed") & (pl.col("value") > 0))
    logs = values.select("variant", pl.col("value").log10().alias("x"))
    bounds = logs.select(
        pl.col("x").quantile(0.005, interpolation="linear").alias("lo"),
        pl.col("x").quantile(0.995, interpolation="linear").alias("hi"),
    ).collect()
    lo, hi = bounds.row(0)
    if lo is None or hi is None or not hi > lo:
        return None
    width = (hi - lo) / TIME_BINS
    binned = (
        logs.with_columns(((pl.col("x") - lo) / width).floor().clip(0, TIME_BINS - 1).alias("bin"))
        .group_by("variant", "bin")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect(engine="streaming")
    )
    counts = {v: [0] * TIME_BINS for v in variants}
    for r in binned.iter_rows(named=True):
        if r["variant"] in counts and r["bin"] is not None and math.isfinite(r["bin"]):
            counts[r["variant"]][int(r["bin"])] = int(r["n"])
    edges = tuple(lo + i * width for i in range(TIME_BINS + 1))
    return Histogram(edges, counts)


def trust_histogram(events: pl.LazyFrame, variants: list[str]) -> dict[str, list[int]]:
    """Answers 1..7 to the trust survey, per arm."""
    rows = (
        events.filter(pl.col("event") == "trust_survey")
        .with_columns(pl.col("value").round(0).cast(pl.Int64).alias("answer"))
        .group_by("variant", "answer")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect(engine="streaming")
    )
    counts = {v: [0] * len(TRUST_VALUES) for v in variants}
    for r in rows.iter_rows(named=True):
        if r["variant"] in counts and r["answer"] in TRUST_VALUES:
            counts[r["variant"]][r["answer"] - 1] = int(r["n"])
    return counts
