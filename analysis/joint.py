"""Frozen, mergeable sufficient statistics of k per-unit variables.

The two-variable :class:`~analysis.aggregates.Moments` covers a metric's
numerator and denominator.  Methods that use more per-unit variables — CUPED
with a pre-period covariate needs ``(x, x_pre)`` for a mean metric and
``(x, y, x_pre, y_pre)`` for a ratio metric — need the full covariance matrix
of those variables.  :class:`JointMoments` keeps

* ``n``: the number of units,
* ``means``: the mean vector ``m_i = (1/n) sum_u v_ui``,
* ``comoments``: the co-moment matrix ``C_ij = sum_u (v_ui - m_i)(v_uj - m_j)``,

from which ``Cov(v_i, v_j) = C_ij / (n - 1)`` (contract: sample variances use
n - 1).  Two disjoint sets of units ``a`` and ``b`` merge exactly with the
pairwise update of Chan, Golub & LeVeque (1979), "Updating formulae and a
pairwise algorithm for computing sample variances", in its multivariate form
(e.g. Schubert & Gertz 2018, "Numerically stable parallel computation of
(co-)variance", SSDBM)::

    n     = n_a + n_b
    d     = m_b - m_a
    m     = m_a + d * n_b / n
    C     = C_a + C_b + d d' * n_a n_b / n
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.aggregates import Moments

Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class JointMoments:
    """Sufficient statistics of k per-unit variables of one arm.

    Attributes:
        n: number of units (units with a null in any of the k variables are left out).
        means: the k means over units.
        comoments: k x k symmetric matrix of sums over units of products of
            deviations from the means, ``C[i][j] = sum (v_i - mean_i)(v_j - mean_j)``.
    """

    n: int
    means: tuple[float, ...]
    comoments: Matrix

    @classmethod
    def empty(cls, k: int) -> JointMoments:
        """No units: n = 0, zero means and co-moments."""
        return cls(0, (0.0,) * k, tuple((0.0,) * k for _ in range(k)))

    @property
    def k(self) -> int:
        """Number of variables."""
        return len(self.means)

    def mean(self, i: int) -> float:
        """Mean of variable i."""
        return self.means[i]

    def cov(self, i: int, j: int) -> float:
        """Sample covariance of variables i and j (n - 1 in the denominator); NaN if n < 2."""
        return self.comoments[i][j] / (self.n - 1) if self.n > 1 else float("nan")

    def merge(self, other: JointMoments) -> JointMoments:
        """Moments of the union of two disjoint sets of units (Chan et al. 1979)."""
        if self.k != other.k:
            msg = f"cannot merge joint moments of {self.k} and {other.k} variables"
            raise ValueError(msg)
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        d = [b - a for a, b in zip(self.means, other.means, strict=True)]
        w = self.n * other.n / n
        means = tuple(a + di * other.n / n for a, di in zip(self.means, d, strict=True))
        comoments = tuple(
            tuple(
                ca + cb + d[i] * d[j] * w
                for j, (ca, cb) in enumerate(zip(row_a, row_b, strict=True))
            )
            for i, (row_a, row_b) in enumerate(zip(self.comoments, other.comoments, strict=True))
        )
        return JointMoments(n, means, comoments)

    def marginal(self, i: int, j: int | None = None) -> Moments:
        """The two-variable :class:`Moments` of ``x = v_i`` and ``y = v_j`` (or ``y = 1``).

        For a mean metric ``marginal(0)`` gives the post-period moments that
        :func:`~analysis.stats.inference.welch_test` reads; for a ratio metric
        ``marginal(0, 1)`` gives those of :func:`~analysis.stats.inference.delta_ratio_test`.
        """
        if self.n == 0:
            return Moments.empty()
        c = self.comoments
        if j is None:
            return Moments(self.n, self.means[i], 1.0, c[i][i])
        return Moments(self.n, self.means[i], self.means[j], c[i][i], c[j][j], c[i][j])


def joint_moments_from_array(values: npt.ArrayLike) -> JointMoments:
    """Joint moments of an ``(n, k)`` array of per-unit values (two-pass, numpy).

    Rows with a NaN in any column are left out, as nulls are by
    :func:`joint_moment_exprs`.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 2:
        msg = f"expected an (n, k) array, got shape {data.shape}"
        raise ValueError(msg)
    data = data[~np.isnan(data).any(axis=1)]
    n, k = data.shape
    if n == 0:
        return JointMoments.empty(k)
    means = data.mean(axis=0)
    dev = data - means
    c = dev.T @ dev
    return JointMoments(
        n,
        tuple(float(v) for v in means),
        tuple(tuple(float(v) for v in row) for row in c),
    )


def joint_moments_from_row(
    row: Mapping[str, Any], columns: Sequence[str], prefix: str = ""
) -> JointMoments:
    """Read the columns that :func:`joint_moment_exprs` produced (same columns and prefix)."""
    k = len(columns)
    n = int(row[f"{prefix}n"] or 0)
    if n == 0:
        return JointMoments.empty(k)

    def f(key: str) -> float:
        value = row[prefix + key]
        return float(value) if value is not None else 0.0

    upper = {(i, j): f(f"c_{i}_{j}") for i in range(k) for j in range(i, k)}
    return JointMoments(
        n,
        tuple(f(f"mean_{i}") for i in range(k)),
        tuple(tuple(upper[min(i, j), max(i, j)] for j in range(k)) for i in range(k)),
    )
