"""What the report shows of a comparison, and the text helpers the figures and pages share.

Nothing here estimates anything. :func:`basis_view` picks, from a comparison
of the results, the numbers its verdict read (the record names them:
``verdict_basis``, ``verdict_lift_ci``, ``verdict_p_value_adjusted``);
:func:`why_inconclusive` says in words why an inconclusive verdict sits beside
an interval that excludes 0. Number and date formats are in
:mod:`analysis.report.text`, colours in :mod:`analysis.report.palette`.

Readers of a published ``results.json`` as a plain dict (the site index) may
pass it as it is: it is read into the typed model first
(:func:`as_results`, :func:`as_comparison`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, overload

from analysis.report.text import fmt_ci, fmt_p_eq
from analysis.results.model import Results
from analysis.results.records import ComparisonRecord, Pair

__all__ = [
    "BASIS_TEXT",
    "CATEGORY_ORDER",
    "BasisView",
    "as_comparison",
    "as_results",
    "basis_view",
    "ordered_comparisons",
    "primary_metric",
    "underpowered",
    "why_inconclusive",
]

#: Categories in the order the report shows them (others follow, alphabetically).
CATEGORY_ORDER: Final[tuple[str, ...]] = ("outcome", "effort", "trust", "guardrail")

BASIS_TEXT: Final[Mapping[str, str]] = {
    "fixed_horizon": "fixed-horizon test",
    "fixed_horizon_cuped": "fixed-horizon test on CUPED-adjusted values",
    "sequential": "always-valid (sequential) test",
    "sequential_cuped": "always-valid (sequential) test on CUPED-adjusted values",
}


def as_results(results: Results | Mapping[str, Any]) -> Results:
    """``results`` as the typed model: a dict (a parsed results.json) is validated."""
    return results if isinstance(results, Results) else Results.model_validate(results)


def as_comparison(comparison: ComparisonRecord | Mapping[str, Any]) -> ComparisonRecord:
    """``comparison`` as the typed record: a dict (from a parsed results.json) is validated."""
    if isinstance(comparison, ComparisonRecord):
        return comparison
    return ComparisonRecord.model_validate(comparison)


def _category_rank(category: str) -> tuple[int, str]:
    if category in CATEGORY_ORDER:
        return (CATEGORY_ORDER.index(category), "")
    return (len(CATEGORY_ORDER), category)


def ordered_comparisons(
    comparisons: Sequence[ComparisonRecord],
) -> list[tuple[str, list[ComparisonRecord]]]:
    """Comparisons grouped by category, in report order; results order kept inside a group."""
    groups: dict[str, list[ComparisonRecord]] = {}
    for comparison in comparisons:
        groups.setdefault(comparison.category or "other", []).append(comparison)
    return sorted(groups.items(), key=lambda item: _category_rank(item[0]))


@dataclass(frozen=True, slots=True)
class BasisView:
    """The numbers a comparison's verdict read (:func:`basis_view`).

    Attributes:
        basis: ``verdict_basis`` (``fixed_horizon`` when the record has none).
        lift: the lift of the basis's estimates (CUPED-adjusted when the basis is).
        ci: the interval of the verdict's own test (``verdict_lift_ci``); for a
            record without one, the always-valid interval of a sequential basis,
            else the fixed-horizon interval of its estimates.
        ci_kind: ``always-valid`` for a sequential basis, else ``fixed-horizon``.
        fixed_ci: the fixed-horizon interval around ``lift``.
        sequential_ci: the always-valid interval.
        cuped: whether ``lift`` is the CUPED-adjusted one.
        p_value: the adjusted p-value of the basis (``verdict_p_value_adjusted``;
            the fixed-horizon adjusted p-value for a record without it).
        raw_p_value: the basis's p-value before the multiplicity adjustment.
    """

    basis: str
    lift: float | None
    ci: Pair | None
    ci_kind: str
    fixed_ci: Pair | None
    sequential_ci: Pair | None
    cuped: bool
    p_value: float | None
    raw_p_value: float | None


def _view(c: ComparisonRecord) -> BasisView:
    basis = c.verdict_basis or "fixed_horizon"
    sequential = basis.startswith("sequential")
    cuped = basis.endswith("_cuped")
    estimate = c.cuped if cuped else c  # the estimates the basis used
    ci = c.verdict_lift_ci
    if ci is None:
        ci = c.sequential.lift_ci if sequential else estimate.lift_ci
    p_value = c.verdict_p_value_adjusted
    return BasisView(
        basis=basis,
        lift=estimate.lift,
        ci=ci,
        ci_kind="always-valid" if sequential else "fixed-horizon",
        fixed_ci=estimate.lift_ci,
        sequential_ci=c.sequential.lift_ci,
        cuped=cuped,
        p_value=p_value if p_value is not None else c.p_value_adjusted,
        raw_p_value=c.sequential.p_value if sequential else estimate.p_value,
    )


@overload
def basis_view(comparison: ComparisonRecord) -> BasisView: ...
@overload
def basis_view(comparison: Mapping[str, Any]) -> dict[str, Any]: ...
def basis_view(comparison: ComparisonRecord | Mapping[str, Any]) -> BasisView | dict[str, Any]:
    """The numbers the verdict reads, picked from a comparison (nothing is computed).

    ``verdict_basis`` names the result that decided: ``fixed_horizon`` or
    ``sequential``, with ``_cuped`` when the CUPED-adjusted estimates were used
    (:class:`BasisView`). A comparison given as a dict (a parsed results.json)
    gets the view as a dict, its intervals as ``[lo, hi]`` lists.
    """
    if isinstance(comparison, ComparisonRecord):
        return _view(comparison)
    view = asdict(_view(as_comparison(comparison)))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in view.items()}


def underpowered(comparison: ComparisonRecord) -> bool:
    """The test cannot yet detect the planned effect: ``mde_relative > planned_mde``."""
    mde, planned = comparison.power.mde_relative, comparison.power.planned_mde
    return mde is not None and planned is not None and mde > planned


def _excludes_zero(ci: Pair | None) -> bool:
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


def why_inconclusive(
    comparison: ComparisonRecord | Mapping[str, Any],
    alpha: float = 0.05,
    family_size: int | None = None,
) -> str | None:
    """Why an "inconclusive" verdict sits beside an interval that excludes 0, or None.

    The answer is a clause that follows "Why inconclusive:".

    Only for an inconclusive comparison whose shown interval (:func:`basis_view`)
    or fixed-horizon interval excludes 0; nothing is computed, the reasons are
    read from the numbers the results carry:

    - the multiplicity adjustment: the basis's p-value is below ``alpha`` but
      its adjusted p-value is not ("significant before adjusting for
      ``family_size`` comparisons");
    - the always-valid basis: the fixed-horizon interval excludes 0, but the
      always-valid interval the verdict reads does not.

    ``family_size`` is how many comparisons were adjusted together (Holm within
    the primary and within the secondary metrics); None when not known.
    """
    c = as_comparison(comparison)
    if c.verdict != "inconclusive":
        return None
    view = _view(c)
    shown, fixed = view.ci, view.fixed_ci
    if not (_excludes_zero(shown) or _excludes_zero(fixed)):
        return None
    raw, adjusted = view.raw_p_value, view.p_value
    level = f"{alpha:.4g}"
    if raw is not None and adjusted is not None and raw < alpha <= adjusted:
        many = (
            f"{family_size} comparisons"
            if family_size is not None and family_size > 1
            else "multiple comparisons"
        )
        return (
            f"significant before adjusting for {many} ({fmt_p_eq(raw)}), not after "
            f"(adjusted {fmt_p_eq(adjusted)}; alpha {level})"
        )
    sequential = view.basis.startswith("sequential")
    shown_includes = shown is not None or (raw is not None and raw >= alpha)
    if sequential and _excludes_zero(fixed) and not _excludes_zero(shown) and shown_includes:
        valid = f" ({fmt_ci(shown)})" if shown is not None else ""
        return (
            f"the fixed-horizon interval {fmt_ci(fixed)} excludes 0, but the always-valid "
            f"interval, which allows nightly looks, still includes 0{valid}"
        )
    basis = BASIS_TEXT.get(view.basis, view.basis)
    if raw is not None and raw >= alpha:
        return (
            f"an interval excludes 0, but the verdict reads the {basis}, which gives "
            f"{fmt_p_eq(raw)} before any adjustment (alpha {level})"
        )
    return (
        f"an interval excludes 0, but the verdict reads the {basis}: adjusted "
        f"{fmt_p_eq(adjusted)} (alpha {level})"
    )


def primary_metric(results: Results | Mapping[str, Any]) -> str | None:
    """The primary metric named in the experiment, else the first primary or any comparison's."""
    r = as_results(results)
    if r.experiment.metrics.primary is not None:
        return r.experiment.metrics.primary
    for comparison in r.comparisons:
        if comparison.role == "primary":
            return comparison.metric
    return r.comparisons[0].metric if r.comparisons else None
