"""The SQL wing: Proof's checks and reads inside a database, for ``sql`` and ``duckdb`` sources.

The polars path (:mod:`analysis.validation`, :mod:`analysis.quarantine`) reads
every row of an experiment into polars and hands pandas copies to GX. These
modules run the same suites where the data lives, each with one job:

- :mod:`analysis.sql.database`: the :class:`~analysis.sql.database.Database`
  handle. ``Database.open`` connects once and describes both tables once; a
  run passes that one handle to everything below;
- :mod:`analysis.sql.rows`: the experiment's rows as queries, and their counts;
- :mod:`analysis.sql.rules`: the suites' row-level rules as SQL predicates;
- :mod:`analysis.sql.quarantine`: every row labelled with its quarantine
  reason, the quarantined rows read back, and the rows a run uses;
- :mod:`analysis.sql.gx`: the GX suites run by GX's SQL engine;
- :mod:`analysis.sql.expressions`: the sqlglot builders they share.

The measurement runs there too (the database engine,
:mod:`analysis.engines.database`): :mod:`analysis.sql.aggregate`
(``measure_in_database``, ``compile_queries``) plans and runs the queries of
:mod:`~analysis.sql.aggregate_plan` (units, deduplicated events, each unit's
window), :mod:`~analysis.sql.aggregate_units` (per-unit aggregates, the unit
table, winsorising, moments), :mod:`~analysis.sql.aggregate_quantiles`
(polars' linear quantile), :mod:`~analysis.sql.aggregate_timeline` and
:mod:`~analysis.sql.aggregate_descriptives`, and
:mod:`~analysis.sql.aggregate_read` reads their few rows back.

Every identifier is quoted and every literal built by sqlglot: no input is
pasted into SQL text. Errors name the source and never the URI's credentials.
"""
