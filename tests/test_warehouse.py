"""Warehouse push-down: the generated SQL gives what the polars path gives, on DuckDB and
PostgreSQL; the same queries compile for Trino, Spark, BigQuery and Snowflake, with every
identifier quoted and every input a literal."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import sqlglot
from sqlglot import exp

from analysis import metrics as metrics_mod
from analysis.aggregates import Moments
from analysis.config.experiments import POOLED, EventAggregate, Experiment, Metric
from analysis.config.load import load_config
from analysis.config.sources import DuckDBSource, SqlSource
from analysis.descriptives import EVENTS
from analysis.devtools.simulate import SimulatedData, simulate_experiment
from analysis.engines.database import NOT_AVAILABLE
from analysis.engines.polars_measure import measure, winsorize_table
from analysis.joint import JointMoments
from analysis.measurement import Cleaning, ComputedIn, Measurement, Window
from analysis.sources.connect import without_nested_loops
from analysis.sources.errors import SourceError
from analysis.sources.read import Tables
from analysis.sql.aggregate import (
    MISSING,
    WarehouseMeasurement,
    compile_queries,
    dialect_of,
    measure_in_database,
)
from analysis.sql.aggregate_connect import connection
from analysis.sql.aggregate_descriptives import TIME_RANGE
from analysis.sql.aggregate_quantiles import linear_quantiles
from analysis.sql.database import database
from analysis.sql.expressions import column, eq, integer, named, ref, table, with_ctes
from analysis.sql.gx_context import gx_session
from analysis.stats.quantile import QuantileSample, QuantileSummary, summarize
from analysis.unsure import DIMENSIONS, UNSURE_EVENTS
from tests.pg_factories import (
    PG_URI,
    _assert_nested_moments,
    assert_measured_like,
    assert_same_quantiles,
    copy_into,
    throwaway_schema,
)

CONFIG = load_config(Path(__file__).resolve().parent.parent / "configs")
AS_OF = dt.date(2026, 11, 20)
UNITS = 500
REL = 1e-9
DIALECTS = ("postgres", "duckdb", "trino", "spark", "bigquery", "snowflake")
#: The source's names of the contract columns: a space, quotes, capitals.
MAPPING = {"unit_id": "user id", "variant": "arm's", "ts": 'Event"Time'}
EVIL_ID = "x'; DROP TABLE t; --"

# A proportion with a value filter, a mean of a sum, a quantile every arm has (so the
# pooled AI arms get their own summary) and a ratio whose numerator filters by label,
# beyond the shipped catalog.
EXTRA = [
    Metric(
        name="wrong_answer_share",
        label="Rejections for a wrong answer",
        category="trust",
        kind="ratio",
        goal="decrease",
        ai_only=True,
        numerator=EventAggregate(event="ai_rejected", label_equals="wrong_answer"),
        denominator=EventAggregate(event="ai_rejected"),
    ),
    Metric(
        name="users_thumbs_down",
        label="Users with a thumbs-down",
        category="trust",
        kind="proportion",
        goal="decrease",
        value=EventAggregate(event="feedback", agg="count", value_equals=-1),
    ),
    Metric(
        name="seconds_on_tasks",
        label="Seconds on tasks per user",
        category="effort",
        kind="mean",
        goal="decrease",
        value=EventAggregate(event="task_completed", agg="sum"),
    ),
    Metric(
        name="median_task_seconds",
        label="Median seconds per task",
        category="effort",
        kind="quantile",
        goal="decrease",
        quantile=0.5,
        value=EventAggregate(event="task_completed", agg="sum"),
    ),
]


def _experiments() -> list[tuple[Experiment, list[Metric]]]:
    windowed = CONFIG.experiment("auto-triage")  # window_days 28, pre 14, quantile, segments
    assert windowed.window_days is not None
    # no window, a proportion metric; read as a holdout, so that the decay sums are compared
    open_ended = CONFIG.experiment("smart-compose").model_copy(update={"kind": "holdout"})
    return [
        (windowed, [*CONFIG.metrics_of(windowed), *EXTRA]),
        (open_ended, CONFIG.metrics_of(open_ended)),
    ]


def _edge_rows(experiment: Experiment) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Units the simulation does not make: late, twice in one arm, no platform, boundaries."""
    end = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), dt.UTC)
    t0 = end - dt.timedelta(days=10)
    control, treatment = experiment.control, experiment.treatments()[0]
    p = f"{experiment.id}-edge"
    assignments = [
        (f"{p}-late", control, end + dt.timedelta(hours=1), "web"),  # after the analysis date
        (f"{p}-twice", treatment, t0, "ios"),  # same arm twice: counts once, from t0
        (f"{p}-twice", treatment, t0 + dt.timedelta(days=1), "web"),
        (f"{p}-none", control, t0, None),  # missing dimension
        (f"{p}-cross", control, t0, "web"),  # crossover
        (f"{p}-cross", treatment, t0 + dt.timedelta(hours=2), "web"),
    ]
    at_window_end = t0 + dt.timedelta(days=experiment.window_days or 30)
    events = [
        (f"{p}-e1", f"{p}-late", end - dt.timedelta(hours=1), "task_started", None),
        (f"{p}-e2", f"{p}-twice", t0, "task_started", None),  # at assigned_at: counts
        (f"{p}-e3", f"{p}-twice", t0 - dt.timedelta(microseconds=1), "task_started", None),
        (f"{p}-e4", f"{p}-twice", end - dt.timedelta(microseconds=1), "task_completed", 30.0),
        (f"{p}-e5", f"{p}-twice", end, "task_completed", 40.0),  # at the end: does not count
        (f"{p}-e6", f"{p}-none", at_window_end - dt.timedelta(seconds=1), "feedback", -1.0),
        (f"{p}-e6", f"{p}-none", at_window_end - dt.timedelta(seconds=1), "feedback", -1.0),
        (f"{p}-e7", f"{p}-none", t0 + dt.timedelta(hours=1), "ai_latency", 812.5),
        (f"{p}-e8", f"{p}-cross", t0 + dt.timedelta(hours=1), "task_started", None),
        (f"{p}-e9", f"{p}-none", t0 - dt.timedelta(days=3), "support_ticket", None),  # pre
        # ids missing twice: one distinct id among the counts, one event kept
        (None, f"{p}-none", t0 + dt.timedelta(hours=2), "task_started", None),
        (None, f"{p}-none", t0 + dt.timedelta(hours=3), "task_started", None),
    ]
    a = pl.DataFrame(
        {
            "experiment_id": [experiment.id] * len(assignments),
            "unit_id": [r[0] for r in assignments],
            "variant": [r[1] for r in assignments],
            "assigned_at": [r[2] for r in assignments],
            "platform": [r[3] for r in assignments],
            "plan": ["free"] * len(assignments),
        },
        schema_overrides={"assigned_at": pl.Datetime("us", "UTC")},
    )
    e = pl.DataFrame(
        {
            "event_id": [r[0] for r in events],
            "unit_id": [r[1] for r in events],
            "ts": [r[2] for r in events],
            "event": [r[3] for r in events],
            "value": [r[4] for r in events],
            "task_id": [None] * len(events),
            "label": [None] * len(events),
        },
        schema_overrides={
            "ts": pl.Datetime("us", "UTC"),
            "value": pl.Float64,
            "task_id": pl.String,
            "label": pl.String,
        },
    )
    return a, e


