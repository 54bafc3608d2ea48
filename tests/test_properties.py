"""Invariances every estimator must have (hypothesis property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.joint import joint_moments_from_array
from analysis.stats.inference import delta_ratio_test, welch_test

seeds = st.integers(min_value=0, max_value=2**32 - 1)
scales = st.floats(min_value=1e-3, max_value=1e3)


def _arms(seed: int, ratio: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_c, n_t = rng.integers(5, 200, size=2)
    c = np.column_stack([rng.gamma(2.0, 3.0, n_c), rng.poisson(4, n_c) + 1.0])
    t = np.column_stack([rng.gamma(2.2, 3.0, n_t), rng.poisson(4, n_t) + 1.0])
    if not ratio:
        c[:, 1] = t[:, 1] = 1.0
    return c, t


def _test(c: np.ndarray, t: np.ndarray, ratio: bool):  # type: ignore[no-untyped-def]
    mc = joint_moments_from_array(c).marginal(0, 1 if ratio else None)
    mt = joint_moments_from_array(t).marginal(0, 1 if ratio else None)
    return (delta_ratio_test if ratio else welch_test)(mc, mt, 0.05)


@settings(max_examples=60, deadline=None)
@given(seeds, scales, st.booleans())
def test_scaling_the_metric_scales_diff_and_ci_and_keeps_lift_and_p(
    seed: int, k: float, ratio: bool
) -> None:
    c, t = _arms(seed, ratio)
    base = _test(c, t, ratio)
    c2, t2 = c.copy(), t.copy()
    c2[:, 0] *= k
    t2[:, 0] *= k
    scaled = _test(c2, t2, ratio)
    assert base.diff is not None
    assert base.diff_ci is not None
    assert scaled.diff == pytest.approx(k * base.diff, rel=1e-9)
    assert scaled.diff_ci == pytest.approx((k * base.diff_ci[0], k * base.diff_ci[1]), rel=1e-9)
    assert scaled.lift == pytest.approx(base.lift, rel=1e-9)
    assert scaled.p_value == pytest.approx(base.p_value, rel=1e-7, abs=1e-300)


@settings(max_examples=60, deadline=None)
@given(seeds, st.booleans())
def test_swapping_arms_negates_the_difference(seed: int, ratio: bool) -> None:
    c, t = _arms(seed, ratio)
    forward, backward = _test(c, t, ratio), _test(t, c, ratio)
    assert forward.diff is not None
    assert backward.diff == pytest.approx(-forward.diff, rel=1e-12)
    assert backward.p_value == pytest.approx(forward.p_value, rel=1e-9)
