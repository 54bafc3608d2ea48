"""A seeded, vectorised generator of realistic experiment data, and its ground truth.

Why this exists: the pipeline's statistics can only be trusted if they recover
effects we planted ourselves.  This package simulates the two input tables of the
data contract (``assignments`` and ``events``) from a small, documented set of
generative parameters per arm (:class:`ArmBehaviour`), and derives *analytically*
the population value of every metric of the catalog (:func:`true_metric_values`),
so that tests and demos can compare what the pipeline estimates with what is true.

The generative model, per experiment:

* **Units.** Each unit gets a variant (config shares), a platform and a plan
  (fixed probabilities), an assignment time uniform over
  ``[start 00:00 UTC, min(end, as_of) + 1 day)``, a latent *activity* multiplier
  (plan factor times a Gamma(``ACTIVITY_SHAPE``) draw with mean 1, so that the
  pre-period predicts the in-experiment period, as CUPED expects of real users)
  and a latent *low-trust* flag (share :data:`LOW_TRUST_SHARE`).
* **Tasks.** A unit starts tasks as a Poisson process of rate
  ``tasks_per_day * activity`` between its assignment and the end of ``as_of``.
  Each task ends completed, abandoned or open (exclusive outcomes), has Poisson
  retries, Poisson AI outputs (each with an accept/edit/reject/ignore outcome, one
  latency and one cost event) and possibly one feedback vote.  All events of a
  task share its ``task_id`` and fall in the same analysis segment as its
  ``task_started`` (follow-ups are clipped to the segment end, see below).
  An ``ai_rejected`` event carries its reason in ``label`` (one of
  :data:`REJECT_REASONS`, with the arm's ``reject_reasons`` shares). A share
  ``error_prob`` of AI outputs is followed by an ``ai_error`` (outside any
  task) whose ``label`` is its type (:data:`ERROR_TYPES`); the other events
  have no label.
* **Once per unit / per day.** A unit may answer the trust survey once, inside its
  analysis window; support tickets are a Poisson process like tasks.
* **Pre-period.** Every unit also has control-like task and ticket events (no AI
  events, no survey) in ``[assigned_at - pre_window_days, assigned_at)``.
* **Dirt.** A share of event rows is delivered twice (same ``event_id``, identical
  row) and a share of units is assigned a second time to another variant.

Segments (platform, plan) shift activity levels equally in every arm, so true
values and lifts do not depend on the segment mix.

Everything is drawn from one ``numpy.random.default_rng(seed)`` (the labels from
a stream of their own, so that adding them moved nothing else) with no Python
loop over units, tasks or events: counts are drawn per unit and expanded with
``np.repeat``, and string columns are built by polars.

The modules, by job: :mod:`~analysis.devtools.simulate.model` (vocabulary,
constants, schemas, the clock), :mod:`~analysis.devtools.simulate.behaviours`
(the parameters of an arm), :mod:`~analysis.devtools.simulate.events` (task
events), :mod:`~analysis.devtools.simulate.generate` (units, tables,
:func:`simulate`), :mod:`~analysis.devtools.simulate.truth` (true values and
lifts) and :mod:`~analysis.devtools.simulate.writers` (DuckDB, parquet; a write
replaces the rows of its experiments and keeps the other experiments' rows).
"""

from analysis.devtools.simulate.behaviours import (
    AI_BEHAVIOUR,
    AI_FADING_BEHAVIOUR,
    AI_V2_BEHAVIOUR,
    CONTROL_BEHAVIOUR,
    ERROR_TYPES,
    REJECT_REASONS,
    ArmBehaviour,
    default_behaviours,
)
from analysis.devtools.simulate.generate import derived_seed, simulate, simulate_experiment
from analysis.devtools.simulate.model import (
    ABANDON_SPAN,
    ACTIVITY_SHAPE,
    AI_COST_SHAPE,
    AI_EVENTS,
    AI_LATENCY_SIGMA,
    AI_REACTION,
    ASSIGNMENTS_SCHEMA,
    EDIT_FRACTION_BETA,
    EVENT_NAMES,
    EVENTS_SCHEMA,
    FEEDBACK_DELAY_S,
    LOW_TRUST_SHARE,
    OPEN_SPAN,
    PLAN_ACTIVITY,
    PLAN_PROBS,
    PLANS,
    PLATFORM_PROBS,
    PLATFORMS,
    TIME_ON_TASK_SIGMA,
    US_PER_DAY,
    US_PER_SECOND,
    SimulatedData,
)
from analysis.devtools.simulate.truth import true_lifts, true_metric_values
from analysis.devtools.simulate.truth_after_launch import (
    true_task_flow,
    true_unsure,
    true_weekly_change,
)
from analysis.devtools.simulate.writers import WriteSummary, write_duckdb, write_parquet

__all__ = [
    "ABANDON_SPAN",
    "ACTIVITY_SHAPE",
    "AI_BEHAVIOUR",
    "AI_COST_SHAPE",
    "AI_EVENTS",
    "AI_FADING_BEHAVIOUR",
    "AI_LATENCY_SIGMA",
    "AI_REACTION",
    "AI_V2_BEHAVIOUR",
    "ASSIGNMENTS_SCHEMA",
    "CONTROL_BEHAVIOUR",
    "EDIT_FRACTION_BETA",
    "ERROR_TYPES",
    "EVENTS_SCHEMA",
    "EVENT_NAMES",
    "FEEDBACK_DELAY_S",
    "LOW_TRUST_SHARE",
    "OPEN_SPAN",
    "PLANS",
    "PLAN_ACTIVITY",
    "PLAN_PROBS",
    "PLATFORMS",
    "PLATFORM_PROBS",
    "REJECT_REASONS",
    "TIME_ON_TASK_SIGMA",
    "US_PER_DAY",
    "US_PER_SECOND",
    "ArmBehaviour",
    "SimulatedData",
    "WriteSummary",
    "default_behaviours",
    "derived_seed",
    "simulate",
    "simulate_experiment",
    "true_lifts",
    "true_metric_values",
    "true_task_flow",
    "true_unsure",
    "true_weekly_change",
    "write_duckdb",
    "write_parquet",
]
