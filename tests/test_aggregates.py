"""Reference-value and property tests of the mergeable moments in ``analysis.aggregates``.

Every expected value comes from numpy on the same data (``np.mean``,
``np.var(ddof=1)``, ``np.cov`` — ddof=1 is numpy's default for ``np.cov``), never
from the module under test.  The merge properties follow Chan, Golub & LeVeque
(1979): the moments of a union do not depend on how the units were split,
grouped or ordered.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.aggregates import Moments, moments_from_row
from analysis.polars_exprs import moment_exprs

# Per-unit values: small counts (the usual numerator/denominator) or bounded reals.
values = st.one_of(
    st.integers(min_value=0, max_value=50).map(float),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_subnormal=False),
)
pairs = st.lists(st.tuples(values, values), min_size=0, max_size=60)


def polars_moments(x: list[float] | np.ndarray, y: list[float] | np.ndarray | None) -> Moments:
    """Moments of one arm through the polars adapter under test."""
    data = {"x": list(x)} if y is None else {"x": list(x), "y": list(y)}
    frame = pl.DataFrame(data, schema=dict.fromkeys(data, pl.Float64))
    row = frame.select(moment_exprs(pl.col("x"), None if y is None else pl.col("y"))).row(
        0, named=True
    )
    return moments_from_row(row)


def close(a: float, b: float, scale: float) -> bool:
    """Relative 1e-9, with an absolute floor proportional to the data's magnitude.

    The floor matters only where the exact value is 0 (e.g. m2 of equal values),
    where float rounding in two different summation orders leaves ~1e-16 * scale.
    """
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale)


def assert_matches_numpy(m: Moments, x: np.ndarray, y: np.ndarray | None) -> None:
    """Compare ``m`` with numpy's two-pass moments of the whole data set."""
    n = len(x)
    assert m.n == n
    if n == 0:
        return
    yy = np.ones(n) if y is None else y
    scale = n * max(1.0, float(np.max(np.abs(x))), float(np.max(np.abs(yy)))) ** 2
    # numpy reference: means, and sums of (cross) squared deviations from the mean.
    ref = {
        "mean_x": float(np.mean(x)),
        "mean_y": float(np.mean(yy)),
        "m2_x": float(np.sum((x - np.mean(x)) ** 2)),
        "m2_y": float(np.sum((yy - np.mean(yy)) ** 2)),
        "c_xy": float(np.sum((x - np.mean(x)) * (yy - np.mean(yy)))),
    }
    for key, expected in ref.items():
        assert close(getattr(m, key), expected, scale), (key, getattr(m, key), expected)


# --- the polars adapter against numpy ------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [2, 3, 17, 1000])
def test_moments_without_y_match_numpy(seed: int, n: int) -> None:
    # Expected: np.mean, np.var(ddof=1) (contract: sample variances use n - 1).
    x = np.random.default_rng(seed).lognormal(mean=1.0, sigma=1.0, size=n)
    m = polars_moments(x, None)
    assert m.n == n
    assert m.mean_x == pytest.approx(np.mean(x), rel=1e-12)
    assert m.var_x == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    # A mean metric is a ratio metric with y = 1 for every unit.
    assert m.mean_y == 1.0
    assert m.m2_y == 0.0
    assert m.c_xy == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [2, 3, 17, 1000])
def test_moments_with_y_match_numpy(seed: int, n: int) -> None:
    # Expected: np.mean, np.var(ddof=1), and np.cov(x, y)[0, 1] (ddof=1 by default).
    rng = np.random.default_rng(seed)
    y = rng.poisson(3.0, size=n).astype(float)
    x = rng.binomial(y.astype(np.int64), 0.4).astype(float) + rng.normal(size=n)
    m = polars_moments(x, y)
    assert m.n == n
    assert m.mean_x == pytest.approx(np.mean(x), rel=1e-12)
    assert m.mean_y == pytest.approx(np.mean(y), rel=1e-12)
    assert m.var_x == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    assert m.var_y == pytest.approx(np.var(y, ddof=1), rel=1e-12)
    assert m.cov_xy == pytest.approx(np.cov(x, y)[0, 1], rel=1e-12)
    assert m.sum_x == pytest.approx(np.sum(x), rel=1e-12)
    assert m.sum_y == pytest.approx(np.sum(y), rel=1e-12)


