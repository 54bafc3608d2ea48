"""The polars engine's expressions for the statistics: moments and winsorising caps.

The moments' one-row results are read by :func:`analysis.aggregates.moments_from_row`
and :func:`analysis.joint.joint_moments_from_row`; the caps are those of
:func:`analysis.stats.winsorize.winsorize_caps`. The statistics themselves
import no dataframe library; the database engine builds the same sums as SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from analysis.stats.winsorize import Tails, check_percentile


def moment_exprs(x: pl.Expr, y: pl.Expr | None = None, prefix: str = "") -> list[pl.Expr]:
    """Polars aggregations whose one-row result :func:`moments_from_row` reads.

    Counts are cast to Float64 first: polars' default ``pl.len()`` is UInt32 and
    squares of integer columns can overflow silently.

    A unit enters only with a complete pair: a row whose ``x`` or ``y`` is null
    is left out of every moment, so that ``n``, the means and the cross sum all
    describe the same set of units.
    """
    if y is None:
        xf = x.cast(pl.Float64).drop_nulls()
        return [
            xf.count().cast(pl.Int64).alias(prefix + "n"),
            xf.mean().alias(prefix + "mean_x"),
            pl.lit(1.0).alias(prefix + "mean_y"),
            ((xf - xf.mean()) ** 2).sum().alias(prefix + "m2_x"),
            pl.lit(0.0).alias(prefix + "m2_y"),
            pl.lit(0.0).alias(prefix + "c_xy"),
        ]
    complete = x.is_not_null() & y.is_not_null()
    xf = x.cast(pl.Float64).filter(complete)
    yf = y.cast(pl.Float64).filter(complete)
    return [
        xf.count().cast(pl.Int64).alias(prefix + "n"),
        xf.mean().alias(prefix + "mean_x"),
        yf.mean().alias(prefix + "mean_y"),
        ((xf - xf.mean()) ** 2).sum().alias(prefix + "m2_x"),
        ((yf - yf.mean()) ** 2).sum().alias(prefix + "m2_y"),
        ((xf - xf.mean()) * (yf - yf.mean())).sum().alias(prefix + "c_xy"),
    ]


def joint_moment_exprs(columns: Sequence[str], prefix: str = "") -> list[pl.Expr]:
    """Polars aggregations whose one-row result :func:`joint_moments_from_row` reads.

    Usable in ``select(...)`` or ``group_by(...).agg(...)``.  Values are cast to
    Float64 first (integer squares can overflow silently).  A unit enters only
    with all k values present: a row with a null in any of ``columns`` is left
    out of every moment, so ``n``, the means and every co-moment describe the
    same set of units.  Output columns: ``{prefix}n``, ``{prefix}mean_{i}`` and
    ``{prefix}c_{i}_{j}`` for ``i <= j``.
    """
    complete = pl.all_horizontal([pl.col(c).is_not_null() for c in columns])
    vals = [pl.col(c).cast(pl.Float64).filter(complete) for c in columns]
    devs = [v - v.mean() for v in vals]
    exprs = [complete.sum().cast(pl.Int64).alias(f"{prefix}n")]
    exprs += [v.mean().alias(f"{prefix}mean_{i}") for i, v in enumerate(vals)]
    exprs += [
        (devs[i] * devs[j]).sum().alias(f"{prefix}c_{i}_{j}")
        for i in range(len(columns))
        for j in range(i, len(columns))
    ]
    return exprs


def winsorize_caps_exprs(
    col: str, percentile: float, tails: Tails = "both"
) -> tuple[pl.Expr, pl.Expr]:
    """Polars aggregations ``(low, high)`` of the same caps, for a lazy pooled frame.

    Evaluate them with ``select`` over the rows of every arm; nulls and NaNs
    are dropped first, as in :func:`winsorize_caps`. For ``tails="upper"``
    the low expression is the literal ``-inf``. An empty column gives nulls
    (read them as "no capping").

    Raises:
        ValueError: percentile outside (0.5, 1), or an unknown ``tails``.
    """
    check_percentile(percentile, tails)
    x = pl.col(col).cast(pl.Float64)
    finite = x.filter(x.is_finite())
    high = finite.quantile(percentile, interpolation="linear").alias(f"{col}_cap_high")
    if tails == "upper":
        return (pl.lit(-math.inf).alias(f"{col}_cap_low"), high)
    low = (-(-finite).quantile(percentile, interpolation="linear")).alias(f"{col}_cap_low")
    return (low, high)


def winsorize_expr(col: str, low: float, high: float) -> pl.Expr:
    """The column clipped to ``[low, high]`` (keeps its name; nulls stay null).

    Raises:
        ValueError: ``low > high``.
    """
    if low > high:
        msg = f"the low cap {low!r} is above the high cap {high!r}"
        raise ValueError(msg)
    return pl.col(col).clip(low, high)
