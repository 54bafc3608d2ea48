"""Multiple-comparison corrections of p-values.

* Holm (1979): step-down Bonferroni, controls the family-wise error rate;
  identical to ``statsmodels.stats.multitest.multipletests(method="holm")``.
"""

from __future__ import annotations

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
