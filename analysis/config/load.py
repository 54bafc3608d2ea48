"""Load a config dir (metrics.yaml, sources.yaml, experiments/*.yaml) and cross-check it.

Each file is read as UTF-8 YAML that refuses a key given twice, then validated
into its models; local paths are resolved against the config dir. The checks
across files follow: every reference resolves, no experiment is defined twice
or differs from another only in case, no metric has two roles, every
``columns:`` key is a contract column or a segment. Any failure is a
:class:`~analysis.config.base.ConfigError` naming the file, the key path and
the reason.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from analysis.config.base import ConfigError, Identifier, _Strict
from analysis.config.experiments import Experiment, Metric
from analysis.config.sources import (
    AnySource,
    DuckDBSource,
    FileSource,
    Source,
    SparkSource,
    is_path,
)

M = TypeVar("M", bound=BaseModel)


class _MetricsFile(_Strict):
    metrics: dict[Identifier, dict[str, Any]]


class _SourcesFile(_Strict):
    sources: dict[Identifier, Source]


@dataclass(frozen=True)
class ProofConfig:
    """Everything in one config dir, resolved and cross-checked."""

    config_dir: Path
    metrics: Mapping[str, Metric]
    sources: Mapping[str, AnySource]
    experiments: Mapping[str, Experiment]

    def experiment(self, experiment_id: str) -> Experiment:
        try:
            return self.experiments[experiment_id]
        except KeyError:
            known = ", ".join(sorted(self.experiments)) or "none"
            raise ConfigError(
                self.config_dir / "experiments",
                experiment_id,
                f"no such experiment (known: {known})",
            ) from None

    def metrics_of(self, experiment: Experiment) -> list[Metric]:
        return [self.metrics[name] for name in experiment.metrics.all()]

    def warnings_of(self, experiment: Experiment) -> list[str]:
        """What the config asks that a run cannot fully do, in words (not an error).

        A guardrail that is AI-only in an experiment with one AI arm has no arm
        to be compared with: it is only described, and cannot hold a ship back.
        """
        if len(experiment.ai_variants()) > 1:
            return []
        return [
            f"{experiment.id}: guardrail {name} is AI-only (ai_only: true) and the experiment "
            "has one AI arm, so it can only be described, never compared: it cannot stop a "
            "ship. Add a second AI arm, or watch its level in the report."
            for name in experiment.metrics.guardrails
            if self.metrics[name].ai_only
        ]


def _key_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-after"))


class _DuplicateKeyError(Exception):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (YAML keeps the last).

    A key after a merge (``<<: *base``) overrides the merged one: that is YAML's
    way to override, not a duplicate.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        self._check_unique_keys(node, (), set())
        return super().construct_document(node)

    def _check_unique_keys(self, node: yaml.Node, where: tuple[str, ...], seen: set[int]) -> None:
        if id(node) in seen:  # an alias of a node already checked (or a recursive one)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_unique_keys(item, (*where, str(i)), seen)
            return
        if not isinstance(node, yaml.MappingNode):
            return
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._check_unique_keys(value_node, where, seen)
                continue
            key = self.construct_object(key_node, deep=True)
            name = str(key)
            line = key_node.start_mark.line + 1
            try:
                first = first_line.get(key)
            except TypeError:  # an unhashable key: the construction reports it
                first = None
            else:
                first_line.setdefault(key, line)
            if first is not None:
                raise _DuplicateKeyError(
                    ".".join((*where, name)),
                    f"duplicate key {name!r} (line {line}, first at line {first}): "
                    "YAML would silently keep only the last one",
                )
            self._check_unique_keys(value_node, (*where, name), seen)


def _os_reason(exc: OSError, path: Path) -> str:
    if isinstance(exc, FileNotFoundError):
        return "broken symlink" if path.is_symlink() else "file not found"
    if exc.errno == errno.ELOOP:
        return "cannot read: symlink loop (too many levels of symbolic links)"
    if isinstance(exc, IsADirectoryError):
        return "cannot read: is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return "cannot read: not a directory"
    if isinstance(exc, PermissionError):
        return "cannot read: permission denied"
    return f"cannot read: {exc.strerror or exc}"


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", _os_reason(exc, path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            path, "", f"not UTF-8 text (byte {exc.object[exc.start]:#x} at offset {exc.start})"
        ) from None
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    except _DuplicateKeyError as exc:
        raise ConfigError(path, exc.key, exc.reason) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _validate(model: type[M], data: Any, path: Path, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(p for p in (prefix, _key_path(err["loc"])) if p)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(path, key, f"{err['msg']}{more}") from None


def _resolve(config_dir: Path, value: str | Path) -> str:
    """Resolve a local path relative to the config dir; leave URLs alone."""
    text = str(value)
    if "://" in text or Path(text).is_absolute():
        return text
    return str((config_dir / text).resolve())


def load_metrics(path: Path) -> dict[str, Metric]:
    raw = _validate(_MetricsFile, _read_yaml(path), path)
    return {
        name: _validate(Metric, {"name": name, **body}, path, f"metrics.{name}")
        for name, body in raw.metrics.items()
    }


def load_sources(path: Path) -> dict[str, AnySource]:
    raw = _validate(_SourcesFile, _read_yaml(path), path)
    config_dir = path.parent
    resolved: dict[str, AnySource] = {}
    for name, source in raw.sources.items():
        if isinstance(source, DuckDBSource):
            update: dict[str, object] = {"path": Path(_resolve(config_dir, source.path))}
        elif isinstance(source, FileSource):
            update = {
                "assignments": _resolve(config_dir, source.assignments),
                "events": _resolve(config_dir, source.events),
            }
        elif isinstance(source, SparkSource):
            update = {
                role: _resolve(config_dir, value)
                for role, value in (("assignments", source.assignments), ("events", source.events))
                if is_path(value)
            }
        else:
            update = {}
        resolved[name] = source.model_copy(update=update)
    return resolved


def _check_columns(path: Path, source: str, columns: Mapping[str, str], segments: set[str]) -> None:
    """Each key of ``columns`` is a contract column, or a segment of an experiment on the source.

    ``segments``: the segment dimensions of the experiments that read ``source``
    (a segment is an assignments column, and may be mapped like the contract's).
    """
    from analysis.schema import TABLES  # polars: only once a config is loaded

    contract = {column for cols in TABLES.values() for column in cols}
    for column in columns:
        if column not in contract and column not in segments:
            known = ", ".join(sorted(contract))
            raise ConfigError(
                path,
                f"sources.{source}.columns.{column}",
                f"{column!r} is not a contract column (nor a segment of an experiment "
                "reading this source), so the mapping would be silently ignored; a key of "
                f"'columns' is a contract column ({known}) or a segment, and its value "
                "the source's column",
            )


def load_experiment(path: Path) -> Experiment:
    experiment = _validate(Experiment, _read_yaml(path), path)
    if experiment.id != path.stem:
        raise ConfigError(path, "id", f"id {experiment.id!r} does not match the file name")
    return experiment


def load_config(config_dir: Path | str) -> ProofConfig:
    """Load and cross-check ``metrics.yaml``, ``sources.yaml`` and ``experiments/*.yaml``."""
    config_dir = Path(config_dir).resolve()
    if not config_dir.is_dir():
        raise ConfigError(config_dir, "", "config dir not found")
    metrics = load_metrics(config_dir / "metrics.yaml")
    sources = load_sources(config_dir / "sources.yaml")
    experiments: dict[str, Experiment] = {}
    files: dict[str, Path] = {}  # case-folded id -> its file
    for path in _experiment_files(config_dir / "experiments"):
        experiment = load_experiment(path)
        _check_references(path, experiment, metrics, sources)
        other = files.get(experiment.id.casefold())
        if other is not None:
            other_id = next(e for e in experiments if e.casefold() == experiment.id.casefold())
            reason = (
                f"experiment {experiment.id!r} is defined twice, here and in {other}; "
                "only one would be used: keep one file"
                if other_id == experiment.id
                else f"experiment ids {experiment.id!r} and {other_id!r} (in {other}) differ "
                "only in case: their report folders collide on a case-insensitive file system"
            )
            raise ConfigError(path, "id", reason)
        files[experiment.id.casefold()] = path
        experiments[experiment.id] = experiment
    for name, source in sources.items():
        segments = {d for e in experiments.values() if e.source == name for d in e.segments}
        _check_columns(config_dir / "sources.yaml", name, source.columns, segments)
    return ProofConfig(config_dir, metrics, sources, experiments)


def _experiment_files(directory: Path) -> list[Path]:
    """The ``*.yaml`` and ``*.yml`` files of ``directory`` (none if it does not exist)."""
    if not os.path.lexists(directory):
        return []
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise ConfigError(directory, "", _os_reason(exc, directory)) from None
    return [directory / name for name in sorted(names) if name.endswith((".yaml", ".yml"))]


def _check_references(
    path: Path,
    experiment: Experiment,
    metrics: Mapping[str, Metric],
    sources: Mapping[str, object],
) -> None:
    if experiment.source not in sources:
        known = ", ".join(sorted(sources))
        raise ConfigError(path, "source", f"unknown source {experiment.source!r} (known: {known})")
    groups = {
        "metrics.primary": [experiment.metrics.primary],
        "metrics.secondary": experiment.metrics.secondary,
        "metrics.guardrails": experiment.metrics.guardrails,
    }
    roles = {"metrics.primary": "primary", "metrics.secondary": "secondary"}
    roles["metrics.guardrails"] = "guardrail"
    first_role: dict[str, tuple[str, str]] = {}  # metric -> (its key path, its role)
    for key, names in groups.items():
        for i, name in enumerate(names):
            where = key if key == "metrics.primary" else f"{key}.{i}"
            if name not in metrics:
                raise ConfigError(path, where, f"unknown metric {name!r} (not in metrics.yaml)")
            if name in first_role:
                at, role = first_role[name]
                reason = (
                    f"metric {name!r} is listed twice in {key} (also at {at})"
                    if role == roles[key]
                    else f"metric {name!r} is both the {role} metric ({at}) and a "
                    f"{roles[key]}: one role would be silently dropped; give it one role"
                )
                raise ConfigError(path, where, reason)
            first_role[name] = (where, roles[key])
    for name in experiment.statistics.guardrail_margins:
        if name not in experiment.metrics.guardrails:
            raise ConfigError(
                path,
                f"statistics.guardrail_margins.{name}",
                "a margin is only for a metric listed in metrics.guardrails",
            )
