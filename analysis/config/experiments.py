"""The metric catalog and the experiments that select from it (contract sections 2 and 5).

:class:`Metric` is an entry of ``metrics.yaml``; :class:`Experiment` is one
``experiments/*.yaml``, with its variants, its metric selection and the
options of its statistics and of its data checks.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from analysis.config.base import RESERVED_OUTPUT_NAMES, Identifier, _reserved_reason, _Strict

MetricKind = Literal["proportion", "mean", "ratio", "quantile"]
Category = Literal["outcome", "effort", "trust", "guardrail"]
Goal = Literal["increase", "decrease"]
Aggregation = Literal["count", "sum", "mean"]


#: The longest label a filter (``label_equals``) may name, and "Where it fails" break down.
LABEL_MAX_LENGTH = 200


class EventAggregate(_Strict):
    """One per-unit aggregate of the events named ``event``.

    ``count`` counts the events, ``sum`` adds their ``value``, ``mean`` averages
    it (a unit without such events has no value and does not enter the metric).
    ``value_equals`` keeps only events whose value equals it (e.g. -1 for a
    thumbs-down); ``label_equals`` only events whose ``label`` equals it (e.g.
    the rejections labelled ``wrong_answer``).
    """

    event: Identifier
    agg: Aggregation = "count"
    value_equals: float | None = None
    label_equals: str | None = Field(default=None, min_length=1, max_length=LABEL_MAX_LENGTH)


class Metric(_Strict):
    """A metric of the catalog (contract section 2)."""

    name: Identifier = Field(description="The key of the metric in metrics.yaml.")
    label: str = Field(description="A short human name for reports.")
    description: str = ""
    category: Category
    kind: MetricKind
    goal: Goal
    value: EventAggregate | None = Field(
        default=None,
        description="Per-unit value for proportion and mean metrics; "
        "the event whose values a quantile metric summarises.",
    )
    numerator: EventAggregate | None = None
    denominator: EventAggregate | None = None
    quantile: float | None = Field(default=None, gt=0, lt=1)
    ai_only: bool = Field(
        default=False,
        description="Defined only for AI arms: compared between AI arms, described for one.",
    )

    @model_validator(mode="after")
    def _parts_match_kind(self) -> Metric:
        if self.kind == "ratio":
            if self.numerator is None or self.denominator is None:
                raise ValueError("a ratio metric needs 'numerator' and 'denominator'")
            if self.value is not None:
                raise ValueError("a ratio metric takes 'numerator'/'denominator', not 'value'")
        else:
            if self.value is None:
                raise ValueError(f"a {self.kind} metric needs 'value'")
            if self.numerator is not None or self.denominator is not None:
                raise ValueError(f"a {self.kind} metric takes 'value', not numerator/denominator")
        if (self.kind == "quantile") != (self.quantile is not None):
            raise ValueError("'quantile' is required for, and only for, quantile metrics")
        return self

    def events(self) -> set[str]:
        parts = (self.value, self.numerator, self.denominator)
        return {p.event for p in parts if p is not None}


class Variant(_Strict):
    share: float = Field(gt=0, le=1, description="Intended share of traffic.")
    ai: bool = Field(description="Whether this arm uses AI.")


class MetricSelection(_Strict):
    primary: Identifier
    secondary: list[Identifier] = Field(default_factory=list)
    guardrails: list[Identifier] = Field(default_factory=list)

    def all(self) -> list[str]:
        seen: dict[str, None] = dict.fromkeys([self.primary, *self.secondary, *self.guardrails])
        return list(seen)


class StatisticsOptions(_Strict):
    """How an experiment is analysed, beyond the contract's minimum (all optional)."""

    verdict_basis: Literal["auto", "sequential", "fixed_horizon"] = Field(
        default="auto",
        description="Which result drives verdicts: 'auto' = sequential while the experiment "
        "runs, fixed-horizon once its planned end is reached.",
    )
    sequential_n_star: int = Field(
        default=10_000,
        gt=0,
        description="Tuning sample size N* of the confidence sequence: the total units at "
        "which it is tightest.",
    )
    cuped: bool = Field(default=True, description="Use the pre-period as a CUPED covariate.")
    planned_mde: float = Field(
        default=0.02,
        gt=0,
        description="The relative effect the experiment is meant to detect; "
        "drives the days-to-go estimate.",
    )
    power: float = Field(default=0.8, gt=0, lt=1)
    guardrail_margins: dict[Identifier, float] = Field(
        default_factory=dict,
        description="Non-inferiority margins of guardrails as relative changes, e.g. "
        "{ai_latency_p95: 0.10}: latency may get at most 10% worse.",
    )
    winsorize_percentile: float | None = Field(
        default=None,
        gt=0.5,
        lt=1,
        description="Cap at this pooled percentile (and the mirrored lower one): per-unit "
        "values of mean metrics, and each event's value of ratio numerators that add up "
        "event values; off by default.",
    )
    min_segment_units: int = Field(
        default=100,
        ge=2,
        description="A segment slice with fewer units in an arm is skipped (and says so).",
    )
    bayes_prior_sd: float | None = Field(
        default=None,
        gt=0,
        description="Sd of a normal prior N(0, sd^2) on the relative lift; default: flat.",
    )


