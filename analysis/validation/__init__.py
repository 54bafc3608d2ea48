"""Validate the input tables with Great Expectations before any statistic.

The suites are data, versioned in ``expectations/<table>.json`` in GX's own
serialised form and filled in for each experiment by :mod:`analysis.suites`;
each expectation carries ``meta.severity``: ``critical`` failures stop the run
before statistics, ``warning`` failures are reported. Rows that break a
row-level rule are quarantined by :mod:`analysis.quarantine`, from the same
suite files; this package reports what GX found.

GX has no polars engine: :class:`~analysis.validation.gx.GxBatchValidator` is
the one place where a polars frame becomes a pandas frame — only the columns
the suite names, one bounded batch at a time (events per day partition,
:mod:`analysis.partitions`; other tables in hash chunks of at most
``max_batch_rows`` rows). Suites are loaded into an ephemeral context and
never saved.

Entry points, all pure functions of their inputs (no Prefect):

- :func:`analysis.validation.experiment.check_experiment`: the quarantine
  split and the validation of one run, reading the tables once.
- :func:`analysis.validation.experiment.validate_experiment`: assignments and
  events of one experiment, events per cached day partition; the cross-table
  checks Proof evaluates itself.
- :func:`analysis.validation.tables.validate_unit_metrics`: the per-unit metric table.
- :func:`analysis.validation.tables.validate_tables`: the tables as given,
  without partitions or cache.
- :func:`analysis.validation_report.format_summary`: the printable text of a
  summary (``proof validate``).
"""
