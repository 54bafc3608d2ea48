"""The ``decay`` record of results.json, from :mod:`analysis.decay`."""

from __future__ import annotations

from analysis.decay import Decay
from analysis.results.comparison import num, pair
from analysis.results.records import DecayRecord, DecayTrendRecord


def decay_record(decay: Decay) -> DecayRecord:
    return DecayRecord(
        decaying=decay.decaying,
        alpha=decay.alpha,
        level=decay.level,
        trends=tuple(
            DecayTrendRecord(
                metric=t.metric.name,
                label=t.metric.label,
                goal=t.metric.goal,
                control=t.control,
                treatment=t.treatment,
                units=t.estimate.n if t.estimate is not None else 0,
                baseline=num(t.baseline),
                slope=num(t.estimate.slope) if t.estimate is not None else None,
                slope_ci=pair(t.interval),
                slope_sequential_ci=pair(t.sequential_interval),
                p_value=num(t.p_value),
                decaying=t.decaying,
                note=t.note,
            )
            for t in decay.tests
        ),
    )