@pytest.fixture(scope="module")
def data() -> SimulatedData:
    parts = []
    for i, (experiment, _) in enumerate(_experiments()):
        sim = simulate_experiment(
            experiment, UNITS, AS_OF, seed=7 + i, duplicate_rate=0.02, crossover_rate=0.02
        )
        a, e = _edge_rows(experiment)
        parts.append(
            SimulatedData(
                pl.concat([sim.assignments, a.match_to_schema(sim.assignments.schema)]),
                pl.concat([sim.events, e.match_to_schema(sim.events.schema)]),
            )
        )
    return SimulatedData(
        pl.concat([p.assignments for p in parts]), pl.concat([p.events for p in parts])
    )


# --------------------------------------------------------------------------- polars path


@dataclass(frozen=True)
class Expected:
    cleaning: Cleaning
    moments: Mapping[str, Mapping[str, Moments]]
    joint: Mapping[str, Mapping[str, JointMoments]]
    segments: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Moments]]]]
    quantiles: Mapping[str, Mapping[str, QuantileSummary]]  # from each arm's events


def _polars_path(data: SimulatedData, experiment: Experiment, metrics: list[Metric]) -> Expected:
    window = Window(AS_OF, experiment.window_days, experiment.pre_window_days)
    assignments = data.assignments.lazy().filter(pl.col("experiment_id") == experiment.id)
    events = data.events.lazy().join(
        assignments.select("unit_id").unique(), on="unit_id", how="semi"
    )
    units = metrics_mod.clean_assignments(assignments, window).collect().lazy()
    table = metrics_mod.unit_table(units, events, metrics, window).collect().lazy()
    percentile = experiment.statistics.winsorize_percentile
    if percentile is not None:  # as the polars engine: per-event and per-unit caps
        capped = metrics_mod.in_window_events(
            units, events, window, metrics_mod.event_capped_events(metrics)
        )
        table = winsorize_table(table, metrics, percentile, capped).collect().lazy()
    quantiles: dict[str, dict[str, QuantileSummary]] = {}
    for m in metrics:
        if m.kind == "quantile":
            assert m.value is not None
            assert m.quantile is not None
            frame = (
                metrics_mod.in_window_events(units, events, window, [m.value.event])
                .filter(~pl.col("pre") & (pl.col("event") == m.value.event))
                .filter(pl.col("value").is_not_null())
                .select("variant", "value", "unit_id")
                .collect()
            )
            arms = {str(v): p for (v,), p in frame.partition_by("variant", as_dict=True).items()}
            pooled = experiment.pooled_ai_variants()
            if pooled and not m.ai_only:
                arms[POOLED] = frame.filter(pl.col("variant").is_in(pooled))
            quantiles[m.name] = {
                arm: summarize(
                    QuantileSample(
                        part["value"].cast(pl.Float64).to_numpy(),
                        part["unit_id"]
                        .cast(pl.Categorical)
                        .to_physical()
                        .to_numpy()
                        .astype(np.int64),
                    ),
                    m.quantile,
                    experiment.alpha,
                )
                for arm, part in arms.items()
            }
    return Expected(
        cleaning=metrics_mod.cleaning_counts(units, events, experiment),
        moments=metrics_mod.arm_moments(table, metrics),
        joint=metrics_mod.arm_joint_moments(table, metrics),
        segments={d: metrics_mod.segment_moments(table, metrics, d) for d in experiment.segments},
        quantiles=quantiles,
    )


