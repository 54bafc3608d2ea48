"""Reference-value and property tests of the k-variable moments in ``analysis.joint``.

Expected values come from numpy on the same data (``np.mean``, ``np.cov`` —
whose default ddof=1 is the contract's n - 1), never from the module under
test.  Merge properties follow Chan, Golub & LeVeque (1979): the moments of a
union do not depend on how the units were split or ordered.
"""

from __future__ import annotations

import math
from functools import reduce
from random import Random

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.aggregates import Moments, moments_from_row
from analysis.joint import JointMoments, joint_moments_from_array, joint_moments_from_row
from analysis.polars_exprs import joint_moment_exprs, moment_exprs

COLUMNS = ["a", "b", "c", "d"]


def polars_joint(data: np.ndarray, prefix: str = "p_") -> JointMoments:
    """Joint moments through the polars adapter under test (None for NaN)."""
    cols = COLUMNS[: data.shape[1]]
    frame = pl.DataFrame(
        {c: [None if math.isnan(v) else float(v) for v in data[:, i]] for i, c in enumerate(cols)},
        schema=dict.fromkeys(cols, pl.Float64),
    )
    row = frame.select(joint_moment_exprs(cols, prefix)).row(0, named=True)
    return joint_moments_from_row(row, cols, prefix)


def assert_matches_numpy(m: JointMoments, data: np.ndarray, rel: float = 1e-12) -> None:
    """Compare with numpy: means, and the co-moments as (n - 1) * np.cov."""
    n, k = data.shape
    assert m.n == n
    assert m.k == k
    if n == 0:
        return
    means = np.mean(data, axis=0)
    sd = np.std(data, axis=0) + 1.0
    for i in range(k):
        assert m.mean(i) == pytest.approx(means[i], rel=rel, abs=rel * sd[i])
    if n < 2:
        assert math.isnan(m.cov(0, 0))
        return
    cov = np.atleast_2d(np.cov(data, rowvar=False))  # ddof = 1
    for i in range(k):
        for j in range(k):
            # Absolute floor: a covariance near 0 is only known to rounding of the scale.
            floor = rel * sd[i] * sd[j]
            assert m.cov(i, j) == pytest.approx(cov[i, j], rel=rel, abs=floor), (i, j)
            assert m.comoments[i][j] == m.comoments[j][i]


