"""Winsorisation of values at a percentile computed on the pooled arms.

A few heavy users (thousands of tasks, huge AI costs) can dominate a mean and
its variance. Winsorising replaces every value above the ``p`` quantile by
that quantile (and, two-sided, every value below the ``1 - p`` quantile by
that one) — "capping" in Kohavi, Tang & Xu (2020), ch. 18 (improving
sensitivity); the name is Dixon's (1960) and Tukey's (1962), after C. P. Winsor.

The caps are computed once on the **pooled** arms and applied to every arm:
caps per arm would clip the arms differently and bias the comparison (a
treatment that creates heavy users would be cut back more than the control).
The estimand changes to the mean of the capped metric; report that.

What the values are is the caller's choice (docs/statistics.md,
"Winsorisation"): per-unit values of mean metrics
(:func:`analysis.pipeline.winsorize_table`), and the event values of ratio
numerators that add up values, capped before the unit's sum
(:func:`analysis.metrics.capped_numerators`). Per-unit sums of a ratio's
numerator are never capped: a pooled cap on them clips units for having
many events, not extreme values, and biases a treatment that brings more
events.

Quantile definition: the linear-interpolation quantile (Hyndman & Fan 1996
type 7), ``numpy.quantile(method="linear")`` — the contract's quantile
convention. ``scipy.stats.mstats.winsorize(limits=(1 - p, 1 - p))`` instead
caps at order statistics chosen by count: with ``g = floor(n (1 - p))`` the
g lowest values become the (g+1)-th smallest and the g highest the
(g+1)-th largest. Our quantile sits at 0-based position ``(n - 1) p``, so
the two agree when ``(n - 1)(1 - p)`` is a whole number equal to g (e.g.
n = 101, p = 0.99: both cap at the 2nd smallest and 2nd largest values);
otherwise ours interpolates between neighbouring order statistics (n = 100,
p = 0.99: ours caps at X_(98) + 0.01 (X_(99) - X_(98)) in 0-based order,
scipy at X_(98)). Polars' ``quantile`` defaults to ``nearest``: the
expressions here ask for ``linear`` explicitly.

Nulls and NaNs are ignored when computing caps (a unit without a value has
nothing to cap) and pass through ``clip`` unchanged.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

Tails = Literal["both", "upper"]


def check_percentile(percentile: float, tails: str = "both") -> None:
    """Refuse a percentile outside (0.5, 1) or an unknown ``tails``, saying what is allowed."""
    if not 0.5 < percentile < 1.0:
        msg = f"the winsorising percentile must lie in (0.5, 1), e.g. 0.99; got {percentile!r}"
        raise ValueError(msg)
    if tails not in ("both", "upper"):
        msg = f"tails must be 'both' or 'upper', got {tails!r}"
        raise ValueError(msg)


def winsorize_caps(
    values: npt.ArrayLike,
    percentile: float,
    tails: Tails = "both",
) -> tuple[float, float]:
    """The caps ``(low, high)`` for winsorising at ``percentile`` (module docstring).

    ``high = Q(percentile)``, ``low = Q(1 - percentile)`` for ``tails="both"``
    and ``-inf`` for ``tails="upper"`` (metrics whose low tail is a floor,
    like counts and costs), with Q the linear-interpolation quantile of the
    finite values. Pass the values of all arms together (pooled).

    The low cap is computed as ``-Q_p(-x)``, equal to ``Q_{1-p}(x)`` in exact
    arithmetic: ``1 - p`` itself is not exact in floating point (1 - 0.99 =
    0.010000000000000009), which would move the position ``(n - 1)(1 - p)``
    off a whole number and interpolate where an order statistic is meant.

    No finite value at all: ``(-inf, inf)``, so capping is a no-op.

    Raises:
        ValueError: percentile outside (0.5, 1), or an unknown ``tails``.
    """
    check_percentile(percentile, tails)
    arr = np.asarray(values, dtype=np.float64)  # a polars Series' nulls become NaN
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return (-math.inf, math.inf)
    high = float(np.quantile(arr, percentile, method="linear"))
    if tails == "upper":
        return (-math.inf, high)
    return (-float(np.quantile(-arr, percentile, method="linear")), high)
