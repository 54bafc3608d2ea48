"""Config that would silently mean something else is an error naming file, key and reason.

Each case here used to load (or crash with a traceback) and quietly do
something other than what the file says: a duplicate YAML key (the last one
won), two files of one experiment (one won), an experiment id that collides
with the output directory's own names, a metric in two roles (one role was
dropped), a ``columns:`` key that is not a contract column (ignored), a symlink
loop (a traceback).  A bad ``--run-id`` fails before anything is computed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from analysis.config.base import ConfigError
from analysis.config.load import load_config
from analysis.config.run import validate_run_id

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    return target


def _load_error(config_dir: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    return info.value


def _assert_names(err: ConfigError, path: Path, key: str, *reason: str) -> None:
    assert err.path == str(path)
    assert err.key == key
    for part in reason:
        assert part in err.reason, err.reason
    assert str(path) in str(err)
    assert key in str(err)


# --------------------------------------------------------------------------- duplicate keys


def test_duplicate_top_level_key_in_an_experiment(config_copy: Path) -> None:
    path = config_copy / "experiments" / "smart-compose.yaml"
    lines = path.read_text().splitlines()
    first = lines.index("alpha: 0.05") + 1
    path.write_text("\n".join([*lines, "alpha: 0.10", ""]))
    err = _load_error(config_copy)
    second = len(lines) + 1
    _assert_names(err, path, "alpha", "duplicate key 'alpha'", f"line {second}", f"line {first}")


def test_duplicate_nested_key_in_the_metric_catalog(config_copy: Path) -> None:
    path = config_copy / "metrics.yaml"
    data = yaml.safe_load(path.read_text())
    goal = data["metrics"]["time_on_task"]["goal"]
    body = yaml.safe_dump(data, sort_keys=False)
    # a second 'goal' right after the first one, in the same mapping
    needle = f"    goal: {goal}\n"
    start = body.index("  time_on_task:\n")
    at = body.index(needle, start) + len(needle)
    path.write_text(body[:at] + "    goal: increase\n" + body[at:])
    err = _load_error(config_copy)
    _assert_names(err, path, "metrics.time_on_task.goal", "duplicate key 'goal'", "line ")


def test_duplicate_metric_name_in_the_catalog(config_copy: Path) -> None:
    path = config_copy / "metrics.yaml"
    text = path.read_text()
    path.write_text(
        text + "  time_on_task:\n    label: Other\n    category: effort\n"
        "    kind: mean\n    goal: increase\n    value: {event: task_started}\n"
    )
    err = _load_error(config_copy)
    _assert_names(err, path, "metrics.time_on_task", "duplicate key 'time_on_task'")


def test_duplicate_source_name(config_copy: Path) -> None:
    path = config_copy / "sources.yaml"
    path.write_text(path.read_text() + "  warehouse:\n    kind: duckdb\n    path: other.duckdb\n")
    err = _load_error(config_copy)
    _assert_names(err, path, "sources.warehouse", "duplicate key 'warehouse'")


def test_yaml_merge_keys_may_still_override(config_copy: Path) -> None:
    """``<<: *base`` then a key of its own is YAML's override, not a duplicate."""
    path = config_copy / "sources.yaml"
    path.write_text(
        "base: &base {kind: duckdb, path: a.duckdb}\n"
        "sources:\n  warehouse:\n    <<: *base\n    path: b.duckdb\n"
    )
    with pytest.raises(ConfigError) as info:  # 'base' is not a key of sources.yaml
        load_config(config_copy)
    assert info.value.key == "base"
    path.write_text(
        "sources:\n  warehouse: &w {kind: duckdb, path: a.duckdb}\n"
        "  other:\n    <<: *w\n    path: b.duckdb\n"
    )
    config = load_config(config_copy)
    assert str(config.sources["other"].path).endswith("b.duckdb")  # type: ignore[union-attr]


# --------------------------------------------------------------------- one experiment, two files


def test_yaml_and_yml_of_one_experiment(config_copy: Path) -> None:
    experiments = config_copy / "experiments"
    yml = experiments / "smart-compose.yml"
    shutil.copy(experiments / "smart-compose.yaml", yml)
    err = _load_error(config_copy)
    assert err.key == "id"
    assert "smart-compose" in err.reason
    assert "defined twice" in err.reason
    # both files are named
    both = {str(experiments / "smart-compose.yaml"), str(yml)}
    assert err.path in both
    assert (both - {err.path}).pop() in err.reason