def sample(seed: int, n: int, k: int) -> np.ndarray:
    """Correlated, skewed per-unit values (counts and durations) with k columns."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 3.0, size=(n, 1))
    noise = rng.lognormal(0.0, 1.0, size=(n, k))
    return np.round(base * noise, 3)


# --- the polars adapter and the numpy builder against numpy ---------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n", [2, 3, 50, 2000])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_polars_joint_moments_match_numpy_cov(seed: int, n: int, k: int) -> None:
    data = sample(seed, n, k)
    assert_matches_numpy(polars_joint(data), data)
    assert_matches_numpy(joint_moments_from_array(data), data)


def test_rows_with_any_null_are_left_out_of_every_moment() -> None:
    # Expected: numpy on the complete rows only (rows 1 and 3 have a null).
    data = sample(3, 8, 3)
    data[1, 0] = np.nan
    data[3, 2] = np.nan
    complete = data[~np.isnan(data).any(axis=1)]
    assert_matches_numpy(polars_joint(data), complete)
    assert_matches_numpy(joint_moments_from_array(data), complete)


def test_integer_columns_are_cast_and_do_not_overflow() -> None:
    # Int32 values whose squares overflow int32: the adapter casts to Float64 first.
    values = np.array([[50_000, 1], [70_000, 2], [90_000, 4]], dtype=np.int64)
    frame = pl.DataFrame(
        {"a": values[:, 0], "b": values[:, 1]}, schema={"a": pl.Int32, "b": pl.Int32}
    )
    row = frame.select(joint_moment_exprs(["a", "b"])).row(0, named=True)
    assert_matches_numpy(joint_moments_from_row(row, ["a", "b"]), values.astype(float))


def test_group_by_gives_one_set_of_moments_per_group() -> None:
    # Usable inside group_by(...).agg(...): each arm's row equals numpy on that arm.
    data = sample(4, 300, 2)
    arm = np.where(np.arange(300) % 3 == 0, "control", "treatment")
    frame = pl.DataFrame({"arm": arm, "a": data[:, 0], "b": data[:, 1]})
    out = frame.group_by("arm").agg(joint_moment_exprs(["a", "b"], "x_")).sort("arm")
    for row in out.iter_rows(named=True):
        mask = arm == row["arm"]
        assert_matches_numpy(joint_moments_from_row(row, ["a", "b"], "x_"), data[mask])


def test_empty_input_gives_empty_moments() -> None:
    frame = pl.DataFrame(
        {"a": [None, 1.0], "b": [2.0, None]}, schema={"a": pl.Float64, "b": pl.Float64}
    )
    row = frame.select(joint_moment_exprs(["a", "b"])).row(0, named=True)
    m = joint_moments_from_row(row, ["a", "b"])
    assert m == JointMoments.empty(2)
    assert math.isnan(m.cov(0, 1))
    assert m.marginal(0, 1) == Moments.empty()
    assert joint_moments_from_array(np.empty((0, 3))) == JointMoments.empty(3)


def test_marginal_equals_the_two_variable_moments() -> None:
    # Expected: the existing moment_exprs adapter on the same two columns.
    data = sample(5, 400, 4)
    m = joint_moments_from_array(data)
    frame = pl.DataFrame({"x": data[:, 2], "y": data[:, 3]})
    ratio = moments_from_row(
        frame.select(moment_exprs(pl.col("x"), pl.col("y"))).row(0, named=True)
    )
    mean = moments_from_row(frame.select(moment_exprs(pl.col("x"))).row(0, named=True))
    for got, want in ((m.marginal(2, 3), ratio), (m.marginal(2), mean)):
        assert got.n == want.n
        for field in ("mean_x", "mean_y", "m2_x", "m2_y", "c_xy"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-12, abs=1e-9)


def test_merging_different_widths_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 and 3"):
        JointMoments.empty(2).merge(JointMoments.empty(3))


# --- merge properties (hypothesis) -----------------------------------------------------

values = st.one_of(
    st.integers(min_value=0, max_value=50).map(float),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_subnormal=False),
)
rows3 = st.lists(st.tuples(values, values, values), min_size=0, max_size=50)


def as_array(rows: list[tuple[float, float, float]]) -> np.ndarray:
    return np.array(rows, dtype=float).reshape(len(rows), 3)


def assert_close(a: JointMoments, b: JointMoments, data: np.ndarray) -> None:
    """Equal to 1e-9 relative, with an absolute floor from the data's magnitude."""
    assert a.n == b.n
    scale = max(1.0, float(np.max(np.abs(data)))) if data.size else 1.0
    for x, y in zip(a.means, b.means, strict=True):
        assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9 * scale)
    for ra, rb in zip(a.comoments, b.comoments, strict=True):
        for x, y in zip(ra, rb, strict=True):
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9 * max(a.n, 1) * scale**2)


@settings(deadline=None, max_examples=60)
@given(rows=rows3, cut=st.floats(min_value=0.0, max_value=1.0))
def test_merge_of_a_split_equals_the_whole(
    rows: list[tuple[float, float, float]], cut: float
) -> None:
    data = as_array(rows)
    i = int(cut * len(rows))
    merged = joint_moments_from_array(data[:i]).merge(joint_moments_from_array(data[i:]))
    assert_close(merged, joint_moments_from_array(data), data)


@settings(deadline=None, max_examples=60)
@given(rows=rows3, parts=st.integers(min_value=1, max_value=6))
def test_merge_of_many_parts_is_independent_of_grouping(
    rows: list[tuple[float, float, float]], parts: int
) -> None:
    data = as_array(rows)
    chunks = [joint_moments_from_array(c) for c in np.array_split(data, parts)]
    left = reduce(JointMoments.merge, chunks)
    right = reduce(lambda acc, m: m.merge(acc), reversed(chunks))
    whole = joint_moments_from_array(data)
    assert_close(left, whole, data)
    assert_close(right, whole, data)


@settings(deadline=None, max_examples=60)
@given(left=rows3, right=rows3)
def test_merge_is_commutative_and_empty_is_the_identity(
    left: list[tuple[float, float, float]], right: list[tuple[float, float, float]]
) -> None:
    a, b = joint_moments_from_array(as_array(left)), joint_moments_from_array(as_array(right))
    data = np.vstack([as_array(left), as_array(right)])
    assert_close(a.merge(b), b.merge(a), data)
    assert a.merge(JointMoments.empty(3)) == a
    assert JointMoments.empty(3).merge(a) == a


@settings(deadline=None, max_examples=40)
@given(rows=rows3, order=st.randoms(use_true_random=False))
def test_row_order_does_not_matter(rows: list[tuple[float, float, float]], order: Random) -> None:
    shuffled = list(rows)
    order.shuffle(shuffled)
    data = as_array(rows)
    assert_close(joint_moments_from_array(as_array(shuffled)), joint_moments_from_array(data), data)
