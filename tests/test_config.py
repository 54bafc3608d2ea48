"""Configs load into typed models; a bad config names the file, key path and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from analysis.config.base import ConfigError
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource, FileSource, SqlSource

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

CONTRACT_CATALOG = {
    "task_completion_rate": ("outcome", "ratio", "increase"),
    "tasks_completed_per_user": ("outcome", "mean", "increase"),
    "abandonment_rate": ("outcome", "ratio", "decrease"),
    "time_on_task": ("effort", "ratio", "decrease"),
    "retries_per_task": ("effort", "ratio", "decrease"),
    "acceptance_rate": ("trust", "ratio", "increase"),
    "edit_rate": ("trust", "ratio", "decrease"),
    "rejection_rate": ("trust", "ratio", "decrease"),
    "thumbs_down_rate": ("trust", "ratio", "decrease"),
    "trust_score": ("trust", "mean", "increase"),
    "support_tickets_per_user": ("guardrail", "mean", "decrease"),
    "ai_latency_p95": ("guardrail", "quantile", "decrease"),
    "cost_per_completed_task": ("guardrail", "ratio", "decrease"),
}


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    return target


def test_shipped_configs_hold_the_contract_catalog() -> None:
    config = load_config(CONFIGS)
    for name, (category, kind, goal) in CONTRACT_CATALOG.items():
        metric = config.metrics[name]
        assert (metric.category, metric.kind, metric.goal) == (category, kind, goal), name
    assert {m for m, x in config.metrics.items() if x.ai_only} >= {
        "acceptance_rate",
        "edit_rate",
        "rejection_rate",
    }


def test_shipped_sources_and_experiments() -> None:
    config = load_config(CONFIGS)
    assert isinstance(config.sources["warehouse"], DuckDBSource)
    assert isinstance(config.sources["files"], FileSource)
    assert isinstance(config.sources["postgres"], SqlSource)
    # relative paths resolve against the config dir, not the working directory
    assert config.sources["warehouse"].path == (CONFIGS.parent / "data/warehouse.duckdb")
    smart = config.experiment("smart-compose")
    assert list(smart.variants) == ["control", "ai"]
    triage = config.experiment("auto-triage")
    assert list(triage.variants) == ["control", "ai", "ai_v2"]
    assert triage.ai_variants() == ["ai", "ai_v2"]
    assert triage.treatments() == ["ai", "ai_v2"]


def _edit(path: Path, change: dict[str, object]) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"alpha": 2}, "alpha", "less than 0.5"),
        ({"control": "nope"}, "", "control 'nope' is not one of the variants"),
        ({"source": "nowhere"}, "source", "unknown source 'nowhere'"),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
        (
            {"metrics": {"primary": "task_completion_rate", "secondary": ["nope"]}},
            "metrics.secondary.0",
            "unknown metric 'nope'",
        ),
        (
            {
                "variants": {
                    "control": {"share": 0.5, "ai": False},
                    "ai": {"share": 0.6, "ai": True},
                }
            },
            "",
            "shares add up to 1.1",
        ),
        ({"start": "yesterday"}, "start", "valid date"),
        (
            {"validation": {"max_null_key_share": 1.5}},
            "validation.max_null_key_share",
            "less than or equal to 1",
        ),
    ],
)
def test_bad_experiment_names_file_key_and_reason(
    config_copy: Path, change: dict[str, object], key: str, reason: str
) -> None:
    path = config_copy / "experiments" / "smart-compose.yaml"
    _edit(path, change)
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    err = info.value
    assert err.path == str(path)
    assert err.key == key
    assert reason in err.reason
    assert str(path) in str(err)


def test_the_null_key_share_is_read_from_validation(config_copy: Path) -> None:
    path = config_copy / "experiments" / "smart-compose.yaml"
    assert load_config(config_copy).experiment("smart-compose").validation.max_null_key_share == (
        0.001
    )
    _edit(path, {"validation": {"max_null_key_share": 0.02}})
    config = load_config(config_copy)
    assert config.experiment("smart-compose").validation.max_null_key_share == 0.02


def test_bad_metric_kind_names_the_metric(config_copy: Path) -> None:
    path = config_copy / "metrics.yaml"
    data = yaml.safe_load(path.read_text())
    del data["metrics"]["time_on_task"]["denominator"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert info.value.key == "metrics.time_on_task"
    assert "numerator" in info.value.reason


def test_bad_source_kind(config_copy: Path) -> None:
    path = config_copy / "sources.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["warehouse"]["kind"] = "oracle"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert info.value.key.startswith("sources.warehouse")


def test_invalid_yaml_and_missing_file(config_copy: Path) -> None:
    (config_copy / "sources.yaml").write_text("sources: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config_copy)
    (config_copy / "sources.yaml").unlink()
    with pytest.raises(ConfigError, match="file not found"):
        load_config(config_copy)


def test_id_must_match_file_name(config_copy: Path) -> None:
    _edit(config_copy / "experiments" / "smart-compose.yaml", {"id": "other"})
    with pytest.raises(ConfigError, match="does not match the file name"):
        load_config(config_copy)


def test_unknown_experiment_lists_known(config_copy: Path) -> None:
    config = load_config(config_copy)
    with pytest.raises(ConfigError, match="auto-triage, smart-compose"):
        config.experiment("missing")


def test_sql_source_pushdown_and_dialect(config_copy: Path) -> None:
    plain = load_config(config_copy).sources["postgres"]
    assert isinstance(plain, SqlSource)
    assert (plain.pushdown, plain.dialect) == (False, None)
    path = config_copy / "sources.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["postgres"] |= {"pushdown": True, "dialect": "postgres"}
    path.write_text(yaml.safe_dump(data))
    source = load_config(config_copy).sources["postgres"]
    assert isinstance(source, SqlSource)
    assert (source.pushdown, source.dialect) == (True, "postgres")
    data["sources"]["postgres"]["dialect"] = "postgress"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="unknown SQL dialect 'postgress'") as info:
        load_config(config_copy)
    assert info.value.key.startswith("sources.postgres")
    assert info.value.key.endswith("dialect")


def test_duckdb_source_pushdown_and_memory_limit(config_copy: Path) -> None:
    plain = load_config(config_copy).sources["warehouse"]
    assert isinstance(plain, DuckDBSource)
    assert (plain.pushdown, plain.memory_limit) == (False, None)
    path = config_copy / "sources.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["warehouse"] |= {"pushdown": True, "memory_limit": "8GB"}
    path.write_text(yaml.safe_dump(data))
    source = load_config(config_copy).sources["warehouse"]
    assert isinstance(source, DuckDBSource)
    assert (source.pushdown, source.memory_limit) == (True, "8GB")
    data["sources"]["warehouse"]["memory_limit"] = "8 gigs"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(config_copy)
    assert info.value.key == "sources.warehouse.duckdb.memory_limit"
