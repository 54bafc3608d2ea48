"""The typed results.json (analysis.results): what a run writes reads back unchanged.

Real runs of both demo experiments (simulated, checked and measured by the
polars engine, and one aggregated inside DuckDB) are built with
``analysis.pipeline.summarise``; a published ``results.json`` comes from the
``analyze-experiment`` flow.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from analysis.config.load import load_config
from analysis.devtools.simulate import simulate, write_duckdb
from analysis.engines import RunOptions, engine_for
from analysis.pipeline import summarise
from analysis.report import REPORT_PLOTLY_SRC, render_run_files
from analysis.results import ComparisonRecord, Results, to_json
from analysis.results.records import CupedRecord, Distributions
from tests import report_fixtures as fixtures
from tests.conftest import AS_OF, make_config_dir

RUNS = ["smart-compose", "auto-triage", "smart-compose (pushdown)"]
NOW = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(2), dt.UTC)

#: Fields a complete run may leave out, by record: only those the writer leaves out.
_OPTIONAL: dict[type[BaseModel], frozenset[str]] = {
    Results: frozenset({"pushed_down", "decay"}),  # decay: a holdout only
    CupedRecord: frozenset(
        {"theta", "mean_control", "mean_treatment", "diff", "diff_ci", "lift", "lift_ci"}
        | {"p_value", "method"}
    ),
    Distributions: frozenset({"time_on_task"}),
}
_READER_ONLY = frozenset({"page", "success", "min_value", "max_value", "value_set"})


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("results")
    config_dir = make_config_dir(tmp)
    config = load_config(config_dir)
    data = simulate(list(config.experiments.values()), 2_000, AS_OF, seed=3)
    write_duckdb(tmp / "data" / "warehouse.duckdb", data)
    pushdown = tmp / "pushdown" / "configs"
    pushdown.parent.mkdir()
    make_config_dir(pushdown.parent)
    sources = (config_dir / "sources.yaml").read_text().replace("../data", "../../data")
    (pushdown / "sources.yaml").write_text(sources + "    pushdown: true\n")
    return config_dir


def _run(config_dir: Path, experiment_id: str) -> Results:
    """One run as the flow's ``analyse`` step builds it, without Prefect."""
    config = load_config(config_dir)
    experiment = config.experiment(experiment_id)
    metrics = config.metrics_of(experiment)
    engine = engine_for(experiment.source, config.sources[experiment.source], RunOptions(now=NOW))
    checked = engine.check(experiment, AS_OF)
    measurement = engine.measure(checked, experiment, metrics, AS_OF)
    report = checked.report
    if measurement.unit_validation is not None:
        report = report.merge(measurement.unit_validation)
    return summarise(
        experiment, metrics, measurement, report.summary(), "r1", AS_OF, NOW,
        checked.rows_quarantined,
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs(config_dir: Path) -> dict[str, Results]:
    pushdown = config_dir.parent / "pushdown" / "configs"
    return {
        "smart-compose": _run(config_dir, "smart-compose"),
        "auto-triage": _run(config_dir, "auto-triage"),
        "smart-compose (pushdown)": _run(pushdown, "smart-compose"),
    }


@pytest.mark.parametrize("name", RUNS)
def test_a_real_run_round_trips_to_identical_json(runs: dict[str, Results], name: str) -> None:
    text = to_json(runs[name])
    again = Results.model_validate(json.loads(text))
    assert to_json(again) == text
    assert to_json(Results.from_json(text)) == text
    assert again.has("pooled_ai")
    assert (again.pushed_down is not None) is name.endswith("(pushdown)")


def _unset(record: BaseModel, where: str) -> list[str]:
    """Fields of ``record`` and of the records inside it that were not given."""
    optional = _READER_ONLY
    if not (isinstance(record, CupedRecord) and record.applied):
        optional |= _OPTIONAL.get(type(record), frozenset())
    given = record.model_fields_set
    missing = [f"{where}.{f}" for f in type(record).model_fields if f not in given | optional]
    for name in sorted(given):
        value = getattr(record, name)
        if isinstance(value, dict):
            items = list(value.values())
        else:
            items = list(value) if isinstance(value, tuple) else [value]
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                missing += _unset(item, f"{where}.{name}[{i}]")
    return missing


@pytest.mark.parametrize("name", RUNS)
def test_a_real_run_gives_every_field_of_the_file(runs: dict[str, Results], name: str) -> None:
    """The builder sets every field the model describes, but those the writer leaves out."""
    assert _unset(runs[name], "results") == []


def test_a_run_leaves_out_only_what_it_did_not_compute(runs: dict[str, Results]) -> None:
    written = json.loads(to_json(runs["smart-compose"]))
    assert "pushdown" not in written
    pushed = json.loads(to_json(runs["smart-compose (pushdown)"]))
    assert pushed["pushdown"]["computed_in"] == "database"
    assert list(pushed)[-1] == "pushdown"  # after the decision, as before the model
    cuped = [c["cuped"] for c in written["comparisons"]]
    assert {tuple(c) for c in cuped if not c["applied"]} == {
        ("applied", "variance_reduction", "reason")
    }


@pytest.mark.usefixtures("prefect_server")
def test_the_published_results_json_of_a_demo_run_validates(
    config_dir: Path, tmp_path: Path
) -> None:
    """The file the flow publishes reads into the model, and back to the same bytes and pages."""
    from flows.analyze import analyze_experiment

    out = tmp_path / "out"
    summary = analyze_experiment(
        "smart-compose", as_of=AS_OF, run_id="demo", config_dir=str(config_dir), out_dir=str(out)
    )
    run_dir = out / "smart-compose" / "demo"
    text = (run_dir / "results.json").read_text(encoding="utf-8")
    results = Results.from_json(text)
    assert to_json(results) == text
    assert results.decision.recommendation == summary["decision"]
    pages = render_run_files(results, REPORT_PLOTLY_SRC)
    for page, html in pages.items():
        assert html == (run_dir / page).read_text(encoding="utf-8"), page


@pytest.mark.parametrize("name", ["smart_compose", "auto_triage"])
def test_older_files_read_and_write_back_their_own_fields(name: str) -> None:
    """A file without the later extensions reads; nothing is added when it is written."""
    old = fixtures.legacy(fixtures.load(name))
    results = Results.model_validate(old)
    assert not results.has("over_time")
    assert results.over_time is None
    assert json.loads(to_json(results)) == old


def test_the_contract_fields_are_required_and_nan_is_refused() -> None:
    results = fixtures.load("smart_compose")
    del results["comparisons"]
    with pytest.raises(ValidationError, match="comparisons"):
        Results.model_validate(results)
    comparison = fixtures.load("smart_compose")["comparisons"][0]
    with pytest.raises(ValidationError, match="lift"):
        ComparisonRecord.model_validate({**comparison, "lift": float("nan")})
