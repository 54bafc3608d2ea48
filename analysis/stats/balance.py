"""Pre-exposure bias check: were the arms alike before the experiment began?

Randomisation makes the arms' *pre-period* values of every metric (events in
``[assigned_at - pre_window, assigned_at)``) differ by chance only. A real
difference points at broken assignment, a leaky pre-period window or a
carry-over from an earlier experiment (Kohavi, Tang & Xu 2020, ch. 21,
"Sample Ratio Mismatch and Other Trust-Related Guardrail Metrics").

The pre-period comparison of each metric (the same two-sided test as the
metric's main comparison) gives one p-value per metric; these are
Bonferroni-adjusted across the m metrics that have one, ``min(1, m p)``
(identical to ``statsmodels.stats.multitest.multipletests(method="bonferroni")``),
and a metric is flagged when its adjusted p-value is below the threshold
(default 0.001, the convention of the sample-ratio-mismatch check).
Bonferroni rather than Holm: for the most extreme metric the two adjustments
are equal, so they agree on whether anything is flagged; Holm could flag
further metrics only once one already is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

BALANCE_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class BalanceResult:
    """Bonferroni-adjusted pre-period p-values and the metrics they flag.

    Attributes:
        adjusted: metric -> adjusted p-value, ``None`` for a metric without a
            pre-period test (in the input order).
        flagged: metrics with adjusted p-value below ``threshold`` (input order).
        tested: how many metrics had a p-value (the Bonferroni m).
        threshold: the flagging threshold on the adjusted p-values.
        note: which metrics could not be checked, or ``None``.
    """

    adjusted: dict[str, float | None]
    flagged: list[str]
    tested: int
    threshold: float
    note: str | None = None


def pre_exposure_check(
    p_values: Mapping[str, float | None],
    threshold: float = BALANCE_THRESHOLD,
) -> BalanceResult:
    """Bonferroni-adjust the pre-period p-values and flag those below ``threshold``.

    ``p_values`` maps each metric to the two-sided p-value of its pre-period
    comparison between the arms, or ``None`` (or NaN) when there is none (no
    pre-period data, an undefined test); those are left out of m and listed
    in ``note``.

    Raises:
        ValueError: a p-value outside [0, 1], or a threshold outside (0, 1).
    """
    if not 0.0 < threshold < 1.0:
        msg = f"threshold must lie in (0, 1), got {threshold!r}"
        raise ValueError(msg)
    defined: dict[str, float] = {}
    for metric, p in p_values.items():
        if p is None or math.isnan(p):
            continue
        if not 0.0 <= p <= 1.0:
            msg = f"the pre-period p-value of {metric!r} must lie in [0, 1], got {p!r}"
            raise ValueError(msg)
        defined[metric] = p
    m = len(defined)
    adjusted: dict[str, float | None] = {
        metric: (min(1.0, m * defined[metric]) if metric in defined else None)
        for metric in p_values
    }
    flagged = [metric for metric, a in adjusted.items() if a is not None and a < threshold]
    missing = [metric for metric in p_values if metric not in defined]
    note = "no pre-period test for: " + ", ".join(missing) if missing else None
    return BalanceResult(adjusted, flagged, m, threshold, note)
