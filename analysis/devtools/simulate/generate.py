"""Simulating experiments: units and their latents, the survey, tickets, crossovers, tables."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from analysis.config.experiments import Experiment
from analysis.devtools.simulate.behaviours import (
    CONTROL_BEHAVIOUR,
    ERROR_TYPES,
    REJECT_REASONS,
    ArmBehaviour,
    _with_ai_of,
    default_behaviours,
)
from analysis.devtools.simulate.events import (
    _ArmTable,
    _EventSink,
    _simulate_tasks,
    _uniform_us,
)
from analysis.devtools.simulate.model import (
    ACTIVITY_SHAPE,
    ASSIGNMENTS_SCHEMA,
    EVENT_NAMES,
    EVENTS_SCHEMA,
    LOW_TRUST_SHARE,
    PLAN_ACTIVITY,
    PLAN_PROBS,
    PLANS,
    PLATFORM_PROBS,
    PLATFORMS,
    US_PER_DAY,
    IntArray,
    SimulatedData,
    _Timeline,
)


def _decode(names: Sequence[str], codes: npt.NDArray[np.integer]) -> pl.Series:
    """Map integer codes to their names via an Enum gather and a String cast."""
    return pl.Series(values=list(names), dtype=pl.Enum(list(names))).gather(codes).cast(pl.String)


def simulate_experiment(
    experiment: Experiment,
    units: int,
    as_of: dt.date,
    seed: int,
    behaviours: Mapping[str, ArmBehaviour] | None = None,
    aa: bool = False,
    duplicate_rate: float = 0.002,
    crossover_rate: float = 0.0005,
) -> SimulatedData:
    """Simulate ``units`` units of one experiment observed up to the end of ``as_of``.

    ``behaviours`` defaults to :func:`default_behaviours` (``aa`` is passed on;
    it is ignored when ``behaviours`` is given).  A share ``duplicate_rate`` of
    event rows is appended a second time (identical rows, same ``event_id``), and
    a share ``crossover_rate`` of units gets a second assignment row in another
    variant, so that the pipeline's de-duplication and crossover handling are
    exercised.  The result depends only on the arguments.
    """
    if units < 1:
        raise ValueError(f"units must be >= 1, got {units}")
    if not (0 <= duplicate_rate <= 1 and 0 <= crossover_rate <= 1):
        raise ValueError("duplicate_rate and crossover_rate must be in [0, 1]")
    arms = default_behaviours(experiment, aa) if behaviours is None else behaviours
    names = list(experiment.variants)
    missing = [name for name in names if name not in arms]
    if missing:
        raise ValueError(f"no behaviour for variant(s) {missing} of {experiment.id!r}")
    timeline = _Timeline.of(experiment, as_of)
    pre_set = len(names)
    table = _ArmTable.of(
        [arms[name] for name in names] + [_with_ai_of(arms[experiment.control], CONTROL_BEHAVIOUR)]
    )
    rng = np.random.default_rng(seed)

    # Units and their latents.
    shares = np.array([experiment.variants[n].share for n in names], dtype=np.float64)
    variant = rng.choice(len(names), size=units, p=shares / shares.sum()).astype(np.int64)
    platform = rng.choice(len(PLATFORMS), size=units, p=PLATFORM_PROBS)
    plan = rng.choice(len(PLANS), size=units, p=PLAN_PROBS)
    idx = np.arange(units, dtype=np.int64)
    start = np.full(units, timeline.start_us, dtype=np.int64)
    assigned = _uniform_us(rng, start, np.full(units, timeline.assign_end_us, dtype=np.int64))
    low_trust = rng.random(units) < LOW_TRUST_SHARE
    activity = np.asarray(PLAN_ACTIVITY)[plan] * rng.gamma(
        ACTIVITY_SHAPE, 1 / ACTIVITY_SHAPE, units
    )
    end = np.full(units, timeline.end_us, dtype=np.int64)
    window_end = (
        end if timeline.window_us is None else np.minimum(assigned + timeline.window_us, end)
    )
    exposed_days = (end - assigned) / US_PER_DAY
    pre_days = timeline.pre_us / US_PER_DAY
    sink = _EventSink()

    tasks = _simulate_tasks(
        rng, sink, table, variant, pre_set, assigned, window_end, end, timeline.pre_us,
        low_trust, activity * exposed_days, activity * pre_days, np.random.default_rng([seed, 21]),
    )  # fmt: skip

    # Trust survey: at most once per unit, inside its analysis window.
    answers = rng.random(units) < table["survey_prob"][variant]
    who = idx[answers]
    cdf = table.trust_cdf[variant[answers]]
    likert = np.minimum((rng.random(len(who))[:, None] >= cdf).sum(axis=1), 6) + 1
    sink.add(
        "trust_survey",
        who,
        _uniform_us(rng, assigned[answers], window_end[answers]),
        likert.astype(np.float64),
    )

    # Support tickets: a Poisson process in the experiment and in the pre-period.
    n_in = rng.poisson(table["tickets_per_day"][variant] * activity * exposed_days)
    n_pre = rng.poisson(table["tickets_per_day"][pre_set] * activity * pre_days)
    unit_in, unit_pre = np.repeat(idx, n_in), np.repeat(idx, n_pre)
    sink.add("support_ticket", unit_in, _uniform_us(rng, assigned[unit_in], end[unit_in]))
    sink.add(
        "support_ticket",
        unit_pre,
        _uniform_us(rng, assigned[unit_pre] - timeline.pre_us, assigned[unit_pre]),
    )

    # Crossovers: a second assignment row in another variant, at a later time.
    crossed = idx[rng.random(units) < crossover_rate]
    other = (variant[crossed] + rng.integers(1, len(names), len(crossed))) % len(names)
    again = _uniform_us(
        rng, assigned[crossed], np.full(len(crossed), timeline.assign_end_us, dtype=np.int64)
    )

    raw = sink.frame(rng, duplicate_rate)

    assignments = _assignments_frame(
        experiment.id,
        names,
        np.concatenate([idx, crossed]),
        np.concatenate([variant, other]),
        np.concatenate([assigned, again]),
        np.concatenate([platform, platform[crossed]]),
        np.concatenate([plan, plan[crossed]]),
    )
    reasons = np.array([arms[name].reject_reasons for name in names] + [(1.0, 0, 0, 0)])
    labels = _reject_labels(np.random.default_rng([seed, 19]), raw, variant, reasons)
    errors, types = _ai_errors(np.random.default_rng([seed, 20]), raw, variant, arms, names)
    raw, labels = pl.concat([raw, errors]), pl.concat([labels, types])
    events = _events_frame(experiment.id, raw, units, tasks, labels)
    return SimulatedData(assignments, events)


def _ai_errors(
    rng: np.random.Generator,
    raw: pl.DataFrame,
    variant: npt.NDArray[np.int64],
    arms: Mapping[str, ArmBehaviour],
    names: Sequence[str],
) -> tuple[pl.DataFrame, pl.Series]:
    """``ai_error`` rows after some AI outputs (each with its arm's ``error_prob``), at the
    output's time and outside any task, numbered after every other event, with their types
    as labels. One pair of uniforms per output number, from a stream of their own."""
    shown = raw.filter(pl.col("code") == EVENT_NAMES.index("ai_shown")).unique(
        "n", keep="first", maintain_order=True
    )
    size = int(raw["n"].to_numpy().max()) + 1 if raw.height else 0
    numbers = shown["n"].to_numpy()
    fails, kind = rng.random(size)[numbers], rng.random(size)[numbers]
    arm = variant[shown["unit"].to_numpy()]
    probs = np.array([arms[name].error_prob for name in names])
    hit = fails < probs[arm]
    cdf = np.cumsum(np.array([arms[name].error_types for name in names]), axis=1)[arm[hit]]
    pick = np.minimum((kind[hit][:, None] >= cdf).sum(axis=1), len(ERROR_TYPES) - 1)
    errors = shown.filter(pl.lit(hit)).with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + size).alias("n"),
        pl.lit(EVENT_NAMES.index("ai_error"), dtype=shown.schema["code"]).alias("code"),
        pl.lit(np.nan, dtype=shown.schema["value"]).alias("value"),
        pl.lit(-1, dtype=shown.schema["task"]).alias("task"),
    )
    return errors.select(raw.columns), _decode(ERROR_TYPES, pick).alias("label")


def _reject_labels(
    rng: np.random.Generator,
    raw: pl.DataFrame,
    variant: npt.NDArray[np.int64],
    reasons: npt.NDArray[np.float64],
) -> pl.Series:
    """The ``label`` of each event: a reason for an ``ai_rejected`` (its arm's
    ``reject_reasons``), null for the others. One uniform per event number, from a stream
    of its own: a duplicate row gets its original's label, and nothing else moves."""
    numbers = raw["n"].to_numpy()
    uniform = rng.random(int(numbers.max()) + 1 if numbers.size else 0)[numbers]
    cdf = np.cumsum(reasons, axis=1)[variant[raw["unit"].to_numpy()]]
    pick = np.minimum((uniform[:, None] >= cdf).sum(axis=1), len(REJECT_REASONS) - 1)
    rejected = raw["code"].to_numpy() == EVENT_NAMES.index("ai_rejected")
    named = _decode(REJECT_REASONS, pick)
    return pl.select(pl.when(pl.lit(rejected)).then(named)).to_series().alias("label")


def _assignments_frame(
    experiment_id: str,
    variants: Sequence[str],
    unit: IntArray,
    variant: IntArray,
    assigned: IntArray,
    platform: IntArray,
    plan: IntArray,
) -> pl.DataFrame:
    frame = pl.DataFrame({"u": unit, "assigned_at": assigned}).select(
        pl.lit(experiment_id, dtype=pl.String).alias("experiment_id"),
        pl.concat_str(pl.lit(f"{experiment_id}-u"), pl.col("u").cast(pl.String)).alias("unit_id"),
        _decode(variants, variant).alias("variant"),
        pl.col("assigned_at").cast(pl.Datetime("us", "UTC")),
        _decode(PLATFORMS, platform).alias("platform"),
        _decode(PLANS, plan).alias("plan"),
    )
    return frame.match_to_schema(ASSIGNMENTS_SCHEMA)


def _ids(prefix: str, count: int) -> pl.Series:
    """The strings ``{prefix}0 .. {prefix}{count-1}``, built by polars."""
    return pl.select(
        pl.concat_str(pl.lit(prefix), pl.int_range(count, dtype=pl.Int64).cast(pl.String))
    ).to_series()


def _events_frame(
    experiment_id: str, raw: pl.DataFrame, units: int, tasks: int, labels: pl.Series
) -> pl.DataFrame:
    """The contract's events table from the numeric columns of :meth:`_EventSink.frame`.

    Unit and task ids are gathered from the (fewer) per-unit and per-task strings
    instead of being formatted once per event, which halves the string work.
    """
    frame = raw.select(
        pl.concat_str(pl.lit(f"{experiment_id}-e"), pl.col("n").cast(pl.String)).alias("event_id"),
        pl.lit(_ids(f"{experiment_id}-u", units)).gather(pl.col("unit")).alias("unit_id"),
        pl.col("ts").cast(pl.Datetime("us", "UTC")),
        _decode(EVENT_NAMES, raw["code"].to_numpy()).alias("event"),
        pl.col("value").fill_nan(None),
        pl.lit(_ids(f"{experiment_id}-t", tasks))
        .gather(pl.when(pl.col("task") >= 0).then(pl.col("task")))
        .alias("task_id"),
        pl.lit(labels).alias("label"),
    )
    return frame.match_to_schema(EVENTS_SCHEMA)


def derived_seed(seed: int, experiment_id: str) -> int:
    """A seed for one experiment, stable under reordering of the experiments."""
    sequence = np.random.SeedSequence([seed, zlib.crc32(experiment_id.encode())])
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def simulate(
    experiments: Sequence[Experiment],
    units: int,
    as_of: dt.date,
    seed: int,
    aa: bool = False,
    duplicate_rate: float = 0.002,
    crossover_rate: float = 0.0005,
    clean: Collection[str] = (),
) -> SimulatedData:
    """Simulate ``units`` units in each experiment and concatenate the tables.

    Each experiment gets its own seed from :func:`derived_seed`, so adding an
    experiment does not change the data of the others.  Experiments that have
    not started by ``as_of`` are skipped. The experiments named in ``clean``
    get no injected defects (no duplicate events, no crossovers): their data
    passes every check, as a healthy experiment's should.
    """
    parts = [
        simulate_experiment(
            experiment,
            units,
            as_of,
            derived_seed(seed, experiment.id),
            aa=aa,
            duplicate_rate=0.0 if experiment.id in clean else duplicate_rate,
            crossover_rate=0.0 if experiment.id in clean else crossover_rate,
        )
        for experiment in experiments
        if experiment.start <= as_of
    ]
    if not parts:
        return SimulatedData(
            pl.DataFrame(schema=ASSIGNMENTS_SCHEMA), pl.DataFrame(schema=EVENTS_SCHEMA)
        )
    return SimulatedData(
        pl.concat([p.assignments for p in parts]), pl.concat([p.events for p in parts])
    )
