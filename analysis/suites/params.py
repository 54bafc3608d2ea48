"""The parameters a suite may name, for one run of one experiment (:func:`run_params`).

The experiment's variants and dates, the shares of its ``validation:``
options, the per-event value rules (the defaults, then the experiment's
``value_ranges``) and the columns of the per-unit metric table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from analysis.config.experiments import (
    EventAggregate,
    Experiment,
    Metric,
    ValidationOptions,
    ValueRule,
)
from analysis.suites.conditions import condition_text

#: Per-event value rules used unless ``validation.value_ranges`` replaces them.
#: ``task_completed``'s maximum comes from ``validation.task_completed_max_seconds``.
BASE_VALUE_RULES: Mapping[str, ValueRule] = {
    "ai_edited": ValueRule(min=0, max=1),
    "trust_survey": ValueRule(values=[1, 2, 3, 4, 5, 6, 7]),
    "feedback": ValueRule(values=[-1, 1]),
    "ai_latency": ValueRule(min=0),
    "ai_cost": ValueRule(min=0),
}


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def value_rules(options: ValidationOptions) -> dict[str, ValueRule]:
    """Per-event value rules: the defaults, then the experiment's ``value_ranges``."""
    rules: dict[str, ValueRule] = {
        "task_completed": ValueRule(min=0, max=options.task_completed_max_seconds),
        **BASE_VALUE_RULES,
    }
    rules.update(options.value_ranges)
    return dict(sorted(rules.items()))


def experiment_period(experiment: Experiment, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """``(since, until)``: the experiment's period as of ``as_of``, ``since <= ts < until``.

    From 00:00 UTC of ``start`` minus the pre-period (``events_since``) to the
    end of ``as_of``. Events without a ``unit_id`` cannot be joined to any
    assignment: those whose ``ts`` falls in this period are read with the
    experiment's events, counted and quarantined (``null_unit_id``). The
    unassigned-event share is counted over the same period.
    """
    since = day_start(experiment.start) - dt.timedelta(days=experiment.pre_window_days)
    return since, day_start(as_of + dt.timedelta(days=1))


def share_params(options: ValidationOptions | None = None) -> dict[str, float]:
    """The shares of ``validation:`` the suites name (defaults without an experiment)."""
    options = options or ValidationOptions()
    return {
        "max_unassigned_event_share": options.max_unassigned_event_share,
        "max_unknown_variant_share": options.max_unknown_variant_share,
        "max_null_key_share": options.max_null_key_share,
    }


def run_params(
    experiment: Experiment,
    as_of: dt.date,
    now: dt.datetime,
    *,
    metrics: Sequence[Metric] = (),
    assigned_units: int | None = None,
) -> dict[str, Any]:
    """Every parameter the suites may name, for one run of one experiment.

    ``now`` bounds "not in the future"; ``as_of`` bounds nothing here: rows
    after the analysis date are valid, the analysis windows leave them out.
    """
    options = experiment.validation
    end = day_start(experiment.end + dt.timedelta(days=1)) if experiment.end else None
    rules = value_rules(options)
    params: dict[str, Any] = {
        "experiment_id": experiment.id,
        "as_of": as_of,
        "variants": list(experiment.variants),
        "start": day_start(experiment.start),
        "assigned_at_max": now if end is None else min(end, now),
        "events_since": experiment_period(experiment, as_of)[0],
        "now": now,
        **share_params(options),
        "value_ranges": [
            {"row_condition": condition_text("event", event), "min_value": r.min}
            | ({"max_value": r.max} if r.max is not None else {})
            for event, r in rules.items()
            if r.values is None
        ],
        "value_sets": [
            {"row_condition": condition_text("event", event), "value_set": list(r.values)}
            for event, r in rules.items()
            if r.values is not None
        ],
    }
    params |= unit_metric_params(metrics, rules, experiment.pre_window_days > 0)
    if assigned_units is not None:
        params["assigned_units"] = assigned_units
    return params


def _rule_bounds(rule: ValueRule | None) -> tuple[float | None, float | None]:
    if rule is None:
        return None, None
    if rule.values is not None:
        return min(rule.values), max(rule.values)
    return rule.min, rule.max


def _aggregate_range(
    agg: EventAggregate, rules: Mapping[str, ValueRule]
) -> tuple[bool, float | None, float | None]:
    """(defined for every unit, lower bound, upper bound) of a per-unit aggregate."""
    low, high = _rule_bounds(rules.get(agg.event))
    if agg.value_equals is not None:
        low = high = agg.value_equals
    if agg.agg == "count":
        return True, 0.0, None
    if agg.agg == "sum":
        return True, (0.0 if low is not None and low >= 0 else None), None
    return False, low, high


def unit_metric_params(
    metrics: Sequence[Metric], rules: Mapping[str, ValueRule], with_pre: bool
) -> dict[str, Any]:
    """Column lists of the per-unit metric table (``defined_columns``, ``column_ranges``)."""
    defined: list[dict[str, Any]] = []
    ranges: list[dict[str, Any]] = []

    def add(column: str, is_defined: bool, low: float | None, high: float | None) -> None:
        for suffix in ("", "__pre") if with_pre else ("",):
            if is_defined:
                defined.append({"column": column + suffix})
            if low is not None or high is not None:
                bounds = {"min_value": low} if low is not None else {}
                bounds |= {"max_value": high} if high is not None else {}
                ranges.append({"column": column + suffix} | bounds)

    for m in metrics:
        if m.kind == "ratio" and m.numerator is not None and m.denominator is not None:
            add(f"{m.name}__num", *_aggregate_range(m.numerator, rules))
            add(f"{m.name}__den", *_aggregate_range(m.denominator, rules))
        elif m.kind == "proportion":
            add(m.name, True, 0.0, 1.0)
        elif m.kind == "mean" and m.value is not None:
            add(m.name, *_aggregate_range(m.value, rules))
    return {"defined_columns": defined, "column_ranges": ranges}
