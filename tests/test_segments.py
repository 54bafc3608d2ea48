"""Segments, pooled AI arms and the pre-exposure check, through the real pipeline."""

from __future__ import annotations

import pytest
from statsmodels.stats.multitest import multipletests

from analysis.balance_check import balance_check
from analysis.config.load import ProofConfig, load_config
from analysis.devtools.simulate import simulate, write_duckdb
from analysis.engines.polars_measure import measure
from analysis.measurement import Measurement
from analysis.pipeline import POOLED, pooled_ai_comparisons
from analysis.segments import segment_comparisons
from analysis.sources.read import read_experiment
from tests.conftest import AS_OF, make_config_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProofConfig, Measurement]:
    tmp = tmp_path_factory.mktemp("segments")
    cfg = load_config(make_config_dir(tmp))
    experiment = cfg.experiment("auto-triage")
    write_duckdb(tmp / "data" / "warehouse.duckdb", simulate([experiment], 6_000, AS_OF, 4))
    tables = read_experiment("warehouse", cfg.sources["warehouse"], experiment.id)
    return cfg, measure(tables, experiment, cfg.metrics_of(experiment), AS_OF)


def test_segments_cover_every_value_with_bh_adjustment(
    setup: tuple[ProofConfig, Measurement],
) -> None:
    cfg, m = setup
    experiment = cfg.experiment("auto-triage")
    metrics = cfg.metrics_of(experiment)
    slices, heterogeneity = segment_comparisons(experiment, metrics, m.segments)
    assert {s.dimension for s in slices} == {"platform", "plan"}
    assert {s.value for s in slices if s.dimension == "platform"} == {"web", "ios", "android"}
    tested = [s for s in slices if s.result is not None and s.result.p_value is not None]
    # reference: statsmodels' Benjamini-Hochberg over the same p-values
    expected = multipletests([s.result.p_value for s in tested], method="fdr_bh")[1]  # type: ignore[union-attr]
    assert [s.p_value_adjusted for s in tested] == pytest.approx(list(expected), rel=1e-12)
    # every slice of a dimension adds up to the whole arm
    by_value = m.segments["platform"]["task_completion_rate"]
    whole = m.data.moments["task_completion_rate"]
    for arm, total in whole.items():
        assert sum(v[arm].n for v in by_value.values()) == total.n
    assert heterogeneity
    assert all(h.test.df is None or h.test.df >= 1 for h in heterogeneity)


def test_small_slices_are_skipped_and_say_so(setup: tuple[ProofConfig, Measurement]) -> None:
    cfg, m = setup
    experiment = cfg.experiment("auto-triage")
    strict = experiment.model_copy(
        update={"statistics": experiment.statistics.model_copy(update={"min_segment_units": 10**6})}
    )
    slices, _ = segment_comparisons(strict, cfg.metrics_of(experiment), m.segments)
    assert slices
    assert all(s.result is None and s.skipped and "fewer than" in s.skipped for s in slices)


def test_pooled_ai_arms_merge_the_units(setup: tuple[ProofConfig, Measurement]) -> None:
    cfg, m = setup
    experiment = cfg.experiment("auto-triage")
    pooled = pooled_ai_comparisons(experiment, cfg.metrics_of(experiment), m.data, AS_OF)
    assert pooled
    assert all(c.treatment == POOLED and not c.metric.ai_only for c in pooled)
    primary = next(c for c in pooled if c.metric.name == "task_completion_rate")
    arms = m.data.moments["task_completion_rate"]
    assert primary.result.treatment.n == arms["ai"].n + arms["ai_v2"].n
    # pooled ratio = total numerator / total denominator of both AI arms
    num = arms["ai"].sum_x + arms["ai_v2"].sum_x
    den = arms["ai"].sum_y + arms["ai_v2"].sum_y
    assert primary.result.treatment.value == pytest.approx(num / den, rel=1e-12)


def test_randomised_arms_pass_the_pre_exposure_check(
    setup: tuple[ProofConfig, Measurement],
) -> None:
    cfg, m = setup
    experiment = cfg.experiment("auto-triage")
    result = balance_check(experiment, cfg.metrics_of(experiment), m.data)
    assert result is not None
    assert result.tested >= 5
    assert result.flagged == []
