"""Apache Spark as one more database of the database engine: a session and its connection.

A ``spark`` source always runs pushed down: :func:`open_spark` gives the
run's :class:`~analysis.sql.aggregate_connect.Connection` on a Spark session,
on which the quarantine, GX and the aggregation run as Spark SQL written by
the same sqlglot builders as for DuckDB and PostgreSQL (dialect ``spark``).
Only the quarantined rows and the sufficient statistics come back to the
driver, as Arrow.

One SparkContext serves the process (Spark allows one); each run gets its own
session (``newSession``): its temporary views and cached tables are its own,
so two experiments of a nightly never see each other's. On a Spark Connect
master (``sc://``: a Spark Connect server, Databricks Connect) each run opens
its own server-side session instead, and stops it at the end; no Java is
needed in Proof's process then. Files (parquet paths
or globs) are registered as temporary views named by
:meth:`~analysis.config.sources.SparkSource.relations`; tables of Spark's
catalog are read as they are. ``keep`` computes a query's rows once into the
executors (``localCheckpoint``), which ``close`` drops.

The master may carry credentials (a URL with a user and password or a
token): it can be read from ``master_env``, and every message is redacted of
it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import polars as pl
import sqlglot
from sqlglot import exp

from analysis import settings
from analysis.config.sources import SparkSource, is_path
from analysis.sources.connect import check_reachable
from analysis.sources.errors import SourceError, redact
from analysis.sql.aggregate_connect import Connection
from analysis.sql.expressions import table

__all__ = ["SPARK_TYPES", "is_connect", "java_missing", "open_spark", "spark_master"]

#: Spark's catalog types (``DESCRIBE TABLE``, upper case) that Proof reads as each
#: contract type. A naive ``TIMESTAMP_NTZ`` is not a zoned time and is refused.
SPARK_TYPES = {
    "str": ("STRING", "VARCHAR", "CHAR"),
    "Timestamp": ("TIMESTAMP", "TIMESTAMP_LTZ"),
    "float64": ("DOUBLE", "FLOAT", "TINYINT", "SMALLINT", "INT", "BIGINT", "DECIMAL"),
}

_STARTING = threading.Lock()


def java_missing() -> str | None:
    """Why Spark cannot start here (no Java), or None."""
    home = settings.env("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return None
    if shutil.which("java"):
        return None
    return (
        "Spark needs Java 17 and none was found (`make java` installs Debian's; or set JAVA_HOME)"
    )


def spark_master(source_name: str, source: SparkSource) -> str:
    """The master of the source: ``master``, or the variable ``master_env`` names."""
    if source.master_env is None:
        return source.master
    found = settings.env(source.master_env)
    if not found:
        raise SourceError(
            f"source {source_name!r}: environment variable {source.master_env} is not set"
        )
    return found


def _hide(message: str, master: str) -> str:
    """``message`` without the master, nor any Spark Connect token it names."""
    return re.sub(r"(token=)[^;\s/]+", r"\1***", redact(message, master))


def _defaults(master: str) -> dict[str, str]:
    """Settings for a session in this process (``local[N]``), which ``conf`` overrides.

    Spark's 200 partitions per shuffle suit a cluster; on N local cores each
    query of a run would pay for 200 tiny tasks per stage (seconds per query).
    """
    if not master.startswith("local"):
        return {}
    cores = master.removeprefix("local").strip("[]").split(",")[0] or "1"  # local[N,retries]
    count = int(cores) if cores.isdigit() else (os.cpu_count() or 2)  # local[*]
    return {"spark.sql.shuffle.partitions": str(2 * count)}


def is_connect(master: str) -> bool:
    """Whether ``master`` is a Spark Connect URL (``sc://host:port/;params``)."""
    return master.startswith("sc://")


def _connect_session(source_name: str, source: SparkSource, master: str) -> Any:
    """A new server-side session of the Spark Connect server at ``master``, for one run.

    The port is tried first: the client would retry an unreachable server for minutes.
    """
    from pyspark import SparkContext

    check_reachable(source_name, master)
    if SparkContext._active_spark_context is not None:
        raise SourceError(
            f"source {source_name!r}: this process already runs Spark on another master; "
            "one process runs one Spark master"
        )
    settings.flag_spark_connect_client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas 3, as in _base_session
        from pyspark.sql.connect.session import SparkSession

        try:
            session = SparkSession.builder.remote(master).create()
            # Runtime settings only: the server's static ones (memory, cores) are its own.
            for key, value in {"spark.sql.session.timeZone": "UTC", **source.conf}.items():
                session.conf.set(key, value)
        except Exception as exc:  # grpc and the server raise many types
            first = (_hide(str(exc), master).strip().splitlines() or [""])[0]
            raise SourceError(
                f"source {source_name!r}: no Spark Connect session ({type(exc).__name__}: {first})"
            ) from None
    return session


@contextmanager
def _active(session: Any) -> Iterator[None]:
    """``session`` as the thread's active Spark Connect session, for the call inside.

    pyspark 4.3 binds a checkpoint's result to the thread's active session, not
    to the session that made it (``proto_to_remote_cached_dataframe``): read
    through another session, the server answers DATAFRAME_NOT_FOUND.
    """
    from pyspark.sql.connect.session import SparkSession

    local = SparkSession._active_session
    before = getattr(local, "session", None)
    local.session = session
    try:
        yield
    finally:
        local.session = before


def _base_session(source_name: str, source: SparkSource, master: str) -> Any:
    """The process's Spark session on ``master`` (started once: Spark allows one context)."""
    if settings.is_spark_connect_client():
        raise SourceError(
            f"source {source_name!r}: this process already runs Spark Connect; "
            "one process runs one Spark master"
        )
    missing = java_missing()
    if missing is not None:
        raise SourceError(f"source {source_name!r}: {missing}")
    # pyspark logs every failed query's JVM stack trace; Proof says what failed itself.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        # pyspark warns that it does not yet support pandas 3 (Proof hands it no pandas).
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark.sql import SparkSession

        with _STARTING:
            active = SparkSession.getActiveSession()
            if active is not None:
                if active.sparkContext.master != master:
                    raise SourceError(
                        f"source {source_name!r}: this process already runs Spark on "
                        f"another master; one process runs one Spark master"
                    )
                return active
            builder = (
                SparkSession.builder.master(master)
                .appName("proof")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.log.level", "ERROR")
                .config("spark.sql.session.timeZone", "UTC")
            )
            for key, value in {**_defaults(master), **source.conf}.items():
                builder = builder.config(key, value)
            try:
                return builder.getOrCreate()
            except Exception as exc:  # py4j, grpc and the JVM raise many types
                first = (_hide(str(exc), master).strip().splitlines() or [""])[0]
                raise SourceError(
                    f"source {source_name!r}: Spark did not start ({type(exc).__name__}: {first})"
                ) from None


def shared_ctes(tree: exp.Expr) -> list[exp.CTE]:
    """The CTEs of ``tree`` that more than one place reads, in order.

    Spark inlines every deterministic CTE where it is read, so a chain of CTEs
    that each read the one before twice (the quarantine's labels) grows into a
    plan that takes tens of seconds to optimise and computes its parts again.
    Each of these is computed once, into a view, before the query.
    """
    shared = []
    for cte in tree.find_all(exp.CTE):
        reads = [t for t in tree.find_all(exp.Table) if not t.db and t.name == cte.alias]
        if len(reads) > 1:
            shared.append(cte)
    return shared


class SparkQueryError(RuntimeError):
    """A query Spark refused or failed, with the JVM's message (first line) only."""


@contextmanager
def _readable_errors() -> Iterator[None]:
    """py4j's errors carry the JVM's whole stack trace, Spark Connect's the server's:
    keep the exception's message (its first line)."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    try:
        yield
    except Py4JJavaError as exc:
        raise SparkQueryError(_root_message(exc.java_exception)) from None
    except PySparkException as exc:
        message = str(exc.getMessage() or exc).strip()
        raise SparkQueryError((message.splitlines() or [type(exc).__name__])[0]) from None


def _root_message(error: Any) -> str:
    """The first line of the innermost cause's message (Spark wraps the one that says why)."""
    while error.getCause() is not None:
        error = error.getCause()
    message = str(error.getMessage() or error.toString()).strip()
    return (message.splitlines() or [str(error.toString())])[0]


def open_spark(source_name: str, source: SparkSource) -> Connection:
    """The run's connection: a new Spark session with the source's files as views.

    The caller closes it (:attr:`Connection.close`): its cached tables and
    views go; the process's Spark context stays for the next run.
    """
    master = spark_master(source_name, source)
    remote = is_connect(master)
    if remote:
        session = _connect_session(source_name, source, master)
    else:
        session = _base_session(source_name, source, master).newSession()

    def computed(frame: Any) -> Any:
        """``frame`` computed now and kept in the executors, its plan cut."""
        with _active(session) if remote else nullcontext():
            return frame.localCheckpoint(eager=True)

    def without_master(message: str) -> str:
        return _hide(message, master)

    names = source.relations()
    for role, value in (("assignments", source.assignments), ("events", source.events)):
        if not is_path(value):
            continue
        try:
            session.read.parquet(value).createOrReplaceTempView(names[role])
        except Exception as exc:  # Spark's AnalysisException for a missing path, and others
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SourceError(
                f"source {source_name!r}: cannot read the {role} files {value!r} "
                f"({type(exc).__name__}: {without_master(first)})"
            ) from None
    kept: list[tuple[str, Any]] = []

    def drop(views: list[tuple[str, Any]]) -> None:
        for name, frame in views:
            session.catalog.dropTempView(name)
            frame.unpersist()

    def run(query: str) -> tuple[Any, list[tuple[str, Any]]]:
        """The dataframe of ``query``, its shared CTEs computed first (:func:`shared_ctes`),
        and their views, which the caller drops once the query's rows are computed."""
        tree = sqlglot.parse_one(query, dialect="spark")
        views: list[tuple[str, Any]] = []
        for cte in shared_ctes(tree):
            view = f"proof_cte_{len(kept) + len(views)}_{cte.alias}"
            before = []  # the CTEs it may read, still to be inlined
            for other in tree.find_all(exp.CTE):
                if other is cte:
                    break
                before.append(other.sql(dialect="spark"))
            body = cte.this.sql(dialect="spark")
            body = f"WITH {', '.join(before)} {body}" if before else body
            frame = computed(session.sql(body))
            frame.createOrReplaceTempView(view)
            views.append((view, frame))
            for ref in list(tree.find_all(exp.Table)):
                if not ref.db and ref.name == cte.alias:
                    ref.set("this", exp.to_identifier(view, quoted=True))
            cte.pop()
        return session.sql(tree.sql(dialect="spark")), views

    def execute(query: str) -> pl.DataFrame:
        with _readable_errors():
            found, views = run(query)
            try:
                frame = pl.from_arrow(found.toArrow())
            finally:
                drop(views)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def keep_rows(name: str, query: str) -> exp.Select:
        # Computed once into the executors' block stores (memory, spilled to disk), with
        # the plan cut: a cached view would be analysed again, whole, by every query
        # that reads it (about a second each, at any size).
        with _readable_errors():
            found, views = run(query)
            try:
                frame = computed(found)
            finally:
                drop(views)  # the checkpoint no longer reads them
            frame.createOrReplaceTempView(name)
        kept.append((name, frame))
        return sqlglot.select(exp.Star()).from_(table(name))

    def close() -> None:
        drop(kept)
        kept.clear()
        if remote:  # the server-side session and all it holds; a local one is the process's
            session.stop()

    def share() -> Any:
        """The session itself: GX's Spark engine validates its dataframes."""
        return session

    return Connection(execute, "spark", without_master, keep_rows, share, close)


@contextmanager
def spark_connection(source_name: str, source: SparkSource) -> Iterator[Connection]:
    """:func:`open_spark`, closed on leaving."""
    opened = open_spark(source_name, source)
    try:
        yield opened
    finally:
        opened.close()