def test_experiment_ids_differing_only_in_case(config_copy: Path) -> None:
    experiments = config_copy / "experiments"
    data = yaml.safe_load((experiments / "smart-compose.yaml").read_text())
    data["id"] = "Smart-Compose"
    (experiments / "Smart-Compose.yaml").write_text(yaml.safe_dump(data))
    err = _load_error(config_copy)
    assert err.key == "id"
    assert "differ only in case" in err.reason


# --------------------------------------------------------------------------- reserved ids


@pytest.mark.parametrize("reserved", ["index.html", "assets", "ASSETS", "report.html", "x.HTML"])
def test_experiment_id_colliding_with_the_output_directory(
    config_copy: Path, reserved: str
) -> None:
    experiments = config_copy / "experiments"
    data = yaml.safe_load((experiments / "smart-compose.yaml").read_text())
    data["id"] = reserved
    path = experiments / f"{reserved}.yaml"
    path.write_text(yaml.safe_dump(data))
    err = _load_error(config_copy)
    _assert_names(err, path, "id", repr(reserved), "output directory")


# --------------------------------------------------------------------------- metric roles


@pytest.mark.parametrize(
    ("selection", "key", "roles"),
    [
        (
            {"primary": "task_completion_rate", "guardrails": ["task_completion_rate"]},
            "metrics.guardrails.0",
            ("primary", "guardrail"),
        ),
        (
            {
                "primary": "task_completion_rate",
                "secondary": ["trust_score", "time_on_task"],
                "guardrails": ["ai_latency_p95", "time_on_task"],
            },
            "metrics.guardrails.1",
            ("secondary", "guardrail"),
        ),
        (
            {"primary": "task_completion_rate", "secondary": ["task_completion_rate"]},
            "metrics.secondary.0",
            ("primary", "secondary"),
        ),
        (
            {"primary": "task_completion_rate", "secondary": ["trust_score", "trust_score"]},
            "metrics.secondary.1",
            ("listed twice",),
        ),
    ],
)
def test_a_metric_in_two_roles(
    config_copy: Path, selection: dict[str, object], key: str, roles: tuple[str, ...]
) -> None:
    path = config_copy / "experiments" / "smart-compose.yaml"
    data = yaml.safe_load(path.read_text())
    data["metrics"] = selection
    path.write_text(yaml.safe_dump(data))
    err = _load_error(config_copy)
    _assert_names(err, path, key, *roles)


# --------------------------------------------------------------------------- columns


@pytest.mark.parametrize("source", ["warehouse", "files", "postgres"])
def test_columns_key_that_is_not_a_contract_column(config_copy: Path, source: str) -> None:
    path = config_copy / "sources.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"][source]["columns"] = {"unit_id": "user_id", "user_id": "unit_id"}
    path.write_text(yaml.safe_dump(data))
    err = _load_error(config_copy)
    _assert_names(
        err, path, f"sources.{source}.columns.user_id", "'user_id' is not a contract column"
    )
    assert "unit_id" in err.reason  # the allowed names are listed


def test_contract_columns_of_both_tables_may_be_mapped(config_copy: Path) -> None:
    path = config_copy / "sources.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["postgres"]["columns"] = {"unit_id": "user_id", "ts": "at", "variant": "arm"}
    path.write_text(yaml.safe_dump(data))
    assert load_config(config_copy).sources["postgres"].columns["ts"] == "at"


def test_a_segment_may_be_mapped_on_the_source_its_experiment_reads(config_copy: Path) -> None:
    """smart-compose reads 'warehouse' and slices by 'platform': its column may be mapped."""
    path = config_copy / "sources.yaml"
    data = yaml.safe_load(path.read_text())
    data["sources"]["warehouse"]["columns"] = {"platform": "Platform Name"}
    path.write_text(yaml.safe_dump(data))
    assert load_config(config_copy).sources["warehouse"].columns == {"platform": "Platform Name"}
    data["sources"]["warehouse"]["columns"] = {}
    data["sources"]["files"]["columns"] = {"platform": "Platform Name"}  # no experiment reads it
    path.write_text(yaml.safe_dump(data))
    err = _load_error(config_copy)
    _assert_names(err, path, "sources.files.columns.platform", "not a contract column")


# --------------------------------------------------------------------------- unreadable files


