"""The expectation suites of ``expectations/*.json``, filled in for one experiment.

A suite is GX's own serialised form (``name``, ``expectations[]`` of ``type``,
``kwargs``, ``meta``), committed with the code and never re-saved by a run.
Experiment-dependent values are placeholders the loader fills from a dict of
run parameters (:func:`~analysis.suites.params.run_params`):

- ``{"$param": "variants"}`` anywhere in ``kwargs`` or ``meta`` is replaced by
  the parameter's value;
- ``"$each": "value_ranges"`` as a key of ``kwargs`` repeats the expectation
  once per item of that list parameter, each item's keys merged into ``kwargs``
  (an empty list drops the expectation).

``meta`` says what a failure means: ``severity`` (``critical`` stops the run
before any statistic, ``warning`` is reported), ``row_level`` (the failing rows
are quarantined with ``reason``), ``critical_share`` (a warning whose failing
share of the rows is above it becomes critical), ``engine: proof`` (a
cross-table check Proof evaluates itself; GX never sees it), ``non_finite``
(the rule that catches a float column's NaN, +inf and -inf values: the other
range and set rules of the column judge only its finite values, and GX's
adapters show them the column with those values as null) and ``explain``
(one sentence for people, with ``{param}`` fields).

This package does not import GX:
:func:`~analysis.suites.conditions.failing_rows` translates the row-level
expectations into polars predicates for the quarantine, so that the suite file
is the one definition of both. One job per module:

- :mod:`analysis.suites.load`: a suite file read and its placeholders filled;
- :mod:`analysis.suites.params`: the parameters of one run of one experiment;
- :mod:`analysis.suites.conditions`: row conditions, and the rows a rule fails.
"""
