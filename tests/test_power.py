"""Reference-value tests of ``analysis.stats.power``.

Expected values come from:

* statsmodels' ``NormalIndPower`` on the standardized effect d = delta / sigma
  with equal variances sigma^2 in both arms, so ``Var_C + Var_T = sigma^2
  (1/n1 + 1/n2)`` and ``MDE = d * sigma``:
  - ``power(effect_size=MDE / sigma, alternative="larger", alpha=alpha/2)``
    must return the requested power exactly (1e-12): the one-sided test at
    alpha / 2 is the formula's model;
  - the two-sided ``power(...)`` at the MDE: the requested power plus the
    wrong-direction tail Phi(-2 z_{1-alpha/2} - z_{power}), exactly (1e-12);
  - ``solve_power(effect_size=None, ...)``, one- and two-sided, to 1e-4 relative
    only: statsmodels' root finder stops when the power is within ~1e-5 of the
    target (measured errors in the solved effect: 1e-6 to 6e-5 on these cases);
  - ``solve_power(nobs1=None, ...)`` (accurate to ~1e-9) for the days to a planned MDE;
* Kohavi, Tang & Xu (2020) ch. 17 rule of thumb ``n = 16 sigma^2 / delta^2`` per arm
  (alpha 0.05, power 0.8: 2 (1.96 + 0.84)^2 = 15.7), as a sanity check.
"""

from __future__ import annotations

import math

import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from analysis.stats.inference import ArmEstimate
from analysis.stats.power import DaysToMde, MdeResult, days_to_mde, mde

CASES = [  # (n_control, ratio n_t / n_c, alpha, power)
    (400, 1.5, 0.05, 0.8),
    (1000, 1.0, 0.05, 0.9),
    (50, 3.0, 0.1, 0.8),
    (20000, 0.5, 0.01, 0.8),
]


def arms(sigma: float, n_c: int, ratio: float, mean_c: float = 10.0) -> tuple[ArmEstimate, ...]:
    n_t = round(n_c * ratio)
    return (
        ArmEstimate(n_c, mean_c, sigma**2 / n_c),
        ArmEstimate(n_t, mean_c * 1.01, sigma**2 / n_t),
    )


@pytest.mark.parametrize(("n_c", "ratio", "alpha", "power"), CASES)
def test_mde_matches_statsmodels_normal_ind_power(
    n_c: int, ratio: float, alpha: float, power: float
) -> None:
    sigma = 3.0
    control, treatment = arms(sigma, n_c, ratio)
    ratio = treatment.n / control.n
    res = mde(control, treatment, alpha, power)
    assert res.absolute is not None
    assert res.relative is not None
    assert res.note is None
    d = res.absolute / sigma  # standardized MDE

    # Exact route: the power at the MDE is the requested one (one-sided at alpha / 2).
    pw = NormalIndPower().power(
        effect_size=d, nobs1=control.n, ratio=ratio, alpha=alpha / 2, alternative="larger"
    )
    assert pw == pytest.approx(power, rel=1e-12)
    # Solver route (brentq tolerance, see module docstring).
    solved = NormalIndPower().solve_power(
        effect_size=None,
        nobs1=control.n,
        ratio=ratio,
        alpha=alpha / 2,
        power=power,
        alternative="larger",
    )
    assert d == pytest.approx(solved, rel=1e-4)
    two_sided = NormalIndPower().solve_power(
        effect_size=None, nobs1=control.n, ratio=ratio, alpha=alpha, power=power
    )
    assert d == pytest.approx(two_sided, rel=1e-4)
    # The two-sided power at the MDE adds the wrong-direction tail, exactly.
    pw2 = NormalIndPower().power(effect_size=d, nobs1=control.n, ratio=ratio, alpha=alpha)
    far_tail = stats.norm.cdf(-2 * stats.norm.ppf(1 - alpha / 2) - stats.norm.ppf(power))
    assert pw2 == pytest.approx(power + far_tail, rel=1e-12)

    # Relative MDE: divided by |control value| (10).
    assert res.relative == pytest.approx(res.absolute / 10.0, rel=1e-15)
    assert (res.alpha, res.power) == (alpha, power)


def test_mde_closed_form() -> None:
    # Var_C + Var_T = 0.01 + 0.03 = 0.04, sqrt = 0.2.  alpha 0.05, power 0.8:
    # z_0.975 + z_0.8 = 1.959963984540054 + 0.8416212335729143 = 2.8015852181129683
    # (scipy.stats.norm.ppf, also Abramowitz & Stegun table 26.5).
    # MDE = 0.56031704362259366; control value -4 -> relative 0.14007926090564842.
    res = mde(ArmEstimate(100, -4.0, 0.01), ArmEstimate(100, -3.0, 0.03), 0.05)
    assert res == MdeResult(
        pytest.approx(0.56031704362259366, rel=1e-12),  # type: ignore[arg-type]
        pytest.approx(0.14007926090564842, rel=1e-12),  # type: ignore[arg-type]
        0.05,
        0.8,
        None,
    )


def test_mde_rule_of_thumb_16_sigma2_over_delta2() -> None:
    # Kohavi et al.: n = 16 sigma^2 / delta^2 per arm detects delta (alpha 0.05, power 0.8).
    # Exactly: n = 2 (z_0.975 + z_0.8)^2 sigma^2 / delta^2 = 15.70 sigma^2 / delta^2,
    # so with n = 16 sigma^2 / delta^2 the MDE is delta * sqrt(15.70 / 16).
    sigma, delta = 2.0, 0.1
    n = round(16 * sigma**2 / delta**2)  # 1600
    res = mde(ArmEstimate(n, 1.0, sigma**2 / n), ArmEstimate(n, 1.0, sigma**2 / n), 0.05)
    assert res.absolute is not None
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert res.absolute == pytest.approx(delta * math.sqrt(2 * z**2 / 16), rel=1e-12)
    assert res.absolute == pytest.approx(delta, rel=0.01)


