"""Typed configuration: metric catalog, sources and experiments, loaded from YAML.

Every model is strict (unknown keys are errors) so that a typo in a config fails
loudly instead of being ignored.  A bad file raises :class:`ConfigError` naming
the file, the key path and the reason.  So does config that would silently mean
something else: a duplicate YAML key, two files of one experiment, an experiment
id that collides with the output directory's own names, a metric in two roles,
a ``columns:`` key that is not a contract column, an unreadable file.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

M = TypeVar("M", bound=BaseModel)

MetricKind = Literal["proportion", "mean", "ratio", "quantile"]
Category = Literal["outcome", "effort", "trust", "guardrail"]
Goal = Literal["increase", "decrease"]
Aggregation = Literal["count", "sum", "mean"]

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Identifier = Annotated[str, Field(pattern=_IDENTIFIER, max_length=100)]

#: Names the output directory uses for itself (analysis/report/publish.py, the caches,
#: flows/watch.py): an experiment's report folder must not take one of them.  Hidden
#: names (.cache, .state, .tmp-*) cannot be ids; names ending in .html are refused too.
RESERVED_OUTPUT_NAMES = frozenset({"index.html", "assets", ".cache", ".state"})


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid."""

    def __init__(self, path: Path | str, key: str, reason: str) -> None:
        self.path = str(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")


class RunIdError(ConfigError):
    """A run id that cannot name a run's report folder (``--run-id``, a flow's ``run_id``)."""

    def __init__(self, what: str, run_id: str, reason: str) -> None:
        ValueError.__init__(self, f"{what} {run_id!r} {reason}")
        self.path, self.key, self.reason = what, "", reason


def _reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be a folder of the output directory, or None."""
    folded = name.casefold()
    if folded in RESERVED_OUTPUT_NAMES:
        return "is a name the output directory uses for itself"
    if folded.endswith(".html"):
        return "ends in .html, like the pages of the output directory"
    return None


def validate_run_id(run_id: str, what: str = "run id") -> str:
    """``run_id`` if it can name a run's report folder; else :class:`RunIdError`.

    The rule of experiment ids (letters, digits, ``_ . -``, starting with a
    letter or digit, at most 100 characters), and no name ending in ``.html``:
    so no path separator, no ``..``, no hidden name (``.tmp-*`` and ``.old-*``
    are the publisher's own).  Checked before anything is read or computed.
    """
    rule = "; use letters, digits, '_', '.' and '-', starting with a letter or digit"
    if not run_id:
        reason = "is empty: leave the run id out for the UTC time"
    elif "/" in run_id or "\\" in run_id:
        reason = "holds a path separator: a run id names one folder"
    elif run_id.startswith("."):
        reason = "starts with '.': hidden names are Proof's own (.tmp-*, .old-*)"
    elif len(run_id) > 100:
        reason = "is longer than 100 characters"
    elif not re.fullmatch(_IDENTIFIER, run_id):
        reason = "holds a character that is not allowed"
    else:
        reserved = _reserved_reason(run_id)
        if reserved is None:
            return run_id
        reason = reserved
    raise RunIdError(what, run_id, f"cannot name the run's folder: {reason}{rule}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventAggregate(_Strict):
    """One per-unit aggregate of the events named ``event``.

    ``count`` counts the events, ``sum`` adds their ``value``, ``mean`` averages
    it (a unit without such events has no value and does not enter the metric).
    ``value_equals`` keeps only events whose value equals it (e.g. -1 for a
    thumbs-down).
    """

    event: Identifier
    agg: Aggregation = "count"
    value_equals: float | None = None


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


class DuckDBSource(_Strict):
    kind: Literal["duckdb"]
    path: Path
    assignments: str = "assignments"
    events: str = "events"
    columns: dict[str, str] = Field(default_factory=dict)
    validate_in_database: bool = Field(
        default=False,
        description=(
            "Run the quarantine and the GX suites as SQL inside DuckDB and read only "
            "the rows the quarantine keeps (no pandas, no validation cache); false: "
            "read every row and validate pandas copies per day partition, cached."
        ),
    )
    pushdown: bool = Field(
        default=False,
        description=(
            "Run validation, quarantine and the aggregation inside DuckDB, as for a "
            "sql source with pushdown: only sufficient statistics and the quarantined "
            "rows come back, and DuckDB spills to disk beyond memory_limit."
        ),
    )
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description=(
            "DuckDB's memory_limit for Proof's queries in the file, e.g. '8GB' "
            "(default: DuckDB's, 80% of RAM); beyond it DuckDB spills to disk."
        ),
    )


class FileSource(_Strict):
    kind: Literal["parquet", "csv"]
    assignments: str = Field(description="Path or glob, relative to the config dir.")
    events: str = Field(description="Path or glob, relative to the config dir.")
    columns: dict[str, str] = Field(default_factory=dict)


class SqlSource(_Strict):
    kind: Literal["sql"]
    uri_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Name of the environment variable holding the database URI.",
    )
    assignments: str
    events: str
    columns: dict[str, str] = Field(default_factory=dict)
    pushdown: bool = Field(
        default=False,
        description=(
            "Run validation, quarantine and the aggregation inside the database; "
            "only sufficient statistics come back."
        ),
    )
    dialect: str | None = Field(
        default=None,
        description="The sqlglot dialect of the database (default: guessed from the URI).",
    )

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlglot.dialects.dialect import Dialects

        known = sorted(d.value for d in Dialects if d.value)
        if value not in known:
            raise ValueError(f"unknown SQL dialect {value!r} (known: {', '.join(known)})")
        return value


Source = Annotated[DuckDBSource | FileSource | SqlSource, Field(discriminator="kind")]


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


class Experiment(_Strict):
    """One experiment (contract section 5)."""

    id: Identifier
    name: str
    hypothesis: str = ""
    owner: str = ""
    status: Literal["draft", "running", "stopped"] = "running"
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

    def ai_variants(self) -> list[str]:
        return [name for name, v in self.variants.items() if v.ai]


class _MetricsFile(_Strict):
    metrics: dict[Identifier, dict[str, Any]]


class _SourcesFile(_Strict):
    sources: dict[Identifier, Source]


@dataclass(frozen=True)
class ProofConfig:
    """Everything in one config dir, resolved and cross-checked."""

    config_dir: Path
    metrics: Mapping[str, Metric]
    sources: Mapping[str, DuckDBSource | FileSource | SqlSource]
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


def load_sources(path: Path) -> dict[str, DuckDBSource | FileSource | SqlSource]:
    raw = _validate(_SourcesFile, _read_yaml(path), path)
    config_dir = path.parent
    resolved: dict[str, DuckDBSource | FileSource | SqlSource] = {}
    for name, source in raw.sources.items():
        if isinstance(source, DuckDBSource):
            update: dict[str, object] = {"path": Path(_resolve(config_dir, source.path))}
        elif isinstance(source, FileSource):
            update = {
                "assignments": _resolve(config_dir, source.assignments),
                "events": _resolve(config_dir, source.events),
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