def test_moments_per_group_match_numpy() -> None:
    # The adapter is used in group_by().agg(); each group must equal numpy on its rows.
    rng = np.random.default_rng(7)
    n = 3000
    arm = rng.choice(["control", "treatment", "other"], size=n)
    y = rng.poisson(2.0, size=n)
    x = rng.binomial(y, 0.3)
    frame = pl.DataFrame({"arm": arm, "x": x, "y": y})
    rows = frame.group_by("arm").agg(moment_exprs(pl.col("x"), pl.col("y"))).to_dicts()
    assert len(rows) == 3
    for row in rows:
        sel = arm == row["arm"]
        m = moments_from_row(row)
        assert m.n == int(sel.sum())
        assert m.mean_x == pytest.approx(np.mean(x[sel]), rel=1e-12)
        assert m.mean_y == pytest.approx(np.mean(y[sel]), rel=1e-12)
        assert m.var_x == pytest.approx(np.var(x[sel], ddof=1), rel=1e-12)
        assert m.var_y == pytest.approx(np.var(y[sel], ddof=1), rel=1e-12)
        assert m.cov_xy == pytest.approx(np.cov(x[sel], y[sel])[0, 1], rel=1e-12)


def test_integer_columns_do_not_overflow() -> None:
    # UInt32 values ~1e5 have squares ~1e10 > 2^32: the adapter must cast before
    # squaring.  Expected: numpy in float64 on the same values.
    x = np.array([100_000, 200_000, 300_000, 70_000], dtype=np.uint32)
    frame = pl.DataFrame({"x": x, "y": x}, schema={"x": pl.UInt32, "y": pl.UInt32})
    m = moments_from_row(frame.select(moment_exprs(pl.col("x"), pl.col("y"))).row(0, named=True))
    xf = x.astype(np.float64)
    assert m.var_x == pytest.approx(np.var(xf, ddof=1), rel=1e-12)
    assert m.cov_xy == pytest.approx(np.var(xf, ddof=1), rel=1e-12)


def test_empty_frame_gives_empty_moments() -> None:
    frame = pl.DataFrame({"x": [], "y": []}, schema={"x": pl.Float64, "y": pl.Float64})
    for y in (None, pl.col("y")):
        m = moments_from_row(frame.select(moment_exprs(pl.col("x"), y)).row(0, named=True))
        assert m == Moments.empty()
        assert m.n == 0


def test_single_unit_has_undefined_variance() -> None:
    # n - 1 = 0: the sample variance is undefined (NaN here; inference turns it into None).
    m = polars_moments([4.0], [2.0])
    assert (m.n, m.mean_x, m.mean_y, m.m2_x) == (1, 4.0, 2.0, 0.0)
    assert math.isnan(m.var_x)
    assert math.isnan(m.cov_xy)


def test_rows_with_a_null_leave_every_moment() -> None:
    # A unit enters with its complete (x, y) pair or not at all, so that n, the
    # means and the cross sum describe the same units.  Expected: numpy on the
    # complete rows only (rows 0, 3 and 4).
    x = [1.0, 2.0, None, 4.0, 7.0]
    y = [1.0, None, 3.0, 5.0, 2.0]
    frame = pl.DataFrame({"x": x, "y": y})
    m = moments_from_row(frame.select(moment_exprs(pl.col("x"), pl.col("y"))).row(0, named=True))
    assert_matches_numpy(m, np.array([1.0, 4.0, 7.0]), np.array([1.0, 5.0, 2.0]))
    assert m.sum_y == pytest.approx(8.0)
    # Without y only x's nulls matter.
    mx = moments_from_row(frame.select(moment_exprs(pl.col("x"))).row(0, named=True))
    assert_matches_numpy(mx, np.array([1.0, 2.0, 4.0, 7.0]), None)


# --- large offsets ---------------------------------------------------------------------


def test_large_offset_keeps_variance_precision() -> None:
    # Values ~1e9 with unit noise: a raw sum-of-squares formula (E[x^2] - E[x]^2)
    # would lose all ~18 significant digits of x^2 to cancellation.  Expected:
    # numpy on the centred data (x - 1e9 is exact in float64 for these values,
    # Sterbenz's lemma), where no cancellation happens.
    rng = np.random.default_rng(11)
    offset = 1e9
    noise_x = rng.normal(size=10_000)
    noise_y = 0.5 * noise_x + rng.normal(size=10_000)
    x = offset + noise_x
    y = 2 * offset + noise_y
    xc, yc = x - offset, y - 2 * offset
    m = polars_moments(x, y)
    assert m.var_x == pytest.approx(np.var(xc, ddof=1), rel=1e-9)
    assert m.var_y == pytest.approx(np.var(yc, ddof=1), rel=1e-9)
    assert m.cov_xy == pytest.approx(np.cov(xc, yc)[0, 1], rel=1e-9)
    # Merging partitions keeps nearly all of it (the Chan et al. update only adds
    # centred quantities).  The floor here is the representation itself: a part's
    # mean ~2e9 is stored to ulp(2e9) = 2.4e-7, so each between-part term
    # dy^2 * n_a n_b / n carries a relative error ~ulp / |dy| (dy ~ 0.05); over
    # ten parts that is ~5e-9 of the variance.  The raw-power-sum formula on the
    # same data is off by a factor of ~600, so 1e-7 still separates the two.
    parts = [polars_moments(x[i : i + 1000], y[i : i + 1000]) for i in range(0, 10_000, 1000)]
    merged = reduce(Moments.merge, parts)
    assert merged.n == 10_000
    assert merged.var_x == pytest.approx(np.var(xc, ddof=1), rel=1e-7)
    assert merged.var_y == pytest.approx(np.var(yc, ddof=1), rel=1e-7)
    assert merged.cov_xy == pytest.approx(np.cov(xc, yc)[0, 1], rel=1e-7)


