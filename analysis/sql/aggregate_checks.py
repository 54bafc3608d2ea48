"""The per-unit metric table and its expected size, as SQL, for its GX checks.

The polars engine validates its unit table (:func:`analysis.metrics.unit_table`)
against ``expectations/unit_metrics.json`` before winsorising. The database
engine runs the same suite inside the database on :func:`unit_metrics_query`
(:func:`analysis.sql.gx.validate_unit_metrics_sql`): the unit table of
:func:`analysis.sql.aggregate_units.unit_table` under the polars engine's column
names (``m__num``, ``m__den``, ``m``, and ``__pre`` for the pre-period), or of
the table that keeps it (``Scope.units``), so the
suite's column lists (:func:`analysis.suites.params.unit_metric_params`) apply
unchanged. The units it must hold are counted by the cleaning query
(:func:`analysis.sql.aggregate_plan.cleaning_counts`, part 2), from the
assignments rather than from the table itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp

from analysis.config.experiments import Metric
from analysis.sql.aggregate_plan import Scope
from analysis.sql.aggregate_units import metric_columns, unit_rows
from analysis.sql.expressions import column, named, ref, with_ctes

__all__ = ["unit_metrics_query"]


def unit_metrics_query(s: Scope, metrics: Sequence[Metric]) -> exp.Query:
    """One row per analysed unit: ``unit_id``, ``variant`` and the metric columns,
    before winsorising (as the polars engine checks them), as ``SELECT * FROM (…)``."""
    with_pre = s.window.pre_days > 0
    out: list[exp.Expr] = [column("unit_id"), column("variant")]
    for cols in metric_columns(metrics):
        m = cols.metric
        if cols.y is not None and cols.y_pre is not None:
            pairs = [(cols.x, f"{m.name}__num"), (cols.y, f"{m.name}__den")]
            pre = [(cols.x_pre, f"{m.name}__num__pre"), (cols.y_pre, f"{m.name}__den__pre")]
        else:
            pairs, pre = [(cols.x, m.name)], [(cols.x_pre, f"{m.name}__pre")]
        out += [named(column(internal), name) for internal, name in pairs]
        if with_pre:
            out += [named(column(internal), name) for internal, name in pre]
    if s.units is not None:  # kept once per run: only the names change
        query = sqlglot.select(*out).from_(s.units)
    else:
        query = with_ctes(sqlglot.select(*out).from_(ref("unit_rows")), unit_rows(s, metrics))
    # A plain SELECT outside: GX takes no query that starts with WITH.
    return sqlglot.select(exp.Star()).from_(query.subquery("unit_metrics"))
