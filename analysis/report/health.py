"""Health of a run in words: the banners above the results, and the index's short list.

A banner is a problem that must be seen before any number is read: a sample
ratio mismatch, failed or warning data checks, arms that differed before
exposure, a primary metric that cannot yet detect the planned effect.  The
thresholds are those the results carry (``srm.flagged``, ``pre_exposure.flagged``,
``power.planned_mde``); nothing is tested here.  Data checks are named in
plain words (:mod:`analysis.report.checks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from analysis.report.checks import check_item, check_words, failure_item
from analysis.report.formatting import as_results, primary_metric, underpowered
from analysis.report.sections_decay import decay_banner
from analysis.report.text import finite, fmt_count, fmt_days, fmt_p, fmt_p_eq, fmt_pct, fmt_share
from analysis.results.model import Results
from analysis.results.records import ComparisonRecord

__all__ = [
    "banners",
    "check_item",
    "check_words",
    "failure_items",
    "health_checks",
    "health_problems",
]


def failure_items(results: Results) -> list[dict[str, Any]]:
    """The failed data checks of a run, for the report's data section."""
    return [failure_item(f) for f in results.validation.failed_expectations]


def _primary(results: Results) -> list[ComparisonRecord]:
    marked = [c for c in results.comparisons if c.role == "primary"]
    if marked:
        return marked
    name = primary_metric(results)
    return [c for c in results.comparisons if c.metric == name]


def _arms_text(c: ComparisonRecord) -> str:
    return f"{c.treatment} vs {c.control}"


def banners(results: Results, validation_href: str | None) -> list[dict[str, Any]]:
    """Health problems that must be seen before any number is read, worst first."""
    found: list[dict[str, Any]] = []
    srm = results.srm
    if srm.flagged:
        expected, observed = srm.expected, srm.observed
        found.append(
            {
                "level": "critical",
                "id": "srm",
                "title": "Sample ratio mismatch",
                "text": (
                    "The arms' sizes do not match the configured split (SRM test "
                    f"{fmt_p_eq(srm.p_value)}). Assignment or logging may be broken: "
                    "do not trust the comparisons below until this is explained."
                ),
                "items": [
                    f"{arm}: {fmt_count(observed.get(arm))} units observed, "
                    f"{fmt_share(expected.get(arm))} expected"
                    for arm in [*expected, *[a for a in observed if a not in expected]]
                ],
                "link": None,
            }
        )
    validation = results.validation
    failed = validation.failed_expectations
    link = (
        {"href": validation_href, "text": "See the data quality page"} if validation_href else None
    )
    if validation.success is False:
        found.append(
            {
                "level": "critical",
                "id": "validation",
                "title": "Data validation failed",
                "text": (
                    f"{len(failed)} of {fmt_count(validation.expectations_evaluated)} "
                    "data checks failed. The numbers below were computed from data that broke "
                    "the contract; treat them with suspicion."
                ),
                "items": [failure_item(f) for f in failed],
                "link": link,
            }
        )
    elif failed:
        found.append(
            {
                "level": "warning",
                "id": "validation",
                "title": "Data validation warnings",
                "text": f"{len(failed)} non-critical data check(s) failed.",
                "items": [failure_item(f) for f in failed],
                "link": link,
            }
        )
    pre = results.pre_exposure
    if pre is not None and pre.flagged:
        adjusted = pre.p_values_adjusted
        found.append(
            {
                "level": "warning",
                "id": "pre-exposure",
                "title": "Arms differed before the experiment",
                "text": (
                    "Before anyone saw the feature, these metrics already differed between "
                    "arms more than chance allows. Randomisation or the data may be broken; "
                    "a difference after exposure may be partly old."
                ),
                "items": [f"{key}: adjusted p = {fmt_p(adjusted.get(key))}" for key in pre.flagged],
                "link": None,
            }
        )
    fading = decay_banner(results)
    if fading is not None:
        found.append(fading)
    weak = [c for c in _primary(results) if underpowered(c)]
    if weak:
        found.append(
            {
                "level": "warning",
                "id": "power",
                "title": "Primary metric underpowered",
                "text": (
                    "With the units so far, the test cannot yet reliably detect the effect the "
                    "experiment was planned for. An inconclusive result is expected; it is not "
                    "evidence of no effect."
                ),
                "items": [
                    f"{c.label or c.metric}, {_arms_text(c)}: detectable now "
                    f"\u00b1{fmt_pct(c.power.mde_relative)}, planned "
                    f"\u00b1{fmt_pct(c.power.planned_mde)}; time to the "
                    f"planned MDE: {fmt_days(c.power.days_to_planned_mde)}"
                    for c in weak
                ],
                "link": {"href": "#power", "text": "See the power section"},
            }
        )
    return found


def health_checks(results: Results) -> list[str]:
    """The checks that passed, in words, for the reassuring line under the verdict."""
    passed: list[str] = []
    srm = results.srm
    if not srm.flagged and srm.p_value is not None:
        passed.append(f"arm sizes as planned (SRM {fmt_p_eq(srm.p_value)})")
    validation = results.validation
    if validation.success is True and not validation.failed_expectations:
        passed.append(f"all {fmt_count(validation.expectations_evaluated)} data checks passed")
    pre = results.pre_exposure
    if pre is not None and not pre.flagged:
        passed.append(f"arms alike before exposure ({fmt_count(pre.tested)} checks)")
    powered = [c for c in _primary(results) if finite(c.power.mde_relative)]
    if powered and not any(underpowered(c) for c in powered):
        passed.append("primary metric powered for the planned effect")
    return passed


_SHORT_PROBLEMS: Final[Mapping[str, str]] = {
    "srm": "sample ratio mismatch",
    "pre-exposure": "arms differed before exposure",
    "power": "primary metric underpowered",
    "decay": "the effect is fading",
}


def health_problems(results: Results | Mapping[str, Any]) -> list[dict[str, str]]:
    """The report's health banners in a few words each, for the index.

    ``results`` may be a parsed results.json (a dict): it is read into the model first.
    """
    problems = []
    for banner in banners(as_results(results), None):
        if banner["id"] == "validation":
            text = (
                "data validation failed"
                if banner["level"] == "critical"
                else "data validation warnings"
            )
        else:
            text = _SHORT_PROBLEMS.get(banner["id"], str(banner["title"]).lower())
        problems.append({"level": banner["level"], "text": text})
    return problems
