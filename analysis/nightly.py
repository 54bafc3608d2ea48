"""Simulated nightly reads of an experiment through the real decision path.

A scheduled run reads an experiment every night, and a verdict rule is only
as good as its behaviour over all those reads: a guardrail that passes at
*some* night, a false "better" at *some* night, reads after the planned end.
:func:`nightly_comparisons` replays that: units enrol at a constant rate from
``start`` to ``end``, and each night's run sees the units enrolled up to the
day it analyses (``Experiment.data_through``, so never after
``end``), compared by :func:`analysis.comparisons.compare_all` exactly as a
run compares them. Used by the verdict tests and by ``make calibrate``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from analysis.aggregates import Moments
from analysis.comparisons import Comparison, compare_all
from analysis.config.experiments import Experiment, Metric
from analysis.measurement import ArmData

Values = npt.NDArray[np.float64]


def nights(experiment: Experiment, after_end: int = 0) -> list[dt.date]:
    """Every analysis date from ``start`` to ``end``, and ``after_end`` nights beyond it."""
    if experiment.end is None:
        msg = f"experiment {experiment.id!r} has no planned end to read up to"
        raise ValueError(msg)
    days = (experiment.end - experiment.start).days + 1 + after_end
    return [experiment.start + dt.timedelta(days=d) for d in range(days)]


def _prefix_moments(values: Values, k: int) -> Moments:
    x = values[:k]
    mean = float(x.mean())
    return Moments(k, mean, 1.0, float(((x - mean) ** 2).sum()))


def nightly_comparisons(
    experiment: Experiment,
    metric: Metric,
    control: Values,
    treatment: Values,
    dates: Sequence[dt.date],
) -> list[list[Comparison]]:
    """``result[run][night]``: the comparison of ``metric`` a run on each date reports.

    ``control`` and ``treatment`` are per-unit values of shape (runs, units),
    in enrolment order; enrolment is uniform over the days ``start..end``.
    ``metric`` must be a mean or proportion metric (one value per unit).
    """
    if metric.kind not in ("mean", "proportion"):
        msg = f"nightly simulation takes one value per unit; {metric.name} is a {metric.kind}"
        raise ValueError(msg)
    assert experiment.end is not None
    days = (experiment.end - experiment.start).days + 1
    arm = experiment.treatments()[0]
    out: list[list[Comparison]] = []
    for c_values, t_values in zip(control, treatment, strict=True):
        by_day: dict[dt.date, Comparison] = {}
        reads: list[Comparison] = []
        for date in dates:
            through = experiment.data_through(date)
            if through not in by_day:
                elapsed = (through - experiment.start).days + 1
                moments = {
                    experiment.control: _prefix_moments(c_values, len(c_values) * elapsed // days),
                    arm: _prefix_moments(t_values, len(t_values) * elapsed // days),
                }
                found, _ = compare_all(
                    experiment, [metric], ArmData(moments={metric.name: moments}), through
                )
                by_day[through] = found[0]
            reads.append(by_day[through])
        out.append(reads)
    return out


def fortnight(experiment: Experiment, **statistics: object) -> Experiment:
    """``experiment`` as a 14-night test from 2026-11-01 whose N* is 10,000 units in all."""
    options = experiment.statistics.model_copy(update={"sequential_n_star": 10_000, **statistics})
    return experiment.model_copy(
        update={"start": dt.date(2026, 11, 1), "end": dt.date(2026, 11, 14), "statistics": options}
    )


def guardrail_at_margin(
    experiment: Experiment, metric: Metric, runs: int, seed: int, units: int = 5000
) -> list[list[Comparison]]:
    """Nightly reads of a count guardrail whose true lift is exactly its margin.

    Poisson(0.2) per unit in control, ``0.2 (1 + margin)`` in the treatment, for
    the margin ``experiment`` gives ``metric``; a read that passes is a false pass.
    """
    margin = experiment.statistics.guardrail_margins[metric.name]
    rng = np.random.default_rng(seed)
    control = rng.poisson(0.2, (runs, units)).astype(np.float64)
    treatment = rng.poisson(0.2 * (1 + margin), (runs, units)).astype(np.float64)
    return nightly_comparisons(experiment, metric, control, treatment, nights(experiment))


def aa_reads(
    experiment: Experiment,
    metric: Metric,
    runs: int,
    seed: int,
    after_end: int,
    units: int = 5000,
) -> list[list[Comparison]]:
    """Nightly reads of an A/A count metric (Poisson(3) per unit), also after the end."""
    rng = np.random.default_rng(seed)
    control = rng.poisson(3.0, (runs, units)).astype(np.float64)
    treatment = rng.poisson(3.0, (runs, units)).astype(np.float64)
    return nightly_comparisons(
        experiment, metric, control, treatment, nights(experiment, after_end)
    )
