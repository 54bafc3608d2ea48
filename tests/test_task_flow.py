"""Drop-off points (analysis.task_flow): which steps are compared, and sources without tasks.

The shares' truths are recovered in tests/test_pipeline.py and both engines agree
in tests/test_warehouse.py; here, the rules around them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from analysis.aggregates import Moments
from analysis.config.load import load_config
from analysis.devtools.simulate import simulate
from analysis.engines.polars_measure import measure
from analysis.measurement import FlowData
from analysis.sources.read import Tables
from analysis.sql.aggregate import measure_in_database
from analysis.task_flow import AI_STEPS, FLOW_STEPS, task_flow
from tests.pg_factories import _assert_nested_moments, duckdb_file

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
AS_OF = dt.date(2026, 11, 20)


def _flow(shares: dict[str, dict[str, float]], units: int = 1000) -> FlowData:
    """Every unit starts 2 tasks; at each step ``share`` of them, alternating 0 and 2 per unit
    (a spread, so that a variance exists)."""
    moments = {}
    for step, _, _ in FLOW_STEPS:
        by_arm = {}
        for arm, share in shares.get(step, {}).items():
            mean_x = 2 * share
            # x is 0 or 2 with P(2) = share: var = 4 share (1 - share)
            m2_x = units * 4 * share * (1 - share)
            by_arm[arm] = Moments(units, mean_x, 2.0, m2_x, 0.0, 0.0)
        moments[step] = by_arm
    return FlowData(moments)


def test_a_non_ai_control_is_compared_on_the_steps_it_can_reach() -> None:
    experiment = CONFIG.experiment("smart-compose")
    flow = task_flow(
        experiment,
        _flow(
            {
                "ai_shown": {"ai": 0.6},
                "completed": {"control": 0.70, "ai": 0.75},
                "abandoned": {"control": 0.15, "ai": 0.15},
            }
        ),
    )
    assert flow is not None
    assert {c.step for c in flow.comparisons} == {"completed", "abandoned"}
    assert not {s.step for s in flow.shares if s.arm == "control"} & AI_STEPS
    at = flow.diverges["control", "ai"]
    assert at is not None
    assert at.step == "completed"
    assert at.result.diff is not None
    assert abs(at.result.diff - 0.05) < 1e-12


def test_an_ai_control_is_compared_on_every_step_and_no_difference_is_no_divergence() -> None:
    base = CONFIG.experiment("smart-compose")
    ai_control = base.variants["control"].model_copy(update={"ai": True})
    experiment = base.model_copy(update={"variants": {**base.variants, "control": ai_control}})
    same = {step: {"control": 0.3, "ai": 0.3} for step, _, _ in FLOW_STEPS}
    flow = task_flow(experiment, _flow(same))
    assert flow is not None
    assert {c.step for c in flow.comparisons} == {step for step, _, _ in FLOW_STEPS}
    assert flow.diverges["control", "ai"] is None


def test_no_started_task_is_no_section() -> None:
    experiment = CONFIG.experiment("smart-compose")
    assert task_flow(experiment, None) is None
    assert task_flow(experiment, FlowData({})) is None


def test_a_source_without_task_ids_has_no_task_flow(tmp_path: Path) -> None:
    """Events without a ``task_id`` column: the database engine skips the query, the polars
    engine finds no task; every other number is the same."""
    experiment = CONFIG.experiment("smart-compose")
    metrics = CONFIG.metrics_of(experiment)
    data = simulate([experiment], 300, AS_OF, seed=3)
    without = data.events.drop("task_id")
    source = duckdb_file(tmp_path / "without.duckdb", data.assignments, without)
    with_ids = duckdb_file(tmp_path / "with.duckdb", data.assignments, data.events)
    got = measure_in_database("db", source, experiment, metrics, AS_OF)
    want = measure_in_database("db", with_ids, experiment, metrics, AS_OF)
    assert got.flow is None
    assert "task_flow" not in got.rows
    assert want.flow is not None
    _assert_nested_moments(got.data.moments, want.data.moments, "moments")
    assignments = data.assignments.lazy()
    polars_flow = measure(
        Tables(assignments, without.lazy().with_columns(task_id=None)), experiment, metrics, AS_OF
    ).flow
    assert task_flow(experiment, polars_flow) is None