# --- merge properties (hypothesis) -----------------------------------------------------


def split(data: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.array(data, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


@settings(deadline=None, max_examples=60)
@given(data=pairs, cut=st.floats(min_value=0.0, max_value=1.0))
def test_merge_of_any_split_equals_whole(data: list[tuple[float, float]], cut: float) -> None:
    # Expected: numpy's moments of the whole data set.
    x, y = split(data)
    k = round(cut * len(x))
    merged = polars_moments(x[:k], y[:k]).merge(polars_moments(x[k:], y[k:]))
    assert_matches_numpy(merged, x, y)
    merged_x = polars_moments(x[:k], None).merge(polars_moments(x[k:], None))
    assert_matches_numpy(merged_x, x, None)


@settings(deadline=None, max_examples=60)
@given(data=pairs, cuts=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)))
def test_merge_is_associative(data: list[tuple[float, float]], cuts: tuple[float, float]) -> None:
    # (a + b) + c and a + (b + c) both equal numpy on the whole, hence each other.
    x, y = split(data)
    i, j = sorted(round(c * len(x)) for c in cuts)
    a, b, c = (polars_moments(x[s], y[s]) for s in (slice(0, i), slice(i, j), slice(j, None)))
    left = a.merge(b).merge(c)
    right = a.merge(b.merge(c))
    assert_matches_numpy(left, x, y)
    assert_matches_numpy(right, x, y)


@settings(deadline=None, max_examples=60)
@given(data=pairs)
def test_merge_with_empty_is_identity(data: list[tuple[float, float]]) -> None:
    x, y = split(data)
    m = polars_moments(x, y)
    assert m.merge(Moments.empty()) == m
    assert Moments.empty().merge(m) == m
    assert Moments.empty().merge(Moments.empty()).n == 0


@settings(deadline=None, max_examples=60)
@given(data=pairs, order=st.randoms(use_true_random=False))
def test_row_order_does_not_matter(data: list[tuple[float, float]], order: object) -> None:
    # Expected: numpy on the data in its original order.
    x, y = split(data)
    perm = list(range(len(x)))
    order.shuffle(perm)  # type: ignore[attr-defined]
    assert_matches_numpy(polars_moments(x[perm], y[perm]), x, y)
    # Folding single units in the shuffled order (the extreme partition).
    singles = [Moments(1, float(x[i]), float(y[i])) for i in perm]
    assert_matches_numpy(reduce(Moments.merge, singles, Moments.empty()), x, y)


@settings(deadline=None, max_examples=60)
@given(left=pairs, right=pairs)
def test_merge_is_commutative(
    left: list[tuple[float, float]], right: list[tuple[float, float]]
) -> None:
    # Swapping the two parts describes the same union: numpy on left + right.
    xl, yl = split(left)
    xr, yr = split(right)
    a, b = polars_moments(xl, yl), polars_moments(xr, yr)
    x, y = np.concatenate([xl, xr]), np.concatenate([yl, yr])
    assert_matches_numpy(a.merge(b), x, y)
    assert_matches_numpy(b.merge(a), x, y)


def test_prefixed_moments_of_two_metrics_in_one_pass() -> None:
    # Several metrics share one select via a column prefix; each must equal numpy.
    rng = np.random.default_rng(3)
    y = rng.poisson(2.0, size=500).astype(float)
    x = rng.binomial(y.astype(np.int64), 0.5).astype(float)
    v = rng.normal(size=500)
    frame = pl.DataFrame({"x": x, "y": y, "v": v})
    row = frame.select(
        *moment_exprs(pl.col("x"), pl.col("y"), "ratio|"),
        *moment_exprs(pl.col("v"), None, "mean|"),
    ).row(0, named=True)
    ratio, mean = moments_from_row(row, "ratio|"), moments_from_row(row, "mean|")
    assert_matches_numpy(ratio, x, y)
    assert_matches_numpy(mean, v, None)
    assert ratio.cov_xy == pytest.approx(np.cov(x, y)[0, 1], rel=1e-12)
    assert mean.var_x == pytest.approx(np.var(v, ddof=1), rel=1e-12)