def test_symlink_loop_in_experiments(config_copy: Path) -> None:
    path = config_copy / "experiments" / "loop.yaml"
    path.symlink_to(path.name)
    err = _load_error(config_copy)
    assert err.path == str(path)
    assert "symlink loop" in err.reason


def test_experiments_dir_that_is_a_symlink_loop(config_copy: Path) -> None:
    experiments = config_copy / "experiments"
    shutil.rmtree(experiments)
    experiments.symlink_to(experiments.name)
    err = _load_error(config_copy)
    assert err.path == str(experiments)
    assert "symlink loop" in err.reason


def test_a_directory_named_like_an_experiment_file(config_copy: Path) -> None:
    path = config_copy / "experiments" / "sub.yaml"
    path.mkdir()
    err = _load_error(config_copy)
    assert err.path == str(path)
    assert "is a directory" in err.reason


def test_a_file_that_is_not_utf8(config_copy: Path) -> None:
    path = config_copy / "metrics.yaml"
    path.write_bytes(b"metrics:\n  caf\xe9: {}\n")
    err = _load_error(config_copy)
    assert err.path == str(path)
    assert "UTF-8" in err.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file(config_copy: Path) -> None:
    path = config_copy / "sources.yaml"
    path.chmod(0)
    err = _load_error(config_copy)
    assert err.path == str(path)
    assert "cannot read" in err.reason


# --------------------------------------------------------------------------- run ids

BAD_RUN_IDS = ["../x", ".tmp-x", "index.html", "", "a/b", "a\\b", " x", "..", "assets"]


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_bad_run_id_is_refused(run_id: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_run_id(run_id)
    assert repr(run_id) in str(info.value)
    assert "run id" in str(info.value)


@pytest.mark.parametrize("run_id", ["20261120T020000Z", "nightly-1120", "r1", "a.b_c-d"])
def test_good_run_id_is_kept(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


def test_the_default_run_id_is_valid() -> None:
    from flows.analyze import new_run_id

    validate_run_id(new_run_id(dt.datetime(2026, 11, 20, 2, tzinfo=dt.UTC)))


@pytest.mark.parametrize("run_id", ["../x", ".tmp-x", "index.html", "", "a/b"])
@pytest.mark.parametrize("experiment", [["-e", "smart-compose"], []])
def test_cli_refuses_a_bad_run_id_before_reading_data(
    config_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_id: str,
    experiment: list[str],
) -> None:
    import flows.analyze
    from flows.cli import app

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the analysis started despite a bad run id")

    monkeypatch.setattr(flows.analyze, "analyze_experiment", must_not_run)
    monkeypatch.setattr(flows.analyze, "nightly", must_not_run)
    # the data does not exist: any read of it would fail with another message
    (config_copy / "sources.yaml").write_text(
        "sources:\n  warehouse: {kind: duckdb, path: nowhere/missing.duckdb}\n"
        "  files: {kind: parquet, assignments: nowhere/a.parquet, events: nowhere/e.parquet}\n"
    )
    out = tmp_path / "reports"
    args = ["run", "--config-dir", str(config_copy), "--out", str(out), "--run-id", run_id]
    started = time.perf_counter()
    result = CliRunner().invoke(app, [*args, *experiment, "--as-of", "2026-11-20"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    assert f"--run-id {run_id!r}" in result.output
    assert "Traceback" not in result.output
    assert elapsed < 5
    assert not out.exists()


def test_the_flow_refuses_a_bad_run_id_before_loading(tmp_path: Path) -> None:
    """A deployment's run_id parameter is checked as early as the CLI's."""
    from flows.analyze import analyze_experiment

    with pytest.raises(ConfigError, match=r"run id '\.\./x'"):
        analyze_experiment.fn("smart-compose", run_id="../x", config_dir=str(tmp_path / "missing"))


def test_the_reserved_names_are_those_the_output_directory_uses() -> None:
    from analysis.config.base import RESERVED_OUTPUT_NAMES
    from analysis.partials_cache import partials_cache_dir
    from analysis.report.publish import ASSET_DIR
    from analysis.validation.experiment import validation_cache_dir
    from flows.watch import STATE_FILE

    out = Path("out")
    used = {
        ASSET_DIR,
        "index.html",
        STATE_FILE.parts[0],
        partials_cache_dir(out, "x").relative_to(out).parts[0],
        validation_cache_dir(out, "x").relative_to(out).parts[0],
    }
    assert used <= RESERVED_OUTPUT_NAMES
