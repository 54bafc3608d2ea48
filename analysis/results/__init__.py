"""``results.json`` (schema_version 1): the typed results of a run, built and serialised.

The contract's fields, plus documented extensions (docs/contract.md):
``generated_at``, ``experiment`` (the config that was analysed), per
comparison ``label``, ``role``, ``df``, ``note`` and ``verdict_basis``, and
``descriptive`` for AI-only metrics with a single AI arm. NaN never appears:
undefined numbers are null with a ``note``/``reason`` saying why.

- :mod:`analysis.results.model` and :mod:`analysis.results.records`: the
  pydantic models (:class:`Results` and the records inside it);
- :mod:`analysis.results.build`: :func:`build_results`, from the statistics;
- :func:`to_json` writes the published text, :meth:`Results.from_json` reads it.
"""

from analysis.results.build import build_results
from analysis.results.comparison import comparison_record
from analysis.results.model import SCHEMA_VERSION, Results, to_json
from analysis.results.records import ComparisonRecord

__all__ = [
    "SCHEMA_VERSION",
    "ComparisonRecord",
    "Results",
    "build_results",
    "comparison_record",
    "to_json",
]
