"""Reference-value tests of ``analysis.stats.balance``.

Expected values come from statsmodels' ``multipletests(method="bonferroni")``
(to 1e-12) and from hand computation; the end-to-end case feeds pre-period
Welch p-values from ``analysis.stats.inference.welch_test``, whose own
reference tests are in ``test_inference.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.aggregates import Moments
from analysis.stats.balance import BalanceResult, pre_exposure_check
from analysis.stats.inference import welch_test


def test_hand_example() -> None:
    # m = 4 metrics with a p-value: adjusted = min(1, 4 p).
    # 0.0001 -> 0.0004 (< 0.001: flagged); 0.0003 -> 0.0012 (not); 0.2 -> 0.8; 0.5 -> 1.
    res = pre_exposure_check(
        {"a": 0.2, "b": 0.0001, "c": None, "d": 0.0003, "e": 0.5},
    )
    assert res == BalanceResult(
        adjusted={
            "a": pytest.approx(0.8),  # type: ignore[dict-item]
            "b": pytest.approx(0.0004),  # type: ignore[dict-item]
            "c": None,
            "d": pytest.approx(0.0012),  # type: ignore[dict-item]
            "e": 1.0,
        },
        flagged=["b"],
        tested=4,
        threshold=0.001,
        note="no pre-period test for: c",
    )
    assert list(res.adjusted) == ["a", "b", "c", "d", "e"]  # input order kept


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("m", [1, 3, 13])
def test_matches_statsmodels_bonferroni(seed: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(m) ** 4  # some small ones
    names = [f"metric_{i}" for i in range(m)]
    res = pre_exposure_check(dict(zip(names, p.tolist(), strict=True)))
    reject, expected, _, _ = multipletests(p, alpha=0.001, method="bonferroni")
    assert [res.adjusted[n] for n in names] == pytest.approx(expected.tolist(), rel=1e-12)
    # statsmodels rejects at adjusted <= alpha; we flag at < threshold (same off the boundary).
    assert res.flagged == [n for n, r in zip(names, reject, strict=True) if r]
    assert res.tested == m


def test_threshold_is_strict_and_configurable() -> None:
    p = {"x": 0.0005, "y": 0.02}  # adjusted 0.001 and 0.04
    assert pre_exposure_check(p).flagged == []  # 0.001 is not < 0.001
    assert pre_exposure_check(p, threshold=0.05).flagged == ["x", "y"]


def test_missing_p_values_are_not_counted() -> None:
    res = pre_exposure_check({"x": 0.0002, "y": None, "z": math.nan})
    assert res.tested == 1
    assert res.adjusted == {"x": 0.0002, "y": None, "z": None}
    assert res.flagged == ["x"]
    assert res.note == "no pre-period test for: y, z"


def test_empty() -> None:
    res = pre_exposure_check({})
    assert res == BalanceResult({}, [], 0, 0.001, None)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="'x'"):
        pre_exposure_check({"x": 1.2})
    with pytest.raises(ValueError, match="threshold"):
        pre_exposure_check({"x": 0.5}, threshold=0.0)


def moments(x: np.ndarray) -> Moments:
    return Moments(len(x), float(np.mean(x)), 1.0, float(np.sum((x - np.mean(x)) ** 2)))


def test_flags_a_biased_pre_period_and_not_a_balanced_one() -> None:
    # Pre-period values per unit for three metrics, 2000 units per arm.  The
    # first two are balanced (same distribution); in the third the treatment
    # arm's units already trusted the tool more before exposure (+10 %).
    rng = np.random.default_rng(42)
    n = 2000
    pre = {
        "tasks_completed_per_user": (rng.poisson(5.0, n), rng.poisson(5.0, n)),
        "support_tickets_per_user": (rng.poisson(0.3, n), rng.poisson(0.3, n)),
        "trust_score": (rng.normal(4.0, 1.0, n), rng.normal(4.4, 1.0, n)),
    }
    p_values = {
        metric: welch_test(moments(c.astype(float)), moments(t.astype(float)), 0.05).p_value
        for metric, (c, t) in pre.items()
    }
    res = pre_exposure_check(p_values)
    assert res.flagged == ["trust_score"]
    assert res.tested == 3
