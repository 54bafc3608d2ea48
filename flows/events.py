"""Proof's Prefect events: their names, resources and payloads, in one place.

- ``proof.data.landed`` — new data for an experiment (emitted by ``watch-sources``,
  or by anyone: a loader, a dbt job, ``prefect event emit``); a deployment
  trigger runs ``analyze-experiment`` for it. Payload: optional ``as_of``
  (YYYY-MM-DD).
- ``proof.decision.made`` — a report was published. Payload: ``recommendation``,
  ``reasons``, ``run_id``, ``as_of``, ``report`` (its link), ``attention`` (true
  for "don't ship" and "investigate"). The resource also has the labels
  ``proof.recommendation`` and ``proof.attention`` ("true"/"false"): automation
  triggers match labels, not payloads.
- ``proof.validation.failed`` — a critical validation failed; nothing was
  published. Payload: ``run_id``, ``failed`` (the failed expectations).
- ``proof.effect.decaying`` — a holdout's effect fades week after week
  (``results.decay``, always-valid). Payload: ``run_id``, ``as_of``, ``report``,
  ``trends`` (the fading ones: metric, arms, slope per week and its interval).

Every event's resource is the experiment: ``proof.experiment.<experiment_id>``.
Automations match on these names (see docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from prefect.events import emit_event

DATA_LANDED = "proof.data.landed"
DECISION_MADE = "proof.decision.made"
VALIDATION_FAILED = "proof.validation.failed"
EFFECT_DECAYING = "proof.effect.decaying"

RESOURCE_PREFIX = "proof.experiment."


def experiment_resource(experiment_id: str, name: str | None = None) -> dict[str, str]:
    resource = {"prefect.resource.id": RESOURCE_PREFIX + experiment_id}
    if name:
        resource["prefect.resource.name"] = name
    return resource


def data_landed(experiment_id: str, as_of: dt.date | None, **details: Any) -> None:
    payload: dict[str, Any] = dict(details)
    if as_of is not None:
        payload["as_of"] = as_of.isoformat()
    emit_event(DATA_LANDED, resource=experiment_resource(experiment_id), payload=payload)


def decision_made(results: dict[str, Any], report_url: str, attention: bool) -> None:
    """The resource carries the recommendation as labels, so automations can match on them."""
    resource = experiment_resource(
        results["experiment_id"], (results.get("experiment") or {}).get("name")
    )
    resource["proof.recommendation"] = results["decision"]["recommendation"]
    resource["proof.attention"] = "true" if attention else "false"
    emit_event(
        DECISION_MADE,
        resource=resource,
        payload={
            "recommendation": results["decision"]["recommendation"],
            "reasons": list(results["decision"]["reasons"]),
            "run_id": results["run_id"],
            "as_of": results["analysis_date"],
            "report": report_url,
            "attention": attention,
        },
    )


def validation_failed(experiment_id: str, run_id: str, summary: Mapping[str, Any]) -> None:
    emit_event(
        VALIDATION_FAILED,
        resource=experiment_resource(experiment_id),
        payload={
            "run_id": run_id,
            "failed": [f for f in summary["failed_expectations"] if f["severity"] == "critical"],
        },
    )


def effect_decaying(results: dict[str, Any], report_url: str) -> None:
    """The fading trends of a holdout's published results."""
    fading = [t for t in results["decay"]["trends"] if t["decaying"]]
    emit_event(
        EFFECT_DECAYING,
        resource=experiment_resource(
            results["experiment_id"], (results.get("experiment") or {}).get("name")
        ),
        payload={
            "run_id": results["run_id"],
            "as_of": results["analysis_date"],
            "report": report_url,
            "trends": [
                {
                    "metric": t["metric"],
                    "control": t["control"],
                    "treatment": t["treatment"],
                    "slope_per_week": t["slope"],
                    "interval": t["slope_sequential_ci"],
                }
                for t in fading
            ],
        },
    )
