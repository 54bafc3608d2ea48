"""Reference-value tests of the sample-ratio-mismatch check.

Expected values: ``scipy.stats.chisquare`` on the counts and the expected counts
``N * share / sum(shares)``, and hand computations with the closed-form
chi-square survival functions
``P(chi2_1 > x) = erfc(sqrt(x / 2))`` and ``P(chi2_2 > x) = exp(-x / 2)``
(Abramowitz & Stegun 26.4.4 and 26.4.21 for nu = 1, 2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis.stats.srm import SRM_THRESHOLD, srm_test


def test_two_arms_hand_computation() -> None:
    # 5100 / 4900 at 50/50: expected 5000 each,
    # chi2 = 100^2/5000 + 100^2/5000 = 4.0, p = erfc(sqrt(2)) = 0.0455003 (1 df).
    res = srm_test({"control": 5100, "treatment": 4900}, {"control": 0.5, "treatment": 0.5})
    assert res.chi2 == pytest.approx(4.0, rel=1e-12)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(2.0)), rel=1e-9)
    assert res.p_value == pytest.approx(0.0455003, abs=1e-7)
    assert not res.flagged
    assert res.note is None
    assert res.observed == {"control": 5100, "treatment": 4900}
    assert res.expected == pytest.approx({"control": 0.5, "treatment": 0.5})


def test_three_arms_hand_computation() -> None:
    # 50/25/25 with N = 10000: expected 5000/2500/2500; observed 5100/2400/2500:
    # chi2 = 100^2/5000 + 100^2/2500 + 0 = 2 + 4 = 6, p = exp(-6/2) = 0.0497871 (2 df).
    res = srm_test({"a": 5100, "b": 2400, "c": 2500}, {"a": 0.5, "b": 0.25, "c": 0.25})
    assert res.chi2 == pytest.approx(6.0, rel=1e-12)
    assert res.p_value == pytest.approx(math.exp(-3.0), rel=1e-9)
    assert not res.flagged


@pytest.mark.parametrize("seed", range(5))
def test_matches_scipy_chisquare(seed: int) -> None:
    # Expected: scipy.stats.chisquare(observed, N * share / sum(shares)).
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    shares = rng.uniform(0.1, 1.0, size=k)
    # Draw from slightly wrong shares so that some p-values are small.
    drawn = rng.multinomial(int(rng.integers(100, 100_000)), rng.dirichlet(shares * 200))
    arms = [f"v{i}" for i in range(k)]
    res = srm_test(
        dict(zip(arms, drawn.tolist(), strict=True)), dict(zip(arms, shares, strict=True))
    )
    ref = stats.chisquare(drawn, drawn.sum() * shares / shares.sum())
    assert res.chi2 == pytest.approx(ref.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.flagged == (ref.pvalue < SRM_THRESHOLD)
    assert sum(res.expected.values()) == pytest.approx(1.0, rel=1e-12)


def test_unnormalised_shares_are_normalised() -> None:
    # Shares 2:1:1 mean 50/25/25: same result as the normalised shares.
    observed = {"a": 5100, "b": 2400, "c": 2500}
    raw = srm_test(observed, {"a": 2, "b": 1, "c": 1})
    normalised = srm_test(observed, {"a": 0.5, "b": 0.25, "c": 0.25})
    assert raw.expected == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25}, rel=1e-12)
    assert raw.chi2 == pytest.approx(6.0, rel=1e-12)
    assert raw.p_value == pytest.approx(normalised.p_value, rel=1e-12)


@pytest.mark.parametrize(("d", "flagged"), [(164, False), (165, True)])
def test_flagged_only_below_threshold(d: int, flagged: bool) -> None:
    # 50/50 with N = 10000 and counts 5000 +- d: chi2 = 2 d^2 / 5000 = d^2 / 2500.
    # The 0.999 quantile of chi2_1 is 10.828, so d = 164 (chi2 = 10.758,
    # p = 0.00104) is not flagged and d = 165 (chi2 = 10.89, p = 0.00097) is.
    res = srm_test({"c": 5000 + d, "t": 5000 - d}, {"c": 1, "t": 1})
    assert res.chi2 == pytest.approx(d * d / 2500, rel=1e-12)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(d * d / 5000)), rel=1e-9)
    assert res.flagged is flagged


def test_threshold_is_strict() -> None:
    # "flagged" means p < threshold: a p-value equal to the threshold is not flagged.
    res = srm_test({"c": 5100, "t": 4900}, {"c": 1, "t": 1})
    assert res.p_value is not None
    assert not srm_test({"c": 5100, "t": 4900}, {"c": 1, "t": 1}, threshold=res.p_value).flagged
    assert srm_test({"c": 5100, "t": 4900}, {"c": 1, "t": 1}, threshold=0.05).flagged


def test_no_units_gives_none_with_note() -> None:
    res = srm_test({}, {"control": 0.5, "treatment": 0.5})
    assert res.p_value is None
    assert res.chi2 is None
    assert not res.flagged
    assert res.note
    assert res.observed == {"control": 0, "treatment": 0}


def test_missing_arm_counts_as_zero() -> None:
    # An arm with no units is the most extreme mismatch: chi2 = N (all units in the
    # other arm; (N - N/2)^2/(N/2) + (N/2)^2/(N/2) = N), p = erfc(sqrt(N/2)).
    res = srm_test({"control": 100}, {"control": 0.5, "treatment": 0.5})
    assert res.observed == {"control": 100, "treatment": 0}
    assert res.chi2 == pytest.approx(100.0, rel=1e-12)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(50.0)), rel=1e-9)
    assert res.flagged


def test_single_arm_gives_none_not_nan() -> None:
    # One category leaves 0 degrees of freedom; scipy would return p = NaN, and the
    # contract forbids NaN: None with a note instead.
    res = srm_test({"control": 100}, {"control": 1.0})
    assert res.p_value is None
    assert not res.flagged
    assert res.note
