"""Sample-ratio mismatch: are the arms as large as the configured traffic shares say?

Pearson's chi-square goodness-of-fit test of the observed units per arm against
the expected counts ``N * share / sum(shares)``, as ``scipy.stats.chisquare``
computes it (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online
Controlled Experiments"). The conventional flag is p < 0.001.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats

SRM_THRESHOLD = 0.001


@dataclass(frozen=True, slots=True)
class SrmResult:
    p_value: float | None
    flagged: bool
    chi2: float | None
    expected: dict[str, float]
    observed: dict[str, int]
    note: str | None = None


def srm_test(
    observed: Mapping[str, int],
    shares: Mapping[str, float],
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """Chi-square test of observed unit counts against the configured shares."""
    total_share = sum(shares.values())
    expected = {arm: share / total_share for arm, share in shares.items()}
    counts = {arm: int(observed.get(arm, 0)) for arm in shares}
    total = sum(counts.values())
    if total == 0:
        return SrmResult(None, False, None, expected, counts, "no units assigned yet")
    if len(counts) < 2:
        # chi-square with 0 degrees of freedom: scipy returns p = NaN.
        return SrmResult(None, False, None, expected, counts, "fewer than 2 arms: nothing to test")
    chi2, p = stats.chisquare(
        [counts[arm] for arm in shares],
        [total * expected[arm] for arm in shares],
    )
    p_value = float(p)
    return SrmResult(p_value, p_value < threshold, float(chi2), expected, counts)
