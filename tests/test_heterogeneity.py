"""Reference-value tests of ``analysis.stats.heterogeneity``.

Expected values come from:

* statsmodels' ``statsmodels.stats.meta_analysis.combine_effects`` (``q``,
  ``i2``, ``mean_effect_fe``, ``sd_eff_w_fe``, ``test_homogeneity()``) to 1e-9.
  One documented difference: statsmodels reports ``i2 = 1 - df / Q``
  unclipped (negative when Q < df, -inf when Q = 0); Higgins & Thompson
  (2002) define I^2 = max(0, ...), which we follow and compare against;
* a hand computation with the chi-square closed form for 2 df,
  ``P(chi^2_2 >= x) = exp(-x / 2)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.meta_analysis import combine_effects

from analysis.stats.heterogeneity import HeterogeneityResult, cochran_q


def test_hand_example() -> None:
    # e = (1, 2, 4), v = (1, 1, 0.5): w = (1, 1, 2), sum w = 4,
    # e_bar = (1 + 2 + 8) / 4 = 2.75, Q = 1.75^2 + 0.75^2 + 2 * 1.25^2 = 6.75, df = 2,
    # p = exp(-6.75 / 2) = exp(-3.375), I^2 = (6.75 - 2) / 6.75 = 19/27, Var(e_bar) = 1/4.
    res = cochran_q([1.0, 2.0, 4.0], [1.0, 1.0, 0.5])
    assert res == HeterogeneityResult(
        q=pytest.approx(6.75, rel=1e-12),  # type: ignore[arg-type]
        df=2,
        p_value=pytest.approx(math.exp(-3.375), rel=1e-12),  # type: ignore[arg-type]
        i2=pytest.approx(19 / 27, rel=1e-12),  # type: ignore[arg-type]
        pooled=pytest.approx(2.75, rel=1e-12),  # type: ignore[arg-type]
        pooled_variance=pytest.approx(0.25, rel=1e-12),  # type: ignore[arg-type]
        k=3,
        excluded=0,
        note=None,
    )


@pytest.mark.parametrize("k", [2, 3, 5, 12])
@pytest.mark.parametrize("spread", [0.0, 0.02, 0.1])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_statsmodels_combine_effects(seed: int, spread: float, k: int) -> None:
    # Segment lifts around 5 % with segment sizes from 50 to 5000 units.
    rng = np.random.default_rng(seed)
    variances = 0.04 / rng.integers(50, 5000, size=k)
    estimates = 0.05 + rng.normal(0.0, spread, size=k) + rng.normal(0.0, np.sqrt(variances))
    res = cochran_q(estimates.tolist(), variances.tolist())
    sm = combine_effects(estimates, variances)
    homogeneity = sm.test_homogeneity()
    assert res.q == pytest.approx(sm.q, rel=1e-9)
    assert res.q == pytest.approx(homogeneity.statistic, rel=1e-9)
    assert res.df == homogeneity.df == k - 1
    assert res.p_value == pytest.approx(homogeneity.pvalue, rel=1e-9)
    assert res.i2 == pytest.approx(max(0.0, sm.i2), rel=1e-9, abs=1e-15)
    assert res.pooled == pytest.approx(sm.mean_effect_fe, rel=1e-9)
    assert res.pooled_variance == pytest.approx(sm.sd_eff_w_fe**2, rel=1e-9)
    assert (res.k, res.excluded, res.note) == (k, 0, None)


def test_identical_estimates_give_q_zero() -> None:
    # Q = 0, p = 1, I^2 = 0 (statsmodels: i2 = -inf here).
    res = cochran_q([0.1, 0.1, 0.1], [0.01, 0.02, 0.03])
    assert res.q == 0.0
    assert res.p_value == 1.0
    assert res.i2 == 0.0


def test_i2_is_clipped_at_zero() -> None:
    # Q = 0.0818 < df = 2: (Q - df) / Q < 0, reported as 0.
    res = cochran_q([1.0, 1.1, 0.9], [0.1, 0.2, 0.3])
    assert res.q is not None
    assert res.q < 2
    assert res.i2 == 0.0


def test_undefined_segments_are_left_out_and_counted() -> None:
    full = cochran_q([1.0, 2.0, 4.0], [1.0, 1.0, 0.5])
    res = cochran_q(
        [1.0, None, 2.0, math.nan, 4.0, 3.0, 5.0],
        [1.0, 0.1, 1.0, 0.1, 0.5, 0.0, None],
    )
    assert res.q == pytest.approx(full.q, rel=1e-12)
    assert res.p_value == pytest.approx(full.p_value, rel=1e-12)
    assert (res.k, res.excluded) == (3, 4)
    assert res.note is not None
    assert "4 segment(s)" in res.note


@pytest.mark.parametrize(
    ("estimates", "variances"),
    [([], []), ([0.1], [0.01]), ([0.1, None], [0.01, 0.02]), ([0.1, 0.2], [0.01, 0.0])],
)
def test_fewer_than_two_segments_gives_none(
    estimates: list[float | None], variances: list[float | None]
) -> None:
    res = cochran_q(estimates, variances)
    assert res.q is None
    assert res.p_value is None
    assert res.i2 is None
    assert res.note is not None
    assert "fewer than 2" in res.note


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="variances"):
        cochran_q([0.1, 0.2], [0.01])


finite = st.floats(min_value=-10, max_value=10, allow_nan=False)
positive = st.floats(min_value=1e-4, max_value=10, allow_nan=False)


@given(st.lists(st.tuples(finite, positive), min_size=2, max_size=10), st.floats(0.1, 10))
def test_q_is_invariant_to_order_shift_and_scale(
    pairs: list[tuple[float, float]], c: float
) -> None:
    # Q depends on the estimates only through their weighted deviations: reversing
    # the order, shifting every estimate, or scaling estimates by c and variances
    # by c^2 leaves it unchanged.
    e, v = [p[0] for p in pairs], [p[1] for p in pairs]
    base = cochran_q(e, v)
    assert base.q is not None
    expected = pytest.approx(base.q, rel=1e-9, abs=1e-9)
    assert cochran_q(e[::-1], v[::-1]).q == expected
    assert cochran_q([x + 3.0 for x in e], v).q == expected
    assert cochran_q([c * x for x in e], [c * c * y for y in v]).q == expected
