"""Multiple-comparison corrections of p-values.

* Holm (1979): step-down Bonferroni, controls the family-wise error rate;
  identical to ``statsmodels.stats.multitest.multipletests(method="holm")``.
* Benjamini-Hochberg (1995): step-up procedure, controls the false discovery
  rate for independent or positively dependent tests (Benjamini & Yekutieli
  2001); identical to ``multipletests(method="fdr_bh")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given.

    Sorted ascending p_(1) <= ... <= p_(m); adjusted p_(i) =
    max_{j <= i} min(1, (m - j + 1) p_(j)).
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg_where_tested(p_values: Sequence[float | None]) -> list[float | None]:
    """:func:`benjamini_hochberg` across the p-values given; None stays None (no test)."""
    tested = [i for i, p in enumerate(p_values) if p is not None]
    adjusted = benjamini_hochberg([p for p in p_values if p is not None])
    found: list[float | None] = [None] * len(p_values)
    for i, p in zip(tested, adjusted, strict=True):
        found[i] = p
    return found


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg-adjusted p-values, in the order given.

    Sorted ascending p_(1) <= ... <= p_(m); adjusted p_(i) =
    min_{j >= i} min(1, m p_(j) / j) (Benjamini & Hochberg 1995, "Controlling
    the false discovery rate", JRSS B 57(1), the step-up rule written as
    adjusted p-values, e.g. Wright 1992). Rejecting every hypothesis whose
    adjusted p-value is <= q controls the FDR at q. Matches
    ``statsmodels.stats.multitest.multipletests(method="fdr_bh")[1]``.

    Raises:
        ValueError: a p-value is NaN or outside [0, 1] (its rank would be
            meaningless and would silently change every other adjustment).
    """
    for p in p_values:
        if math.isnan(p) or not 0.0 <= p <= 1.0:
            msg = f"p-values must lie in [0, 1], got {p!r}"
            raise ValueError(msg)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, m * p_values[i] / rank)
        adjusted[i] = running
    return adjusted
