"""Does the treatment effect differ between segments? Cochran's Q test.

Given the effect estimated in each of k disjoint segments (the values of one
dimension: platform, plan, ...) with its variance, the fixed-effect
homogeneity test of Cochran (1954), "The combination of estimates from
different experiments", Biometrics 10(1), as in Borenstein et al. (2009),
"Introduction to Meta-Analysis", ch. 16::

    w_i = 1 / v_i,   e_bar = sum w_i e_i / sum w_i,
    Q = sum w_i (e_i - e_bar)^2  ~  chi^2_{k-1} under H0 (one common effect),
    p = P(chi^2_{k-1} >= Q),
    I^2 = max(0, (Q - (k - 1)) / Q)   (Higgins & Thompson 2002, Stat. Med. 21),

identical to ``statsmodels.stats.meta_analysis.combine_effects`` (``q``,
``i2``, ``test_homogeneity()``). The segments must be disjoint sets of units
(one dimension at a time), so that the estimates are independent.

The test is on the scale given: pass lifts to ask "does the relative effect
differ?" (segments with different baselines may differ in absolute effect
with one common lift). Q treats the variances as known; with few units per
segment, or t-based variances, its chi-square reference is approximate, and
its power is low when k is small — a non-significant Q is no proof of a
common effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True, slots=True)
class HeterogeneityResult:
    """Cochran's Q test of one common effect across segments.

    Attributes:
        q: Cochran's Q statistic.
        df: k - 1.
        p_value: ``P(chi^2_df >= q)``.
        i2: share of the variation across segments beyond chance, in [0, 1].
        pooled: the inverse-variance (fixed-effect) mean e_bar.
        pooled_variance: its variance, 1 / sum w_i.
        k: segments that entered the test.
        excluded: segments left out (undefined estimate or variance).
        note: why fields are ``None``, or which segments were left out.
    """

    q: float | None
    df: int | None
    p_value: float | None
    i2: float | None
    pooled: float | None
    pooled_variance: float | None
    k: int
    excluded: int
    note: str | None = None


def cochran_q(
    estimates: Sequence[float | None],
    variances: Sequence[float | None],
) -> HeterogeneityResult:
    """Cochran's Q, its chi-square p-value and I^2 (formulas in the module docstring).

    A segment enters only with a finite estimate and a finite variance > 0;
    the others are counted in ``excluded`` (a zero variance would get an
    infinite weight). Fewer than two segments left: no test, a note says why.

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(estimates) != len(variances):
        msg = f"{len(estimates)} estimates but {len(variances)} variances"
        raise ValueError(msg)
    pairs = [
        (e, v)
        for e, v in zip(estimates, variances, strict=True)
        if e is not None and v is not None and math.isfinite(e) and math.isfinite(v) and v > 0
    ]
    k = len(pairs)
    excluded = len(estimates) - k
    skipped = (
        f"{excluded} segment(s) without a defined estimate and variance left out"
        if excluded
        else None
    )
    if k < 2:
        note = f"fewer than 2 segments with a defined estimate ({k})"
        return HeterogeneityResult(None, None, None, None, None, None, k, excluded, note)
    weights = [1.0 / v for _, v in pairs]
    total = math.fsum(weights)
    pooled = math.fsum(w * e for w, (e, _) in zip(weights, pairs, strict=True)) / total
    q = math.fsum(w * (e - pooled) ** 2 for w, (e, _) in zip(weights, pairs, strict=True))
    df = k - 1
    p_value = float(stats.chi2.sf(q, df))
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return HeterogeneityResult(q, df, p_value, i2, pooled, 1.0 / total, k, excluded, skipped)
