"""Reference-value tests of ``analysis.stats.winsorize``.

Expected values come from:

* ``scipy.stats.mstats.winsorize(limits=(1 - p, 1 - p))`` where its
  count-based caps coincide with the linear quantile (``(n - 1)(1 - p)`` a
  whole number equal to ``floor(n (1 - p))``: n = 101 at p = 0.99, n = 1001
  at p = 0.95), compared exactly;
* ``numpy.quantile(method="linear")`` and the interpolation written out by
  hand where they differ (n = 100, p = 0.99), documenting the difference;
* ``numpy.clip`` for the applied caps.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import mstats

from analysis.polars_exprs import winsorize_caps_exprs, winsorize_expr
from analysis.stats.winsorize import winsorize_caps


def clip_with(values: np.ndarray, low: float, high: float) -> np.ndarray:
    frame = pl.DataFrame({"v": values})
    return frame.select(winsorize_expr("v", low, high))["v"].to_numpy()


@pytest.mark.parametrize(("n", "p"), [(101, 0.99), (1001, 0.95), (201, 0.995)])
@pytest.mark.parametrize("seed", [1, 2])
def test_matches_scipy_mstats_winsorize_where_definitions_agree(
    seed: int, n: int, p: float
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(2.0, 1.5, size=n)  # heavy right tail, like cost per user
    low, high = winsorize_caps(values, p)
    expected = np.asarray(mstats.winsorize(values, limits=(1 - p, 1 - p)))
    np.testing.assert_array_equal(clip_with(values, low, high), expected)


def test_differs_from_scipy_where_definitions_differ() -> None:
    # n = 100, p = 0.99.  Sorted x_(0) < ... < x_(99) (0-based).  Linear quantile
    # (Hyndman & Fan type 7) at position 99 * 0.99 = 98.01: x_(98) + 0.01 (x_(99) - x_(98));
    # low cap at position 0.99: x_(0) + 0.99 (x_(1) - x_(0)).  scipy caps by count,
    # g = floor(100 * 0.01) = 1: high x_(98), low x_(1).
    values = np.arange(100, dtype=float) ** 2  # 0, 1, 4, ..., 9801: distinct, uneven gaps
    low, high = winsorize_caps(values, 0.99)
    assert high == pytest.approx(98**2 + 0.01 * (99**2 - 98**2), rel=1e-12)
    assert low == pytest.approx(0.99 * 1.0, rel=1e-12)
    assert (low, high) == pytest.approx(
        (np.quantile(values, 0.01, method="linear"), np.quantile(values, 0.99, method="linear")),
        rel=1e-12,
    )
    scipy_capped = np.asarray(mstats.winsorize(values, limits=(0.01, 0.01)))
    assert scipy_capped.max() == 98**2
    assert scipy_capped.min() == 1.0
    assert high > scipy_capped.max()
    assert low < scipy_capped.min()


def test_caps_are_pooled_and_the_same_for_both_arms() -> None:
    # A treatment that creates heavy users: per-arm caps would cut it back more
    # than the control.  The pooled caps are computed once, and applying them to
    # each arm equals applying them to the pooled column.
    rng = np.random.default_rng(3)
    control = rng.exponential(10.0, size=2000)
    treatment = np.concatenate([rng.exponential(10.0, size=1900), rng.exponential(200.0, 100)])
    frame = pl.DataFrame(
        {
            "arm": ["control"] * 2000 + ["treatment"] * 2000,
            "v": np.concatenate([control, treatment]),
        }
    )
    low, high = winsorize_caps(frame["v"], 0.99)
    pooled = np.concatenate([control, treatment])
    assert (low, high) == pytest.approx(
        (np.quantile(pooled, 0.01, method="linear"), np.quantile(pooled, 0.99, method="linear")),
        rel=1e-12,
    )
    capped = frame.with_columns(winsorize_expr("v", low, high))
    by_arm = {
        arm: capped.filter(pl.col("arm") == arm)["v"].to_numpy() for arm in ("control", "treatment")
    }
    np.testing.assert_array_equal(by_arm["control"], np.clip(control, low, high))
    np.testing.assert_array_equal(by_arm["treatment"], np.clip(treatment, low, high))
    # Per-arm caps would differ: the treatment's own 99th percentile is far higher.
    assert winsorize_caps(treatment, 0.99)[1] > 2 * winsorize_caps(control, 0.99)[1]
    # Row order and arm order do not matter.
    assert winsorize_caps(pooled[::-1], 0.99) == pytest.approx((low, high), rel=1e-12)


def test_polars_expressions_match_numpy() -> None:
    rng = np.random.default_rng(4)
    values = [*rng.gamma(0.5, 20.0, size=999).tolist(), None, math.nan, math.inf]
    frame = pl.DataFrame({"cost": values}, schema={"cost": pl.Float64}).lazy()
    for tails in ("both", "upper"):
        row = frame.select(*winsorize_caps_exprs("cost", 0.975, tails)).collect().row(0)
        expected = winsorize_caps(pl.Series(values, dtype=pl.Float64), 0.975, tails)
        assert row == pytest.approx(expected, rel=1e-12)


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=60),
    st.floats(min_value=0.51, max_value=0.999),
)
def test_caps_properties(values: list[float], p: float) -> None:
    low, high = winsorize_caps(np.array(values), p)
    assert min(values) <= low <= high <= max(values)
    capped = clip_with(np.array(values), low, high)
    assert capped.min() >= low
    assert capped.max() <= high
    # The polars aggregation agrees with numpy (same linear quantile).
    row = pl.DataFrame({"v": values}).select(*winsorize_caps_exprs("v", p)).row(0)
    assert row == pytest.approx((low, high), rel=1e-9, abs=1e-9)


def test_upper_tail_only() -> None:
    values = np.array([-5.0, 0.0, 1.0, 2.0, 100.0])
    low, high = winsorize_caps(values, 0.75, tails="upper")
    assert low == -math.inf
    assert high == 2.0  # position 4 * 0.75 = 3: the 4th smallest value
    np.testing.assert_array_equal(clip_with(values, low, high), [-5.0, 0.0, 1.0, 2.0, 2.0])


def test_nulls_and_nans_are_ignored_and_kept() -> None:
    series = pl.Series([1.0, None, 2.0, 3.0, math.nan, 4.0, 5.0])
    assert winsorize_caps(series, 0.75) == winsorize_caps(np.array([1.0, 2, 3, 4, 5]), 0.75)
    clipped = pl.DataFrame({"v": series}).select(winsorize_expr("v", 2.0, 4.0))["v"]
    assert clipped.null_count() == 1
    assert clipped.is_nan().sum() == 1


def test_no_values_means_no_capping() -> None:
    assert winsorize_caps(np.array([]), 0.99) == (-math.inf, math.inf)
    assert winsorize_caps(pl.Series([None, None], dtype=pl.Float64), 0.99) == (-math.inf, math.inf)
    np.testing.assert_array_equal(clip_with(np.array([1.0, 1e9]), -math.inf, math.inf), [1.0, 1e9])


def test_integer_values() -> None:
    # Counts per unit (tasks, tickets) are integers; caps are floats.
    counts = pl.Series(list(range(11)), dtype=pl.Int64)
    assert winsorize_caps(counts, 0.9) == (1.0, 9.0)
    assert winsorize_caps(np.arange(11), 0.95) == pytest.approx((0.5, 9.5), rel=1e-12)


@pytest.mark.parametrize("p", [0.5, 1.0, 0.3, 99.0])
def test_invalid_percentile_raises(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        winsorize_caps(np.array([1.0, 2.0]), p)
    with pytest.raises(ValueError, match="percentile"):
        winsorize_caps_exprs("v", p)


def test_invalid_caps_raise() -> None:
    with pytest.raises(ValueError, match="above"):
        winsorize_expr("v", 2.0, 1.0)
