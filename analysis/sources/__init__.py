"""Read an experiment's assignments and events from a source, in the contract's types.

Three kinds of source (contract section 4): an embedded DuckDB file, parquet or
CSV files (paths or globs), and any SQL database polars can read by URI.  Each
returns polars LazyFrames already limited to one experiment — the filter on
``experiment_id`` and the semi-join of events to the experiment's units are
pushed into the database where there is one — and conformed to the contract's
column names and types.  A missing column or a type that cannot be converted
without guessing raises :class:`~analysis.sources.errors.SourceSchemaError`
naming the table, column, expected and found type.

A table that does not exist, an empty CSV file and a database that cannot be
reached each raise :class:`~analysis.sources.errors.SourceError` naming the
source and the table or the cause (never the URI's credentials).
:func:`~analysis.sources.coverage.event_coverage` counts the events whose unit
no assignment row names, for the validation's unassigned-share check.

The queries are sqlglot trees in the source's dialect: every identifier (the
tables, the ``columns:`` mapping) is quoted and escaped, every value a literal,
so nothing in a config is ever pasted into SQL. Failures say whether a retry can
mend them (:func:`~analysis.sources.errors.retryable`): a database that does not
answer or drops the connection may be back in a minute
(:class:`~analysis.sources.errors.SourceUnavailableError`); a login it refuses
or a database it does not have will not
(:class:`~analysis.sources.errors.SourceAccessError`).

One job per module:

- :mod:`analysis.sources.read`: read one experiment's tables from a source;
- :mod:`analysis.sources.conform`: conform a frame to the contract's names and types;
- :mod:`analysis.sources.sql`: the SQL text sent to a source (sqlglot trees);
- :mod:`analysis.sources.connect`: a source's URI and connection, and the
  reachability and login checks made before a driver is called;
- :mod:`analysis.sources.coverage`: the events of units no assignment names;
- :mod:`analysis.sources.errors`: the errors, whether a retry may mend them,
  and messages without credentials.
"""
