"""The database of a ``sql`` or ``duckdb`` source, and the description of its two tables.

:meth:`Database.open` is how a run reaches its database: it resolves the URI
(or the DuckDB file), connects once (failing fast, naming host and port, when
nothing answers), reads both tables' columns and catalog types from the
catalog once, and returns the handle with that description
(:attr:`Database.tables`). The quarantine, GX and row functions of
:mod:`analysis.sql` take that handle; none of them connects or reflects again.

Errors name the source and never the URI's credentials. PostgreSQL is read
through psycopg 3 (``postgresql+psycopg://``), DuckDB through duckdb-engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import polars as pl
import sqlalchemy as sa
from sqlglot import exp

from analysis import schema
from analysis.config.sources import DatabaseSource, DuckDBSource, SparkSource, SqlSource
from analysis.sources.connect import check_reachable, connect_duckdb, sql_uri, without_nested_loops
from analysis.sources.errors import SourceError, SourceSchemaError, redact
from analysis.sql.aggregate_connect import Connection
from analysis.sql.spark import SPARK_TYPES, spark_master

__all__ = [
    "DIALECT",
    "DUCKDB_TYPES",
    "PG_TYPES",
    "Database",
    "SqlTable",
    "check_source",
    "database",
    "reflect",
    "sqlalchemy_url",
    "why",
]

DIALECT = "postgres"

#: PostgreSQL types (as GX reports the catalog's, upper case) that Proof's
#: reader converts to each contract type without guessing (``sources.conform``).
#: A length or precision (``VARCHAR(20)``, ``NUMERIC(10, 2)``) is accepted too.
PG_TYPES: Mapping[str, tuple[str, ...]] = {
    "str": ("TEXT", "VARCHAR", "CHARACTER VARYING", "CHAR", "CHARACTER", "BPCHAR", "NAME",
            "CITEXT"),
    "Timestamp": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"),
    "float64": ("DOUBLE PRECISION", "REAL", "SMALLINT", "INTEGER", "BIGINT", "NUMERIC",
                "DECIMAL"),
}  # fmt: skip
#: DuckDB types (as GX reports them, upper case) that Proof's reader converts
#: to each contract type (``sources.conform``: integers to float, enums to text).
DUCKDB_TYPES: Mapping[str, tuple[str, ...]] = {
    "str": ("VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "ENUM"),
    "Timestamp": ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_TZ"),
    "float64": ("DOUBLE", "FLOAT", "REAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT",
                "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "DECIMAL",
                "NUMERIC"),
}  # fmt: skip


def sqlalchemy_url(uri: str) -> str:
    """The SQLAlchemy URL of a PostgreSQL URI, with the psycopg 3 driver.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``; a URI
    that already names psycopg is kept; any other scheme is an error.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise ValueError("not a database URI")
    base, _, driver = scheme.lower().partition("+")
    if base not in {"postgresql", "postgres"} or driver not in {"", "psycopg"}:
        raise ValueError(
            f"validation inside the database supports PostgreSQL through psycopg 3 "
            f"(postgresql://…), not {scheme}://"
        )
    return f"postgresql+psycopg://{rest}"


def _plain_uri(uri: str) -> str:
    """The URI as connectorx reads it (``postgresql://``)."""
    return "postgresql://" + uri.partition("://")[2]