def _close(a: float, b: float, what: str) -> None:
    assert math.isclose(a, b, rel_tol=REL, abs_tol=1e-9), f"{what}: {a!r} != {b!r}"


def _assert_moments(got: Moments, want: Moments, what: str) -> None:
    assert got.n == want.n, f"{what}: n {got.n} != {want.n}"
    for name in ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy"):
        _close(getattr(got, name), getattr(want, name), f"{what}.{name}")


def _assert_same(got: WarehouseMeasurement, want: Expected, metrics: Sequence[Metric]) -> None:
    assert got.cleaning == want.cleaning
    assert want.cleaning.duplicates_dropped > 0
    assert want.cleaning.crossovers_excluded > 0
    assert got.data.moments.keys() == want.moments.keys()
    for metric, by_variant in want.moments.items():
        assert got.data.moments[metric].keys() == by_variant.keys(), metric
        for variant, moments in by_variant.items():
            _assert_moments(got.data.moments[metric][variant], moments, f"{metric}/{variant}")
    assert want.joint
    assert got.data.joint.keys() == want.joint.keys()
    for metric, by_variant in want.joint.items():
        assert got.data.joint[metric].keys() == by_variant.keys(), metric
        for variant, joint in by_variant.items():
            mine = got.data.joint[metric][variant]
            assert mine.n == joint.n, metric
            for i in range(joint.k):
                _close(mine.means[i], joint.means[i], f"{metric}/{variant} mean {i}")
                for j in range(joint.k):
                    _close(mine.comoments[i][j], joint.comoments[i][j], f"{metric} c{i}{j}")
    assert got.segments.keys() == want.segments.keys()
    for dim, by_metric in want.segments.items():
        assert got.segments[dim].keys() == by_metric.keys(), dim
        for metric, by_value in by_metric.items():
            assert list(got.segments[dim][metric]) == list(by_value), (dim, metric)
            for value, by_variant in by_value.items():
                assert got.segments[dim][metric][value].keys() == by_variant.keys()
                for variant, moments in by_variant.items():
                    _assert_moments(
                        got.segments[dim][metric][value][variant],
                        moments,
                        f"{dim}={value}/{metric}/{variant}",
                    )
    assert MISSING in want.segments["platform"][metrics[0].name]
    quantiles = [m for m in metrics if m.kind == "quantile"]
    assert want.quantiles.keys() == {m.name for m in quantiles}
    if "median_task_seconds" in want.quantiles:  # auto-triage pools its two AI arms
        assert POOLED in want.quantiles["median_task_seconds"]
    assert_same_quantiles(got.data.quantiles, want.quantiles)