class ValueRule(_Strict):
    """The allowed ``value`` of one event: a range (``min``/``max``) or a set (``values``)."""

    min: float | None = Field(default=None, description="Smallest allowed value (inclusive).")
    max: float | None = Field(default=None, description="Largest allowed value (inclusive).")
    values: list[float] | None = Field(
        default=None, min_length=1, description="The only allowed values (e.g. [-1, 1])."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ValueRule:
        has_range = self.min is not None or self.max is not None
        if has_range == (self.values is not None):
            raise ValueError("give either 'min'/'max' or 'values'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is above 'max'")
        return self


class ValidationOptions(_Strict):
    """Bounds of the data checks (docs/validation.md); every key is optional."""

    max_unassigned_event_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Warn when more than this share of the events of the experiment's period "
        "belong to units that no assignment row names.",
    )
    max_unknown_variant_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Assignment rows whose variant is not configured are quarantined with a "
        "warning; above this share of the rows the run stops (the config is likely wrong).",
    )
    max_null_key_share: float = Field(
        default=0.001,
        ge=0,
        le=1,
        description="Rows with a null key (an id, a timestamp, a variant or an event name) are "
        "quarantined with a warning; above this share of a table's rows the run stops. Events "
        "without a unit_id are not the experiment's, so they only warn.",
    )
    task_completed_max_seconds: float = Field(
        default=86_400,
        gt=0,
        description="Largest plausible task_completed value (seconds on a task).",
    )
    value_ranges: dict[Identifier, ValueRule] = Field(
        default_factory=dict,
        description="Allowed values per event name; replaces the default rule of that event.",
    )


#: ISO weekday of the analysis date on which a weekly experiment is analysed (a whole week).
SUNDAY = 7

#: The arm name of all AI arms pooled (:meth:`Experiment.pooled_ai_variants`).
POOLED = "ai (pooled)"


class Experiment(_Strict):
    """One experiment (contract section 5)."""

    id: Identifier
    name: str
    hypothesis: str = ""
    owner: str = ""
    status: Literal["draft", "running", "stopped"] = "running"
    kind: Literal["ab", "holdout"] = Field(
        default="ab",
        description="'ab': a test before launch; 'holdout': a small long-running control "
        "after launch, read weekly for whether the effect is still there.",
    )
    cadence: Literal["daily", "weekly"] | None = Field(
        default=None,
        description="How often it is read: 'weekly' analyses whole weeks, through the last "
        "Sunday (the nightly run once per week); default daily, weekly for a holdout.",
    )
    start: dt.date
    end: dt.date | None = None
    source: Identifier
    control: Identifier
    variants: dict[Identifier, Variant] = Field(min_length=2)
    metrics: MetricSelection
    segments: list[Identifier] = Field(default_factory=list)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    window_days: int | None = Field(
        default=None,
        gt=0,
        description="Days after assignment that count; default: until the analysis date.",
    )
    pre_window_days: int = Field(default=14, ge=0)
    statistics: StatisticsOptions = Field(default_factory=StatisticsOptions)
    validation: ValidationOptions = Field(default_factory=ValidationOptions)

    @field_validator("id")
    @classmethod
    def _not_an_output_name(cls, value: str) -> str:
        reason = _reserved_reason(value)
        if reason is not None:
            reserved = ", ".join(sorted(RESERVED_OUTPUT_NAMES))
            raise ValueError(
                f"experiment id {value!r} {reason} ({reserved}, *.html): its report folder "
                "would break the output directory; choose another id"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        if self.control not in self.variants:
            raise ValueError(f"control {self.control!r} is not one of the variants")
        total = sum(v.share for v in self.variants.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares add up to {total:g}, not 1")
        if self.end is not None and self.end < self.start:
            raise ValueError("'end' is before 'start'")
        return self

    def treatments(self) -> list[str]:
        return [v for v in self.variants if v != self.control]

    @property
    def weekly(self) -> bool:
        """Whether it is read once a week (its cadence, by default its kind's)."""
        return (self.cadence or ("weekly" if self.kind == "holdout" else "daily")) == "weekly"

    def ai_variants(self) -> list[str]:
        return [name for name, v in self.variants.items() if v.ai]

    def pooled_ai_variants(self) -> list[str]:
        """The AI arms that :data:`POOLED` merges against a non-AI control; [] when none.

        Only with two AI arms or more ("does AI help at all?" beside each arm).
        """
        ai = self.ai_variants()
        return ai if len(ai) >= 2 and not self.variants[self.control].ai else []

    def data_through(self, as_of: dt.date) -> dt.date:
        """The last day whose data a run asked for ``as_of`` analyses: never after the planned end.

        A run after the end reads the final data again, so its fixed-horizon
        reading does not change from night to night (reading it on growing data
        would be peeking again: 11 % A/A false positives with 7 nightly reads after
        a 14-day test, against 5.5 % for one).

        A weekly experiment is read through the last Sunday on or before that day:
        whole weeks, the same reading all week long.
        """
        day = self.end if self.end is not None and as_of > self.end else as_of
        if self.weekly:  # never before the start: a first reading in the first week
            day = max(day - dt.timedelta(days=day.isoweekday() % SUNDAY), self.start)
        return day
