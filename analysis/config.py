"""Typed configuration: metric catalog, sources and experiments, loaded from YAML.

Every model is strict (unknown keys are errors) so that a typo in a config fails
loudly instead of being ignored.  A bad file raises :class:`ConfigError` naming
the file, the key path and the reason.
"""

from __future__ import annotations

import datetime as dt
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

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)]


class ConfigError(ValueError):
    """A config file is missing, unreadable or invalid."""

    def __init__(self, path: Path | str, key: str, reason: str) -> None:
        self.path = str(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")


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


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"not valid YAML: {exc}") from None


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
    for path in sorted((config_dir / "experiments").glob("*.y*ml")):
        experiment = load_experiment(path)
        _check_references(path, experiment, metrics, sources)
        experiments[experiment.id] = experiment
    return ProofConfig(config_dir, metrics, sources, experiments)


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
    for key, names in groups.items():
        for i, name in enumerate(names):
            if name not in metrics:
                where = key if key == "metrics.primary" else f"{key}.{i}"
                raise ConfigError(path, where, f"unknown metric {name!r} (not in metrics.yaml)")
    for name in experiment.statistics.guardrail_margins:
        if name not in experiment.metrics.guardrails:
            raise ConfigError(
                path,
                f"statistics.guardrail_margins.{name}",
                "a margin is only for a metric listed in metrics.guardrails",
            )