def why(exc: BaseException, uri: str) -> str:
    """The driver's own message, first line, without the URI or a password."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    first = text[0] if text else type(inner).__name__
    return f"{type(inner).__name__}: {redact(first, uri)}"


@dataclass(frozen=True, slots=True)
class SqlTable:
    """One input table of a SQL source, as the database describes it.

    ``columns`` maps each output column (the contract's names, then an
    assignments table's segment dimensions) to its source column, or to None
    for an optional contract column the table does not have (read as NULL).
    ``types`` are the catalog types of the source columns (GX's spelling).
    """

    role: str
    schema: str | None
    name: str
    columns: Mapping[str, str | None]
    types: Mapping[str, str]

    def table(self) -> exp.Table:
        return exp.table_(self.name, db=self.schema, quoted=True)

    def source_column(self, column: str) -> str | None:
        return self.columns.get(column)


@dataclass(frozen=True)
class Database:
    """Where a source's rows live: PostgreSQL (a ``sql`` source) or a DuckDB file.

    ``uri`` is what messages must never show (a URI with its password; the
    DuckDB path is harmless but handled the same way); ``dialect`` is
    sqlglot's; ``url`` and :meth:`engine_args` are SQLAlchemy's (psycopg 3, or
    duckdb-engine reading the file read-only). A handle from :meth:`open`
    carries the description of both tables (:attr:`tables`); one from
    :func:`database` only runs queries (:meth:`fetch`).

    ``connection``: the run's open connection (a DuckDB file's, from
    :func:`~analysis.sql.aggregate_connect.open_connection`), on which
    :meth:`fetch` runs and the quarantine keeps its labelled rows for the
    rest of the run; None: each fetch connects.
    """

    source: str
    uri: str = field(repr=False)
    dialect: str
    url: str = field(repr=False)
    described: Mapping[str, SqlTable] = field(default_factory=dict, repr=False)
    connection: Connection | None = field(default=None, repr=False, compare=False)
    duckdb_file: DuckDBSource | None = field(default=None, repr=False)

    def engine_args(self) -> dict[str, Any]:
        """``create_engine``'s arguments besides the URL (GX's engine takes them too).

        A DuckDB file is opened as every other connection of Proof's to it is
        (:func:`~analysis.sources.connect.connect_duckdb`: read-only, UTC, the
        source's ``memory_limit``), then wrapped for SQLAlchemy: DuckDB refuses
        a connection with another configuration while one is open in the
        process, e.g. a run's (:attr:`connection`) while another experiment's
        run of the nightly starts.
        """
        duckdb_file = self.duckdb_file
        if duckdb_file is None:
            return {}

        def create() -> Any:
            from duckdb_engine import ConnectionWrapper

            return ConnectionWrapper(connect_duckdb(self.source, duckdb_file))

        return {"creator": create}

    @classmethod
    def open(
        cls, source: str, src: DatabaseSource, connection: Connection | None = None
    ) -> Database:
        """Connect once and describe both tables: the handle a run passes around.

        ``connection``: the run's open connection, which the handle carries
        (:attr:`connection`); a Spark source is described on it (its session
        holds the views of its files), the others through SQLAlchemy.

        Raises:
            SourceError: an unset variable, a URI that is not PostgreSQL, a
                missing DuckDB file, an unreachable database or a missing table,
                naming the source (never the URI's credentials).
            SourceSchemaError: a required column is missing.
        """
        db = replace(database(source, src), connection=connection)
        if isinstance(src, SparkSource):
            if connection is None:
                raise ValueError(f"source {source!r}: a Spark source is described on its session")
            return replace(db, described=reflect(source, src, _described_on(connection), db.uri))
        with _engine(db) as engine:
            types = partial(_catalog_types, engine)
            return replace(db, described=reflect(source, src, types, str(engine.url)))

    @property
    def tables(self) -> Mapping[str, SqlTable]:
        """Both tables by role (``assignments``, ``events``), as :meth:`open` read them."""
        if not self.described:
            raise ValueError(
                f"source {self.source!r}: the tables are not described (use Database.open)"
            )
        return self.described

    @property
    def share(self) -> Callable[[], Any] | None:
        """Lends the run's connection to GX (:attr:`Connection.share`), where it can."""
        return self.connection.share if self.connection is not None else None

    @property
    def types(self) -> Mapping[str, tuple[str, ...]]:
        if self.dialect == "spark":
            return SPARK_TYPES
        return DUCKDB_TYPES if self.dialect == "duckdb" else PG_TYPES

    def fetch(self, sql: str) -> pl.DataFrame:
        """Run one query; the rows come back as a polars frame (never the URI in errors)."""
        try:
            if self.connection is not None:
                return self.connection.execute(sql)
            if self.dialect != "duckdb":
                uri = without_nested_loops(_plain_uri(self.uri))
                return pl.read_database_uri(sql, uri, engine="connectorx")
            if self.duckdb_file is None:
                raise ValueError("a DuckDB database without its file")
            with closing(connect_duckdb(self.source, self.duckdb_file)) as con:
                return cast(pl.DataFrame, con.sql(sql).pl())
        except Exception as exc:  # the drivers raise many types; say which, never the URI
            raise SourceError(
                f"source {self.source!r}: query failed inside the database ({why(exc, self.uri)})"
            ) from None


def database(source: str, src: DatabaseSource) -> Database:
    """The database of ``src``, not connected and its tables not described (see
    :meth:`Database.open`): an unset variable, a URI that is not PostgreSQL or a
    missing DuckDB file is a :class:`SourceError` naming the source."""
    if isinstance(src, SparkSource):  # its "URI" is the master, which may hold a token
        return Database(source, spark_master(source, src), "spark", "")
    if isinstance(src, DuckDBSource):
        connect_duckdb(source, src).close()  # names a missing or unreadable file
        path = Path(src.path).resolve()
        file = src.model_copy(update={"path": path})
        return Database(source, str(path), "duckdb", f"duckdb:///{path}", duckdb_file=file)
    uri = sql_uri(source, src)
    try:
        url = sqlalchemy_url(uri)
    except ValueError as exc:
        raise SourceError(f"source {source!r}: {exc}") from None
    return Database(source, uri, DIALECT, url)


@contextmanager
def _engine(db: Database) -> Iterator[sa.Engine]:
    """A SQLAlchemy engine; fails fast, naming host and port, when nothing answers."""
    if db.dialect != "duckdb":
        check_reachable(db.source, db.uri)
    try:
        engine = sa.create_engine(db.url, poolclass=sa.pool.NullPool, **db.engine_args())
        with engine.connect() as con:
            con.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(
            f"source {db.source!r}: cannot connect to the database ({why(exc, db.uri)})"
        ) from None
    try:
        yield engine
    finally:
        engine.dispose()


def _split_name(source: str, role: str, name: str) -> tuple[str | None, str]:
    parts = name.split(".")
    if len(parts) > 2 or not all(parts):
        raise SourceError(f"source {source!r}: table name {name!r} for {role!r} is not valid")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


class _NoSuchTableError(Exception):
    """The catalog has no such table."""


def _catalog_types(engine: sa.Engine, table: str, schema_name: str | None) -> dict[str, str]:
    """Column name -> catalog type (upper case) of one table.

    DuckDB is asked through ``information_schema``: duckdb-engine's inspector
    is PostgreSQL's, whose column query reads ``pg_collation``, which DuckDB
    does not have.
    """
    try:
        if engine.dialect.name != "duckdb":
            found = sa.inspect(engine).get_columns(table, schema=schema_name)
            return {
                str(c["name"]): str(c["type"].compile(dialect=engine.dialect)).upper()
                for c in found
            }
        query = sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = :table AND table_schema = COALESCE(:schema, current_schema()) "
            "ORDER BY ordinal_position"
        )
        with engine.connect() as con:
            rows = con.execute(query, {"table": table, "schema": schema_name}).all()
    except sa.exc.NoSuchTableError:
        raise _NoSuchTableError(table) from None
    if not rows:
        raise _NoSuchTableError(table)
    return {str(n): str(t).upper() for n, t in rows}


def _described_on(connection: Connection) -> Callable[[str, str | None], dict[str, str]]:
    """Column name -> catalog type (upper case), from ``DESCRIBE TABLE`` (Spark's)."""

    def types(table_name: str, schema_name: str | None) -> dict[str, str]:
        name = exp.table_(table_name, db=schema_name, quoted=True).sql(dialect=connection.dialect)
        try:
            rows = connection.execute(f"DESCRIBE TABLE {name}")
        except Exception as exc:  # Spark's AnalysisException names a missing table so
            if "TABLE_OR_VIEW_NOT_FOUND" in str(exc):
                raise _NoSuchTableError(table_name) from None
            raise
        found: dict[str, str] = {}
        for column, dtype in rows.select(rows.columns[:2]).iter_rows():
            if not column or str(column).startswith("#"):
                break  # partition and detail sections follow the columns
            found[str(column)] = str(dtype).upper()
        return found

    return types


def reflect(
    source: str,
    src: DatabaseSource,
    types_of: Callable[[str, str | None], dict[str, str]],
    uri: str,
) -> dict[str, SqlTable]:
    """Both tables of ``src`` as the catalog describes them; a missing one is an error.

    ``types_of(table, schema)`` reads a table's columns and catalog types. A
    missing table raises :class:`SourceError` naming it; a missing required
    column raises :class:`SourceSchemaError`, as the polars reader would.
    """
    described: dict[str, SqlTable] = {}
    for role, name in src.relations().items():
        db, table = _split_name(source, role, name)
        shown = getattr(src, role)  # the table or the files, as the config names them
        try:
            types = types_of(table, db)
        except _NoSuchTableError:
            raise SourceError(
                f"source {source!r}: table {shown!r} (the {role} table) does not exist"
            ) from None
        except Exception as exc:  # the drivers raise many types; say which, never the URI
            raise SourceError(
                f"source {source!r}: cannot read table {shown!r} (the {role} table): "
                f"{why(exc, uri)}"
            ) from None
        columns: dict[str, str | None] = {}
        for column, dtype in schema.TABLES[role].items():
            mapped = src.columns.get(column, column)
            if mapped in types:
                columns[column] = mapped
            elif column in schema.OPTIONAL_COLUMNS[role]:
                columns[column] = None
            else:
                via = f" (mapped from {mapped!r})" if mapped != column else ""
                raise SourceSchemaError(
                    source, role, column + via, str(dtype),
                    f"no such column; has: {', '.join(types)}",
                )  # fmt: skip
        if role == "assignments":
            taken = set(columns) | {s for s in columns.values() if s}
            columns |= {c: c for c in types if c not in taken}
        described[role] = SqlTable(role, db, table, columns, types)
    return described


def check_source(source: str, src: SqlSource | DuckDBSource) -> dict[str, SqlTable]:
    """Connect and describe both tables: an unset variable, an unreachable database,
    a missing table or a missing column is a :class:`SourceError` naming the source."""
    return dict(Database.open(source, src).tables)
