"""GX's Spark engine on the run's Spark session: the twin of ``GxSql``.

The suites' expectations run as they do on a SQL database (the same
translations, :mod:`analysis.sql.gx`), each over a dataframe of the run's
session: the query :func:`~analysis.sql.gx.validate_sql` asks for, which reads
the quarantine's cached tables. Spark computes every metric; only counts and a
few example rows come back. Type checks compare the catalog types the run
described (:data:`~analysis.sql.spark.SPARK_TYPES`): no table asset is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analysis.partitions.batches import BatchOutcome
from analysis.sql.database import Database
from analysis.sql.gx_context import quiet_context, validate_batch
from analysis.suites.load import Expectation

__all__ = ["GxSpark"]


@dataclass(frozen=True)
class _Frame:
    """A query asset: GX's dataframe asset and the dataframe it validates."""

    asset: Any
    frame: Any


class GxSpark:
    """One ephemeral GX context with a Spark data source on the run's session.

    ``rows`` and ``catalog`` are the context itself, as :class:`GxSql`'s two data
    sources are for :mod:`analysis.sql.gx`.
    """

    def __init__(self, db: Database) -> None:
        if db.share is None:
            raise ValueError(f"source {db.source!r}: GX on Spark needs the run's session")
        self.session = db.share()
        self.context = quiet_context()
        self.source = self.context.data_sources.add_spark(f"proof_{db.source}_spark")
        self.rows = self.catalog = self
        self._frames: list[Any] = []

    def add_query_asset(self, name: str, *, query: str) -> _Frame:
        frame = self.session.sql(query).cache()  # each metric reads it again
        self._frames.append(frame)
        return _Frame(self.source.add_dataframe_asset(name), frame)

    def add_table_asset(self, name: str, **_: Any) -> _Frame:
        raise NotImplementedError("type checks on Spark compare the described catalog types")

    def validate(
        self,
        asset: _Frame,
        expectations: Sequence[Expectation],
        index: Sequence[str],
        aliases: Mapping[str, str] | None = None,
    ) -> list[BatchOutcome]:
        definition = asset.asset.add_batch_definition_whole_dataframe("batch")
        return validate_batch(definition, {"dataframe": asset.frame}, expectations, index, aliases)

    def close(self) -> None:
        while self._frames:
            self._frames.pop().unpersist()
