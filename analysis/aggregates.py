"""Frozen, mergeable sufficient statistics of one metric in one arm.

A metric's per-unit values are pairs ``(x, y)``: for a ratio metric ``x`` is the
unit's numerator and ``y`` its denominator; for mean and proportion metrics ``y``
is 1 for every unit.  Everything the statistics need — the means, the variances
and the covariance — follows from the central moments kept here.

Moments are kept centred (means and sums of squared deviations) rather than as
raw power sums, so that variances do not lose precision by cancellation, and
two partitions merge exactly with the pairwise update of Chan, Golub & LeVeque
(1979), "Updating formulae and a pairwise algorithm for computing sample
variances".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Moments:
    """Sufficient statistics of the per-unit pairs ``(x, y)`` of one arm.

    Attributes:
        n: number of units.
        mean_x: mean of x over units.
        mean_y: mean of y over units (1 for mean and proportion metrics).
        m2_x: sum over units of (x - mean_x)^2.
        m2_y: sum over units of (y - mean_y)^2.
        c_xy: sum over units of (x - mean_x)(y - mean_y).
    """

    n: int
    mean_x: float
    mean_y: float = 1.0
    m2_x: float = 0.0
    m2_y: float = 0.0
    c_xy: float = 0.0

    @classmethod
    def empty(cls) -> Moments:
        return cls(n=0, mean_x=0.0, mean_y=0.0)

    @property
    def var_x(self) -> float:
        """Sample variance of x (n - 1 in the denominator)."""
        return self.m2_x / (self.n - 1) if self.n > 1 else float("nan")

    @property
    def var_y(self) -> float:
        return self.m2_y / (self.n - 1) if self.n > 1 else float("nan")

    @property
    def cov_xy(self) -> float:
        return self.c_xy / (self.n - 1) if self.n > 1 else float("nan")

    @property
    def sum_x(self) -> float:
        return self.n * self.mean_x

    @property
    def sum_y(self) -> float:
        return self.n * self.mean_y

    def merge(self, other: Moments) -> Moments:
        """Moments of the union of two disjoint sets of units (Chan et al. 1979)."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        w = self.n * other.n / n
        return Moments(
            n=n,
            mean_x=self.mean_x + dx * other.n / n,
            mean_y=self.mean_y + dy * other.n / n,
            m2_x=self.m2_x + other.m2_x + dx * dx * w,
            m2_y=self.m2_y + other.m2_y + dy * dy * w,
            c_xy=self.c_xy + other.c_xy + dx * dy * w,
        )


def moments_from_row(row: Mapping[str, Any], prefix: str = "") -> Moments:
    """Read the columns that :func:`moment_exprs` produced (with the same prefix)."""
    n = int(row[prefix + "n"] or 0)
    if n == 0:
        return Moments.empty()

    def f(key: str) -> float:
        value = row[prefix + key]
        return float(value) if value is not None else 0.0

    return Moments(n, f("mean_x"), f("mean_y"), f("m2_x"), f("m2_y"), f("c_xy"))


def moments_from_sums(
    n: int, sx: float, sy: float, sxx: float, syy: float, sxy: float, *, ratio: bool
) -> Moments:
    """Centred moments from raw sums over ``n`` units (exact for counts; y is 1 unless ratio)."""
    if n == 0:
        return Moments.empty()
    mean_x = sx / n
    m2_x = max(sxx - sx * mean_x, 0.0)
    if not ratio:
        return Moments(n, mean_x, 1.0, m2_x)
    mean_y = sy / n
    return Moments(n, mean_x, mean_y, m2_x, max(syy - sy * mean_y, 0.0), sxy - sx * mean_y)