def test_mde_scales_with_one_over_sqrt_n() -> None:
    # Four times the units halves the MDE.
    small = mde(ArmEstimate(100, 2.0, 0.04), ArmEstimate(100, 2.0, 0.04), 0.05)
    large = mde(ArmEstimate(400, 2.0, 0.01), ArmEstimate(400, 2.0, 0.01), 0.05)
    assert small.absolute is not None
    assert large.absolute is not None
    assert large.absolute == pytest.approx(small.absolute / 2, rel=1e-12)


@pytest.mark.parametrize(
    ("control", "treatment", "word"),
    [
        (ArmEstimate(1, 1.0, math.nan), ArmEstimate(10, 1.0, 0.1), "2 units"),
        (ArmEstimate(10, 1.0, 0.1), ArmEstimate(0, math.nan, math.nan), "2 units"),
        (ArmEstimate(10, math.nan, math.nan), ArmEstimate(10, 1.0, 0.1), "undefined"),
        (ArmEstimate(10, 1.0, 0.0), ArmEstimate(10, 1.0, 0.0), "variation"),
    ],
)
def test_mde_undefined_gives_none_and_a_note(
    control: ArmEstimate, treatment: ArmEstimate, word: str
) -> None:
    res = mde(control, treatment, 0.05)
    assert res.absolute is None
    assert res.relative is None
    assert res.note is not None
    assert word in res.note


def test_mde_control_zero_gives_absolute_only() -> None:
    res = mde(ArmEstimate(50, 0.0, 0.01), ArmEstimate(50, 0.1, 0.01), 0.05)
    assert res.absolute is not None
    assert res.relative is None
    assert res.note is not None
    assert "control" in res.note


@pytest.mark.parametrize(("alpha", "power"), [(0.0, 0.8), (1.0, 0.8), (0.05, 0.0), (0.05, 1.0)])
def test_mde_rejects_invalid_levels(alpha: float, power: float) -> None:
    with pytest.raises(ValueError, match="must lie in"):
        mde(ArmEstimate(50, 1.0, 0.01), ArmEstimate(50, 1.0, 0.01), alpha, power)


# --- days to the planned MDE ---------------------------------------------------------------


@pytest.mark.parametrize(("target", "days_elapsed"), [(0.02, 7.0), (0.05, 3.0), (0.01, 14.0)])
def test_days_to_mde_matches_statsmodels_sample_size(target: float, days_elapsed: float) -> None:
    # Units accrue at `rate` per arm per day; sigma = 4, control mean 20.
    # Reference: the units per arm that detect target * 20 with power 0.8
    # (statsmodels solve_power for nobs1, one-sided at alpha / 2 as the formula),
    # divided by the daily rate.
    sigma, mean_c, rate, alpha = 4.0, 20.0, 150.0, 0.05
    n_now = round(rate * days_elapsed)
    now = mde(
        ArmEstimate(n_now, mean_c, sigma**2 / n_now),
        ArmEstimate(n_now, mean_c, sigma**2 / n_now),
        alpha,
    )
    res = days_to_mde(target, now.relative, days_elapsed)
    n_needed = NormalIndPower().solve_power(
        effect_size=target * mean_c / sigma,
        nobs1=None,
        ratio=1.0,
        alpha=alpha / 2,
        power=0.8,
        alternative="larger",
    )
    assert res.days_needed is not None
    assert res.days_remaining is not None
    assert res.days_needed == pytest.approx(n_needed / rate, rel=1e-6)
    assert res.days_remaining == pytest.approx(max(0.0, n_needed / rate - days_elapsed), rel=1e-6)


def test_days_to_mde_closed_form() -> None:
    # MDE now 4 %, target 2 %: four times the units, so 4 x 10 = 40 days, 30 remaining.
    assert days_to_mde(0.02, 0.04, 10.0) == DaysToMde(
        pytest.approx(40.0, rel=1e-12),  # type: ignore[arg-type]
        pytest.approx(30.0, rel=1e-12),  # type: ignore[arg-type]
        None,
    )


def test_days_to_mde_already_reached() -> None:
    # MDE now 1 %, target 2 %: reachable after a quarter of the 8 days.
    res = days_to_mde(0.02, 0.01, 8.0)
    assert res.days_needed == pytest.approx(2.0, rel=1e-12)
    assert res.days_remaining == 0.0
    assert res.note is not None
    assert "already" in res.note


@pytest.mark.parametrize(
    ("target", "current", "days", "word"),
    [
        (0.02, None, 5.0, "no current MDE"),
        (0.02, math.nan, 5.0, "no current MDE"),
        (0.02, math.inf, 5.0, "no current MDE"),
        (0.0, 0.05, 5.0, "planned MDE"),
        (-0.1, 0.05, 5.0, "planned MDE"),
        (0.02, 0.05, 0.0, "elapsed"),
        (0.02, 0.0, 5.0, "0"),
    ],
)
def test_days_to_mde_not_estimable(
    target: float, current: float | None, days: float, word: str
) -> None:
    res = days_to_mde(target, current, days)
    assert res.days_needed is None
    assert res.days_remaining is None
    assert res.note is not None
    assert word in res.note
