"""Reference-value tests of ``analysis.stats.multiplicity``.

Expected values come from:

* statsmodels' ``multipletests(method="holm")`` and ``multipletests(method="fdr_bh")``
  (independent implementations, compared to 1e-12);
* hand computations written out in the comments;
* the worked example of Benjamini & Hochberg (1995), section 4 (15 p-values of
  Neuhaus et al.; at q = 0.05 Bonferroni rejects 3 hypotheses, BH rejects 4).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from analysis.stats.multiplicity import benjamini_hochberg, benjamini_hochberg_where_tested, holm

P_LISTS = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40)
# Ties are common in practice (p-values of 1, identical slices): draw from a small set too.
TIED_P_LISTS = st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.04, 0.05, 0.2, 1.0]), min_size=1)


def statsmodels_holm(p: Sequence[float]) -> list[float]:
    """``multipletests(p, method="holm")[1]``, without its ``gc.collect()``.

    statsmodels' Holm branch calls ``gc.collect()`` on every call
    (statsmodels/stats/multitest.py), which takes 0.1-0.3 s with the suite's
    objects on the heap; collecting garbage has no effect on the result.
    """
    with mock.patch("gc.collect", return_value=0):
        return [float(a) for a in multipletests(p, method="holm")[1]]


BH_1995 = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000,
]  # fmt: skip


# --- Benjamini-Hochberg ------------------------------------------------------------------


def test_bh_hand_example() -> None:
    # p = (0.01, 0.04, 0.03, 0.005), m = 4.  Sorted 0.005, 0.01, 0.03, 0.04;
    # m p_(j) / j = 0.02, 0.02, 0.04, 0.04; running minimum from the top:
    # 0.02, 0.02, 0.04, 0.04.  Back in input order: 0.02, 0.04, 0.04, 0.02.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx(
        [0.02, 0.04, 0.04, 0.02], rel=1e-12
    )


def test_bh_paper_example_rejects_four() -> None:
    # Benjamini & Hochberg (1995), sec. 4: at q = 0.05 the step-up rule rejects the
    # four smallest p-values (0.0095 <= 4 * 0.05 / 15, 0.0201 > 5 * 0.05 / 15, ...).
    adjusted = benjamini_hochberg(BH_1995)
    assert sum(a <= 0.05 for a in adjusted) == 4
    assert sum(a <= 0.05 for a in holm(BH_1995)) == 3  # Holm, like Bonferroni here: 3
    assert adjusted == pytest.approx(multipletests(BH_1995, method="fdr_bh")[1], rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [1, 2, 7, 50, 500])
def test_bh_matches_statsmodels(seed: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    # A mix of nulls (uniform) and signals (small p), in random order.
    p = np.concatenate([rng.random(m - m // 3), rng.random(m // 3) * 1e-3])
    rng.shuffle(p)
    expected = multipletests(p, method="fdr_bh")[1]
    assert benjamini_hochberg(p.tolist()) == pytest.approx(expected.tolist(), rel=1e-12)


@given(P_LISTS)
def test_bh_matches_statsmodels_property(p: list[float]) -> None:
    expected = multipletests(p, method="fdr_bh")[1]
    assert benjamini_hochberg(p) == pytest.approx(expected.tolist(), rel=1e-12, abs=1e-300)


@given(TIED_P_LISTS)
def test_bh_matches_statsmodels_with_ties(p: list[float]) -> None:
    expected = multipletests(p, method="fdr_bh")[1]
    assert benjamini_hochberg(p) == pytest.approx(expected.tolist(), rel=1e-12, abs=1e-300)


@given(P_LISTS)
def test_bh_properties(p: list[float]) -> None:
    adjusted = benjamini_hochberg(p)
    # Adjusted p-values are p-values, never smaller than the raw ones ...
    # (m p_(m) / m may round one ulp below p_(m), as in statsmodels.)
    assert all(
        raw <= adj * (1 + 1e-12) and adj <= 1.0 for raw, adj in zip(p, adjusted, strict=True)
    )
    # ... keep the order of the raw ones ...
    order = sorted(range(len(p)), key=lambda i: p[i])
    ranked = [adjusted[i] for i in order]
    assert ranked == sorted(ranked)
    # ... and are never larger than Holm's: (m - i + 1) >= m / i for every rank i.
    assert all(bh <= h * (1 + 1e-12) for bh, h in zip(adjusted, holm(p), strict=True))


@given(P_LISTS, st.randoms(use_true_random=False))
def test_bh_is_permutation_equivariant(p: list[float], rnd: random.Random) -> None:
    perm = list(range(len(p)))
    rnd.shuffle(perm)
    adjusted = benjamini_hochberg(p)
    permuted = benjamini_hochberg([p[i] for i in perm])
    assert permuted == pytest.approx([adjusted[i] for i in perm], rel=1e-12)


def test_bh_edge_cases() -> None:
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.3]) == [0.3]  # m = 1: no adjustment
    assert benjamini_hochberg([0.0, 1.0]) == [0.0, 1.0]


@pytest.mark.parametrize("bad", [math.nan, -0.1, 1.5])
def test_bh_rejects_invalid_p_values(bad: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.01, bad])


# --- Holm --------------------------------------------------------------------------------


def test_holm_hand_example() -> None:
    # p = (0.01, 0.04, 0.03, 0.005), m = 4.  Sorted 0.005, 0.01, 0.03, 0.04;
    # (m - j + 1) p_(j) = 0.02, 0.03, 0.06, 0.04; running maximum: 0.02, 0.03, 0.06, 0.06.
    # Back in input order: 0.03, 0.06, 0.06, 0.02.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [1, 2, 7, 50, 500])
def test_holm_matches_statsmodels(seed: int, m: int) -> None:
    rng = np.random.default_rng(100 + seed)
    p = np.concatenate([rng.random(m - m // 3), rng.random(m // 3) * 1e-3])
    rng.shuffle(p)
    assert holm(p.tolist()) == pytest.approx(statsmodels_holm(p.tolist()), rel=1e-12)


@given(P_LISTS)
def test_holm_matches_statsmodels_property(p: list[float]) -> None:
    assert holm(p) == pytest.approx(statsmodels_holm(p), rel=1e-12, abs=1e-300)


@given(TIED_P_LISTS)
def test_holm_matches_statsmodels_with_ties(p: list[float]) -> None:
    assert holm(p) == pytest.approx(statsmodels_holm(p), rel=1e-12, abs=1e-300)


def test_bh_where_tested_adjusts_the_tests_and_keeps_the_untested_none() -> None:
    """None (a comparison without a test) stays None and does not count in m."""
    given_p = [0.01, None, 0.04, 0.03, None]
    found = benjamini_hochberg_where_tested(given_p)
    expected = multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1]
    assert found[1] is None
    assert found[4] is None
    assert [found[0], found[2], found[3]] == pytest.approx(list(expected), abs=1e-12)
    assert benjamini_hochberg_where_tested([]) == []
    assert benjamini_hochberg_where_tested([None]) == [None]
