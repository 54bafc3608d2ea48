"""GX's SQL engine on a source's database: one ephemeral context per validation.

:class:`GxSql` holds the context and its two data sources (rows, materialised
once; the catalog, for column types) and validates a list of
:class:`~analysis.suites.load.Expectation` on an asset;
:func:`buffered_results` works around DuckDB's lazily read results.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy.pool import StaticPool

from analysis.partitions.batches import MAX_EXAMPLES, BatchOutcome
from analysis.sources.connect import without_nested_loops
from analysis.sources.errors import SourceError
from analysis.sql.database import Database, why
from analysis.suites.load import Expectation
from analysis.validation.gx import batch_outcome

if TYPE_CHECKING:
    from analysis.sql.gx_spark import GxSpark

__all__ = ["GxSql", "buffered_results", "gx_session", "quiet_context", "validate_batch"]

_QUIET_LOGGERS = ("great_expectations", "great_expectations.data_context.types.base")


@contextmanager
def buffered_results() -> Iterator[None]:
    """GX's SQL engine reading every result before it gives its connection back.

    ``SqlAlchemyExecutionEngine.execute_query`` returns the cursor after the
    ``with`` block has returned the connection to the pool; PostgreSQL's
    driver has the rows already, DuckDB's reads them lazily and finds the
    result gone, so every metric came back empty and every check silently
    passed or failed. Buffering (``Result.freeze``) inside the block fixes
    it. Patched only while a DuckDB validation runs (the flows hold one GX
    lock), and only if GX still has the method.
    """
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    cls = engine.SqlAlchemyExecutionEngine
    original = getattr(cls, "execute_query", None)
    if original is None:
        yield
        return

    def execute_query(self: Any, query: Any) -> Any:
        with self.get_connection() as connection:
            result = self._execute_query_with_recovery(connection, query)
            return result.freeze()() if result.returns_rows else result

    setattr(cls, "execute_query", execute_query)  # noqa: B010 (a method, on purpose)
    try:
        yield
    finally:
        setattr(cls, "execute_query", original)  # noqa: B010


def quiet_context() -> Any:
    """An ephemeral GX context without progress bars or INFO logs."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


class GxSql:
    """One ephemeral GX context with two data sources on the database.

    ``rows`` materialises a query asset once into a temporary table
    (``create_temp_table``): GX otherwise runs the query again for every metric,
    and reads all of its rows to learn the column names. ``catalog`` reads base
    tables' column types and never copies them.

    Where ``db`` carries a run's DuckDB connection (:attr:`Database.share`), GX
    uses it instead of opening its own, and so reads the temporary tables the
    run keeps on it.
    """

    def __init__(self, db: Database, *, temp_table: bool = True) -> None:
        self.context = quiet_context()
        sources = self.context.data_sources
        shared = db.share
        if db.dialect == "duckdb":
            # create_engine's; one connection, whatever GX asks of its pool, if shared
            kwargs: dict[str, Any] = (
                db.engine_args() if shared is None else {"creator": shared, "poolclass": StaticPool}
            )
            add_sql: Any = sources.add_sql  # its stub omits ``kwargs``
            self.rows = add_sql(
                f"proof_{db.source}_rows", connection_string=db.url,
                create_temp_table=temp_table, kwargs=kwargs,
            )  # fmt: skip
            self.catalog = add_sql(
                f"proof_{db.source}_catalog", connection_string=db.url,
                create_temp_table=False, kwargs=kwargs,
            )  # fmt: skip
            return
        # The per-unit table's query joins the quarantine's labelled rows, whose
        # size PostgreSQL misjudges: plan it without nested loops, as the aggregation is.
        self.rows = sources.add_postgres(
            f"proof_{db.source}_rows", connection_string=without_nested_loops(db.url),
            create_temp_table=temp_table,
        )  # fmt: skip
        self.catalog = sources.add_postgres(
            f"proof_{db.source}_catalog", connection_string=db.url, create_temp_table=False
        )

    def close(self) -> None:
        """Close GX's pooled connections (its temporary tables go with them)."""
        for source in (self.rows, self.catalog):
            source.get_execution_engine().close()
            source.get_engine().dispose()

    def validate(
        self,
        asset: Any,
        expectations: Sequence[Expectation],
        index: Sequence[str],
        aliases: Mapping[str, str] | None = None,
    ) -> list[BatchOutcome]:
        # One batch per validation: Batch.validate would load (and materialise) it twice.
        definition = asset.add_batch_definition_whole_table("batch")
        return validate_batch(definition, None, expectations, index, aliases)


def validate_batch(
    definition: Any,
    parameters: Mapping[str, Any] | None,
    expectations: Sequence[Expectation],
    index: Sequence[str],
    aliases: Mapping[str, str] | None = None,
) -> list[BatchOutcome]:
    """``expectations`` on one batch (``definition``, with its batch ``parameters``)."""
    if not expectations:
        return []
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.validator.v1_validator import Validator

    suite = ExpectationSuite(
        name=f"proof_{definition.data_asset.name}",
        expectations=[ExpectationConfiguration(**e.gx_config()) for e in expectations],
    )
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": MAX_EXAMPLES,
    }
    if index:
        result_format["unexpected_index_column_names"] = list(index)
    validator = Validator(
        batch_definition=definition,
        batch_parameters=dict(parameters) if parameters is not None else None,
        result_format=result_format,
    )
    result = validator.validate_expectation_suite(suite)
    return [batch_outcome(r, index, None, aliases) for r in result.results if r.expectation_config]


@contextmanager
def gx_session(db: Database, *, temp_table: bool = True) -> Iterator[GxSql | GxSpark]:
    """A :class:`GxSql` on ``db``, closed after use; a failure becomes a
    :class:`SourceError` that names the source, never its URI."""
    try:
        with warnings.catch_warnings():
            # GX and its dependencies emit deprecation noise on import and use.
            warnings.simplefilter("ignore")
            with buffered_results() if db.dialect == "duckdb" else nullcontext():
                gx: GxSql | GxSpark
                if db.dialect == "spark":
                    from analysis.sql.gx_spark import GxSpark

                    gx = GxSpark(db)
                else:
                    gx = GxSql(db, temp_table=temp_table)
                try:
                    yield gx
                finally:
                    gx.close()
    except SourceError:
        raise
    except Exception as exc:  # GX wraps driver errors in many types; never show the URI
        raise SourceError(
            f"source {db.source!r}: validation inside the database failed ({why(exc, db.uri)})"
        ) from None
