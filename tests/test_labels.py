"""Event labels (the optional ``label`` column) and metrics that filter by label.

A source without a ``label`` column runs as before, on both engines; a ratio
whose numerator keeps one label (rejections for a wrong answer) recovers the
share the simulation planted; a label filter from the config is a literal in
every dialect, whatever its text.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import sqlglot
from scipy import stats

from analysis import metrics as metrics_mod
from analysis.config.experiments import EventAggregate, Metric
from analysis.config.load import load_config
from analysis.config.sources import FileSource
from analysis.devtools.simulate import (
    REJECT_REASONS,
    default_behaviours,
    simulate,
    simulate_experiment,
)
from analysis.devtools.simulate.truth import true_metric_values
from analysis.failures import failure_metrics
from analysis.measurement import Window
from analysis.quarantine import collect_tables
from analysis.sources.read import read_experiment
from analysis.sql.aggregate import compile_queries, measure_in_database
from analysis.sql.database import Database
from analysis.sql.gx import check_experiment_sql
from analysis.stats.inference import ratio_estimate
from tests.pg_factories import _assert_nested_moments, duckdb_file

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
AS_OF = dt.date(2026, 11, 20)


def _share(label: str) -> Metric:
    """Rejections with ``label`` per rejection, as "Where it fails" measures them (and as a
    config may write one: docs/configuration.md), named ``<label>_share``."""
    metric = failure_metrics([("ai_rejected", label)])[0].metric
    return metric.model_copy(update={"name": f"{label}_share"})


def test_a_source_without_a_label_column_runs_unchanged(tmp_path: Path) -> None:
    """The catalog's measurement of a DuckDB file whose events have no ``label`` equals the
    one with it (to 1e-9: DuckDB's parallel sums are not summed in one order); a label
    filter there keeps no row (labels are null)."""
    experiment = CONFIG.experiment("auto-triage")
    metrics = [*CONFIG.metrics_of(experiment), _share("wrong_answer")]
    data = simulate([experiment], 300, AS_OF, seed=3)
    assert "label" in data.events.columns
    with_label = duckdb_file(tmp_path / "with.duckdb", data.assignments, data.events)
    without = duckdb_file(tmp_path / "without.duckdb", data.assignments, data.events.drop("label"))
    got = measure_in_database("db", without, experiment, metrics, AS_OF)
    want = measure_in_database("db", with_label, experiment, metrics, AS_OF)
    catalog = {m.name for m in CONFIG.metrics_of(experiment)}
    _assert_nested_moments(
        {k: v for k, v in got.data.moments.items() if k in catalog},
        {k: v for k, v in want.data.moments.items() if k in catalog},
        "moments",
    )
    assert got.data.quantiles == want.data.quantiles
    assert got.cleaning == want.cleaning
    _assert_nested_moments(
        {k: v for k, v in got.weekly.items() if k in catalog},
        {k: v for k, v in want.weekly.items() if k in catalog},
        "weekly",
    )
    # GX inside the database: the absent column is no failed check
    _, report = check_experiment_sql(Database.open("db", without), experiment, AS_OF)
    assert not [o for o in report.outcomes if not o.success and o.column == "label"]
    assert not [o for o in report.outcomes if not o.success and o.severity == "critical"]
    labelled = got.data.moments["wrong_answer_share"]
    assert all(m.mean_x == 0 for m in labelled.values())
    assert any(m.mean_x > 0 for m in want.data.moments["wrong_answer_share"].values())

    # The polars engine reads parquet files without the column: null labels, the same numbers.
    measured = {}
    for name, events in (("with", data.events), ("without", data.events.drop("label"))):
        folder = tmp_path / name
        folder.mkdir()
        data.assignments.write_parquet(folder / "assignments.parquet")
        events.write_parquet(folder / "events.parquet")
        source = FileSource(
            kind="parquet",
            assignments=str(folder / "assignments.parquet"),
            events=str(folder / "events.parquet"),
        )
        tables = collect_tables(read_experiment("files", source, experiment.id))
        assert tables["events"].schema["label"] == pl.String
        window = Window(AS_OF, experiment.window_days, experiment.pre_window_days)
        units = metrics_mod.clean_assignments(tables["assignments"].lazy(), window)
        table = metrics_mod.unit_table(units, tables["events"].lazy(), metrics, window)
        measured[name] = metrics_mod.arm_moments(table, metrics)
    _assert_nested_moments(
        {k: v for k, v in measured["without"].items() if k in catalog},
        {k: v for k, v in measured["with"].items() if k in catalog},
        "polars moments",
    )
    assert all(m.mean_x == 0 for m in measured["without"]["wrong_answer_share"].values())


def test_a_label_filter_recovers_the_share_the_simulation_planted() -> None:
    """Each reason's share of the rejections, per AI arm, against the simulation's truth:
    inside the estimate's 99.9 % interval (delta method, clustered by unit)."""
    experiment = CONFIG.experiment("auto-triage")
    metrics = [_share(r) for r in REJECT_REASONS]
    behaviours = default_behaviours(experiment)
    data = simulate_experiment(experiment, 4000, AS_OF, seed=19, behaviours=behaviours)
    window = Window(AS_OF, experiment.window_days, experiment.pre_window_days)
    units = metrics_mod.clean_assignments(data.assignments.lazy(), window)
    table = metrics_mod.unit_table(units, data.events.lazy(), metrics, window)
    moments = metrics_mod.arm_moments(table, metrics)
    truth = true_metric_values(experiment, behaviours, {m.name: m for m in metrics}, AS_OF)
    z = stats.norm.ppf(1 - 0.001 / 2)
    for arm in experiment.ai_variants():
        planted = dict(zip(REJECT_REASONS, behaviours[arm].reject_reasons, strict=True))
        for m in metrics:
            est = ratio_estimate(moments[m.name][arm])
            true = truth[m.name][arm]
            assert true is not None
            assert true == pytest.approx(planted[m.name.removesuffix("_share")])
            assert abs(est.value - true) <= z * est.variance**0.5, (arm, m.name, est, true)
    # the two AI arms differ where the simulation says (v2 halves the hallucinations)
    first, second = experiment.ai_variants()[:2]
    hallucination = moments["hallucination_share"]
    assert ratio_estimate(hallucination[second]).value < ratio_estimate(hallucination[first]).value


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark", "bigquery", "snowflake"])
def test_a_label_from_the_config_is_a_literal(dialect: str) -> None:
    """A label with quotes and a statement in it is one string literal of one statement."""
    experiment = CONFIG.experiment("smart-compose")
    hostile = "it's \"wrong\"'); DROP TABLE events; --"
    queries = compile_queries(
        experiment, [_share("x").model_copy(update={"numerator": EventAggregate(
            event="ai_rejected", label_equals=hostile)})], AS_OF, dialect, has_label=True,
    )  # fmt: skip
    moments = sqlglot.parse(queries["moments"], read=dialect)
    assert len(moments) == 1
    assert moments[0] is not None
    strings = {lit.this for lit in moments[0].find_all(sqlglot.exp.Literal) if lit.is_string}
    assert hostile in strings
    with pytest.raises(ValueError, match="filter by label: pass has_label=True"):
        compile_queries(experiment, [_share("x")], AS_OF, dialect)