# --------------------------------------------------------------------------- DuckDB


def _mapped(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({k: v for k, v in MAPPING.items() if k in frame.columns})


@pytest.fixture(scope="module")
def duckdb_path(data: SimulatedData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tables in a schema whose name has a space, with mapped (awkward) column names."""
    path = tmp_path_factory.mktemp("warehouse") / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute('CREATE SCHEMA "raw data"')
        for table, frame in (("assignments", data.assignments), ("events", data.events)):
            con.register("incoming", _mapped(frame).to_arrow())
            con.execute(f'CREATE TABLE "raw data"."{table}" AS SELECT * FROM incoming')
            con.unregister("incoming")
    return path


@pytest.mark.parametrize("index", [0, 1], ids=["windowed", "open-ended"])
def test_duckdb_equals_polars_path(data: SimulatedData, duckdb_path: Path, index: int) -> None:
    experiment, metrics = _experiments()[index]
    source = DuckDBSource(
        kind="duckdb",
        path=duckdb_path,
        assignments="raw data.assignments",
        events="raw data.events",
        columns=MAPPING,
    )
    got = measure_in_database("w", source, experiment, metrics, AS_OF)
    assert got.dialect == "duckdb"
    _assert_same(got, _polars_path(data, experiment, metrics), metrics)
    # only sufficient statistics come back: a row per (dimension, segment, arm)
    assert got.rows["moments"] < 50
    assert got.rows["cleaning"] <= 2 * len(experiment.variants) + 2
    # units assigned by the end of AS_OF, counted from the assignments (no quarantine here)
    assert got.analysed_units == sum(got.cleaning.units.values()) + got.cleaning.crossovers_excluded
    # the connection it opened (and its temporary tables) is gone: the per-unit checks'
    # query reads the tables themselves, on any connection
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        units = con.sql(got.unit_metrics_sql).pl()
    assert units.height == sum(got.cleaning.units.values())


def test_duckdb_missing_table_and_column(duckdb_path: Path) -> None:
    experiment, metrics = _experiments()[1]
    source = DuckDBSource(kind="duckdb", path=duckdb_path, columns=MAPPING)
    with pytest.raises(SourceError, match="'assignments'"):
        measure_in_database("w", source, experiment, metrics, AS_OF)
    source = DuckDBSource(
        kind="duckdb",
        path=duckdb_path,
        assignments="raw data.assignments",
        events="raw data.events",
    )
    with pytest.raises(SourceError, match="unit_id"):
        measure_in_database("w", source, experiment, metrics, AS_OF)


# --------------------------------------------------------------------------- PostgreSQL


def _copy(con: object, table: str, frame: pl.DataFrame) -> None:
    columns = ", ".join('"' + c.replace('"', '""') + '"' for c in frame.columns)
    with con.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in frame.iter_rows():
            copy.write_row(row)


@pytest.fixture(scope="module")
def pg_schema(data: SimulatedData) -> Iterator[str]:
    with throwaway_schema("proof_test") as (con, name):
        con.execute(
            f'CREATE TABLE {name}.assignments (experiment_id text, "user id" text, '
            '"arm\'s" text, assigned_at timestamptz, platform text, plan text)'
        )
        con.execute(
            f'CREATE TABLE {name}.events (event_id text, "user id" text, "Event""Time" '
            "timestamptz, event text, value double precision, task_id text, label text)"
        )
        _copy(con, f"{name}.assignments", _mapped(data.assignments))
        _copy(con, f"{name}.events", _mapped(data.events))
        # a warehouse keeps statistics; freshly loaded tables have none until autovacuum runs
        con.execute(f"ANALYZE {name}.assignments")
        con.execute(f"ANALYZE {name}.events")
        yield name


def _pg_source(schema_name: str) -> SqlSource:
    return SqlSource(
        kind="sql",
        uri_env="PROOF_TEST_PG_URI",
        assignments=f"{schema_name}.assignments",
        events=f"{schema_name}.events",
        columns=MAPPING,
    )


@pytest.mark.parametrize("index", [0, 1], ids=["windowed", "open-ended"])
def test_postgres_equals_polars_path(
    data: SimulatedData, pg_schema: str, index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROOF_TEST_PG_URI", PG_URI)
    experiment, metrics = _experiments()[index]
    got = measure_in_database("pg", _pg_source(pg_schema), experiment, metrics, AS_OF)
    assert got.dialect == "postgres"
    _assert_same(got, _polars_path(data, experiment, metrics), metrics)


def test_malicious_experiment_id_is_a_literal(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROOF_TEST_PG_URI", PG_URI)
    experiment, metrics = _experiments()[1]
    evil = experiment.model_copy(update={"id": EVIL_ID})
    got = measure_in_database("pg", _pg_source(pg_schema), evil, metrics, AS_OF)
    assert got.cleaning.events == 0
    assert sum(got.cleaning.units.values()) == 0
    assert got.data.moments[metrics[0].name] == {}
    # the tables are still there
    again = measure_in_database("pg", _pg_source(pg_schema), experiment, metrics, AS_OF)
    assert sum(again.cleaning.units.values()) > 0
    for dialect in DIALECTS:
        for name, sql in compile_queries(evil, metrics, AS_OF, dialect, has_label=True).items():
            statements = sqlglot.parse(sql, read=dialect)
            assert len(statements) == 1, (dialect, name)
            tree = statements[0]
            assert tree is not None
            assert not list(tree.find_all(exp.Drop)), (dialect, name)
            literals = {lit.this for lit in tree.find_all(exp.Literal) if lit.is_string}
            assert EVIL_ID in literals, (dialect, name)


def test_postgres_errors_do_not_leak_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROOF_TEST_PG_URI", "postgresql://postgres:s3cret-pass@127.0.0.1:5432/test")
    source = SqlSource(kind="sql", uri_env="PROOF_TEST_PG_URI", assignments="no_such.t", events="e")
    experiment, metrics = _experiments()[1]
    with pytest.raises(SourceError) as info:
        measure_in_database("pg", source, experiment, metrics, AS_OF)
    assert "s3cret-pass" not in str(info.value)
    assert "no_such.t" in str(info.value)
    monkeypatch.delenv("PROOF_TEST_PG_URI")
    with pytest.raises(SourceError, match="PROOF_TEST_PG_URI is not set"):
        measure_in_database("pg", source, experiment, metrics, AS_OF)


# --------------------------------------------------------------------------- every section


def _polars_engine(
    data: SimulatedData, experiment: Experiment, metrics: list[Metric]
) -> Measurement:
    """The polars engine's measurement of the experiment's raw rows (no quarantine)."""
    assignments = data.assignments.lazy().filter(pl.col("experiment_id") == experiment.id)
    events = data.events.lazy().join(
        assignments.select("unit_id").unique(), on="unit_id", how="semi"
    )
    return measure(Tables(assignments, events), experiment, metrics, AS_OF)


@pytest.mark.parametrize("where", ["duckdb", "postgres"])
@pytest.mark.parametrize("index", [0, 1], ids=["windowed", "open-ended"])
def test_every_section_equals_the_polars_engine(
    data: SimulatedData,
    duckdb_path: Path,
    pg_schema: str,
    where: str,
    index: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Moments (winsorised for the windowed experiment), segments, samples, both
    timelines, the funnel and the histograms of the edge rows' data (late units, a
    unit assigned twice, events a microsecond either side of a boundary), as the polars
    engine computes them; the timelines and pictures return a few rows per arm."""
    experiment, metrics = _experiments()[index]
    if where == "duckdb":
        source: DuckDBSource | SqlSource = DuckDBSource(
            kind="duckdb", path=duckdb_path, assignments="raw data.assignments",
            events="raw data.events", columns=MAPPING,
        )  # fmt: skip
    else:
        monkeypatch.setenv("PROOF_TEST_PG_URI", PG_URI)
        source = _pg_source(pg_schema)
    got = measure_in_database("w", source, experiment, metrics, AS_OF)
    measured = Measurement(
        cleaning=got.cleaning, data=got.data, segments=got.segments, daily=got.daily,
        weekly=got.weekly, funnel=got.funnel, time_on_task=got.time_on_task, trust=got.trust,
        computed_in=ComputedIn(got.dialect, got.rows, tuple(NOT_AVAILABLE)),
        failures=got.failures, decay=got.decay, flow=got.flow, unsure=got.unsure,
    )  # fmt: skip
    want = _polars_engine(data, experiment, metrics)
    assert bool(want.decay) == (experiment.kind == "holdout")
    # the holdout's AI arm logs its confidence (AI_FADING_BEHAVIOUR): both dimensions compared
    assert want.unsure is not None
    assert bool(want.unsure.moments["confidence"]) == (experiment.kind == "holdout")
    assert_measured_like(measured, want)
    days = (AS_OF - experiment.start).days + 1
    assert got.rows["daily"] <= 2 * len(experiment.variants) * days
    assert got.rows["weekly"] <= 2 * len(experiment.variants) * (days // 7 + 1)
    assert got.rows["descriptives"] <= len(experiment.variants) * (5 + 7 + 30) + 1


@pytest.mark.parametrize(
    ("index", "primary"),
    [(1, "users_completing_a_task"), (0, "tasks_completed_per_user"), (0, "seconds_on_tasks")],
    ids=["proportion", "mean-of-count", "mean-of-sum"],
)
def test_timelines_of_a_proportion_or_mean_primary(
    data: SimulatedData, duckdb_path: Path, index: int, primary: str
) -> None:
    """The daily timeline's indicator (a proportion's running ``x > 0``) and float sums."""
    experiment, metrics = _experiments()[index]
    experiment = experiment.model_copy(
        update={"metrics": experiment.metrics.model_copy(update={"primary": primary})}
    )
    source = DuckDBSource(
        kind="duckdb", path=duckdb_path, assignments="raw data.assignments",
        events="raw data.events", columns=MAPPING,
    )  # fmt: skip
    got = measure_in_database("w", source, experiment, metrics, AS_OF)
    want = _polars_engine(data, experiment, metrics)
    assert want.daily
    _assert_nested_moments(got.daily, want.daily, "daily")
    assert primary in want.weekly
    _assert_nested_moments(got.weekly, want.weekly, "weekly")


def _quantile_values() -> dict[int, np.ndarray]:
    rng = np.random.default_rng(5)
    arrays = [rng.normal(size=n) * 10 ** rng.uniform(-3, 6) for n in (1, 2, 3, 7, 100, 1001)]
    arrays.append(rng.integers(0, 4, size=57) / 3)  # ties
    arrays.append(np.log(rng.lognormal(3, 1, size=2000)) / np.log(10) + 1e6)  # big, close
    return dict(enumerate(arrays))


@pytest.mark.parametrize("where", ["duckdb", "postgres"])
def test_linear_quantiles_are_polars_to_the_last_bit(where: str) -> None:
    """The caps and the histogram bounds: polars' linear quantile, bit for bit."""
    values = _quantile_values()
    frame = pl.DataFrame(
        {
            "k": [k for k, a in values.items() for _ in a],
            "v": np.concatenate(list(values.values())),
        }
    )
    levels = (0.005, 0.5, 0.95, 0.99, 0.995, 0.999)
    want = {
        i: pl.Series(values[k]).quantile(q, interpolation="linear")
        for i, (k, q) in enumerate((k, q) for k in values for q in levels)
    }

    def query(name: str) -> str:
        targets = [
            (sqlglot.select(named(column("v"), "v")).from_(table(name))
             .where(eq(column("k"), integer(k))), q)
            for k in values for q in levels
        ]  # fmt: skip
        body = sqlglot.select(column("key"), column("value")).from_(ref("q"))
        dialect = "duckdb" if where == "duckdb" else "postgres"
        return with_ctes(body, linear_quantiles("q", targets)).sql(dialect=dialect)

    if where == "duckdb":
        with duckdb.connect() as con:
            con.register("quantile_values", frame.to_arrow())
            rows = con.sql(query("quantile_values")).fetchall()
    else:
        with throwaway_schema("proof_q") as (con, name):
            copy_into(con, f"{name}.quantile_values", frame)
            rows = con.execute(query(f"{name}.quantile_values")).fetchall()
    assert dict(rows) == want


# --------------------------------------------------------------------------- dialects


def _quote_style(dialect: str) -> str:
    return "`" if dialect in ("spark", "bigquery") else '"'


@pytest.mark.parametrize("dialect", DIALECTS)
def test_dialects_quote_every_identifier_and_round_trip(dialect: str) -> None:
    experiment, metrics = _experiments()[0]
    odd = experiment.model_copy(update={"id": 'it\'s "odd" \\ here'})
    columns = {**MAPPING, "platform": "Platform Name", "event": "what`happened"}
    queries = compile_queries(
        odd,
        metrics,
        AS_OF,
        dialect,
        tables={"assignments": "my-project.raw data.assignments", "events": "raw.Events"},
        columns=columns,
        has_label=True,
    )
    assert set(queries) == {
        "cleaning", "moments", "quantile_order", "daily", "weekly", "descriptives", "task_flow",
        "unsure",
    }  # fmt: skip
    event_names = {p.event for m in metrics for p in (m.value, m.numerator, m.denominator) if p}
    event_names |= set(EVENTS)  # the funnel's and the histograms'
    allowed_literals = {odd.id, "", MISSING, "2026-11-21 00:00:00+00:00"} | event_names
    allowed_literals |= {str(24 * d) for d in (28, 14)}  # the window and pre-period, in hours
    allowed_literals.add("2026-10-15 00:00:00+00:00")  # day 0 of the daily timeline
    # doubles as text (exact): the winsorising and time-on-task quantiles, the trust halves
    assert odd.statistics.winsorize_percentile is not None
    levels = (odd.statistics.winsorize_percentile, *TIME_RANGE)
    allowed_literals |= {repr(q) for q in levels} | {
        repr(a + h) for a in range(1, 8) for h in (-0.5, 0.5)
    }
    allowed_literals |= {"-Infinity", "Infinity"}  # finite values only enter the caps
    allowed_literals |= {repr(m.quantile) for m in metrics if m.quantile}  # the quantiles' levels
    allowed_literals |= {"wrong_answer"}  # a numerator's label filter
    allowed_literals |= set(UNSURE_EVENTS) | {d for d, _, _ in DIMENSIONS}  # when it is unsure
    allowed_literals |= set(odd.variants)  # the funnel's AI arms, the quantiles' arms
    for name, sql in queries.items():
        tree = sqlglot.parse_one(sql, read=dialect)
        # the same text again from the parsed tree: the dialect reads what it was given
        assert tree.sql(dialect=dialect) == sql, (dialect, name)
        identifiers = list(tree.find_all(exp.Identifier))
        assert identifiers
        assert all(i.quoted for i in identifiers), [i.name for i in identifiers if not i.quoted]
        names = {i.name for i in identifiers}
        assert {"user id", "arm's", "Platform Name", "my-project", "raw data"} <= names, name
        if name != "cleaning":
            assert {'Event"Time', "what`happened", "Events"} <= names, name
        strings = {lit.this for lit in tree.find_all(exp.Literal) if lit.is_string}
        assert strings <= allowed_literals, strings - allowed_literals
        assert odd.id in strings
        quote = _quote_style(dialect)
        assert f"{quote}user id{quote}" in sql
        assert "my-project" in sql
        # no unquoted user input: the mapped names never appear outside their quotes
        bare = sql.replace(f"{quote}user id{quote}", "").replace(f"{quote}arm's{quote}", "")
        assert "user id" not in bare


def test_same_query_for_every_dialect(data: SimulatedData, duckdb_path: Path) -> None:
    """Each dialect's text is the same query: read back and run on DuckDB, all agree.

    The Trino, Spark, BigQuery and Snowflake texts are parsed in their dialect,
    written as DuckDB SQL and run on the DuckDB copy of the data; each gives
    exactly the rows of the DuckDB text.
    """
    experiment, metrics = _experiments()[0]
    tables = {"assignments": "raw data.assignments", "events": "raw data.events"}
    texts = {
        d: compile_queries(experiment, metrics, AS_OF, d, tables, MAPPING, has_label=True)
        for d in DIALECTS
    }
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")

        def run(sql: str) -> list[tuple[object, ...]]:
            rows = con.sql(sql).fetchall()
            return sorted(rows, key=lambda r: (repr([x for x in r if not isinstance(x, float)]), r))

        for name, sql in texts["duckdb"].items():
            reference = run(sql)
            assert reference, name
            for dialect in ("trino", "spark", "bigquery", "snowflake", "postgres"):
                tree = sqlglot.parse_one(texts[dialect][name], read=dialect)
                assert len(list(tree.walk())) > 100
                assert _rows_close(run(tree.sql(dialect="duckdb")), reference), (dialect, name)


def _rows_close(a: list[tuple[object, ...]], b: list[tuple[object, ...]]) -> bool:
    if len(a) != len(b):
        return False
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=REL, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def test_dialect_of_uri() -> None:
    assert dialect_of("postgresql://u@h/db") == "postgres"
    assert dialect_of("postgresql+psycopg://u@h/db") == "postgres"
    assert dialect_of("trino://u@h:8080/hive") == "trino"
    assert dialect_of("bigquery:///path/key.json") == "bigquery"
    with pytest.raises(SourceError, match="no SQL dialect"):
        dialect_of("unknown://h/db")


def test_postgres_uri_plans_without_nested_loops() -> None:
    assert without_nested_loops("postgresql://u@h:5432/db") == (
        "postgresql://u@h:5432/db?options=-c%20enable_nestloop%3Doff"
    )
    kept = without_nested_loops(
        "postgresql://u:p%40ss@h/db?sslmode=require&options=-c%20statement_timeout%3D5000"
    )
    assert kept.startswith("postgresql://u:p%40ss@h/db?sslmode=require&")
    assert kept.endswith("options=-c%20statement_timeout%3D5000%20-c%20enable_nestloop%3Doff")


def test_postgres_queries_run_without_nested_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both of Proof's PostgreSQL readers (aggregation, quarantine) get the setting.

    With nested loops, the aggregation of 2,000 units took minutes: PostgreSQL
    estimates one row for the labelled relations and rescans the events per unit.
    """
    monkeypatch.setenv("PROOF_TEST_PG_URI", PG_URI)
    source = SqlSource(kind="sql", uri_env="PROOF_TEST_PG_URI", assignments="a", events="e")
    setting = "SELECT current_setting('enable_nestloop') AS s"
    with connection("pg", source, None) as con:
        # connectorx opens a connection per query: no temporary table lasts, none is shared
        assert con.keep is None
        assert con.share is None
        assert con.dialect == "postgres"
        assert con.execute(setting).item() == "off"
    assert database("pg", source).fetch(setting).item() == "off"
    with gx_session(database("pg", source)) as gx, gx.rows.get_engine().connect() as con:
        # GX materialises the per-unit table's query (the per-unit checks) on this engine
        assert con.exec_driver_sql(setting).scalar() == "off"
    assert pl.read_database_uri(setting, PG_URI, engine="connectorx").item() == "on"
