"""Health of a run in words: the banners above the results, and the index's short list.

A banner is a problem that must be seen before any number is read: a sample
ratio mismatch, failed or warning data checks, arms that differed before
exposure, a primary metric that cannot yet detect the planned effect.  The
thresholds are those the results carry (``srm.flagged``, ``pre_exposure.flagged``,
``power.planned_mde``); nothing is tested here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from analysis.report.figures import underpowered
from analysis.report.formatting import (
    finite,
    fmt_count,
    fmt_days,
    fmt_p,
    fmt_p_eq,
    fmt_pct,
    fmt_share,
    primary_metric,
)

__all__ = ["banners", "expectation_text", "health_checks", "health_problems"]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def expectation_text(failed: Mapping[str, Any]) -> str:
    """``[critical] events.unit_id: expect_..., 57 unexpected row(s)``."""
    column = failed.get("column")
    where = f"{failed.get('table')}.{column}" if column else str(failed.get("table"))
    count = failed.get("unexpected_count")
    rows = f", {fmt_count(count)} unexpected row(s)" if count is not None else ""
    return f"[{failed.get('severity')}] {where}: {failed.get('expectation')}{rows}"


def _primary(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    comparisons = [c for c in _list(results.get("comparisons")) if isinstance(c, Mapping)]
    marked = [c for c in comparisons if c.get("role") == "primary"]
    if marked:
        return marked
    name = primary_metric(results)
    return [c for c in comparisons if c.get("metric") == name]


def _arms_text(c: Mapping[str, Any]) -> str:
    return f"{c.get('treatment')} vs {c.get('control')}"


def banners(results: Mapping[str, Any], validation_href: str | None) -> list[dict[str, Any]]:
    """Health problems that must be seen before any number is read, worst first."""
    found: list[dict[str, Any]] = []
    srm = _mapping(results.get("srm"))
    if srm.get("flagged"):
        expected = _mapping(srm.get("expected"))
        observed = _mapping(srm.get("observed"))
        found.append(
            {
                "level": "critical",
                "id": "srm",
                "title": "Sample ratio mismatch",
                "text": (
                    "The arms' sizes do not match the configured split (SRM test "
                    f"{fmt_p_eq(srm.get('p_value'))}). Assignment or logging may be broken: "
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
    validation = _mapping(results.get("validation"))
    failed = [f for f in _list(validation.get("failed_expectations")) if isinstance(f, Mapping)]
    link = (
        {"href": validation_href, "text": "See the data quality page"} if validation_href else None
    )
    if validation.get("success") is False:
        found.append(
            {
                "level": "critical",
                "id": "validation",
                "title": "Data validation failed",
                "text": (
                    f"{len(failed)} of {fmt_count(validation.get('expectations_evaluated'))} "
                    "data checks failed. The numbers below were computed from data that broke "
                    "the contract; treat them with suspicion."
                ),
                "items": [expectation_text(f) for f in failed],
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
                "items": [expectation_text(f) for f in failed],
                "link": link,
            }
        )
    pre = _mapping(results.get("pre_exposure"))
    flagged = [str(f) for f in _list(pre.get("flagged"))]
    if flagged:
        adjusted = _mapping(pre.get("p_values_adjusted"))
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
                "items": [f"{key}: adjusted p = {fmt_p(adjusted.get(key))}" for key in flagged],
                "link": None,
            }
        )
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
                    f"{c.get('label') or c.get('metric')}, {_arms_text(c)}: detectable now "
                    f"\u00b1{fmt_pct(_mapping(c.get('power')).get('mde_relative'))}, planned "
                    f"\u00b1{fmt_pct(_mapping(c.get('power')).get('planned_mde'))}; time to the "
                    f"planned MDE: {fmt_days(_mapping(c.get('power')).get('days_to_planned_mde'))}"
                    for c in weak
                ],
                "link": {"href": "#power", "text": "See the power section"},
            }
        )
    return found


def health_checks(results: Mapping[str, Any]) -> list[str]:
    """The checks that passed, in words, for the reassuring line under the verdict."""
    passed: list[str] = []
    srm = _mapping(results.get("srm"))
    if srm and not srm.get("flagged") and finite(srm.get("p_value")):
        passed.append(f"arm sizes as planned (SRM {fmt_p_eq(srm.get('p_value'))})")
    validation = _mapping(results.get("validation"))
    if validation.get("success") is True and not validation.get("failed_expectations"):
        passed.append(
            f"all {fmt_count(validation.get('expectations_evaluated'))} data checks passed"
        )
    pre = _mapping(results.get("pre_exposure"))
    if pre and not pre.get("flagged"):
        passed.append(f"arms alike before exposure ({fmt_count(pre.get('tested'))} checks)")
    primary = _primary(results)
    powered = [c for c in primary if finite(_mapping(c.get("power")).get("mde_relative"))]
    if powered and not any(underpowered(c) for c in powered):
        passed.append("primary metric powered for the planned effect")
    return passed


_SHORT_PROBLEMS: Final[Mapping[str, str]] = {
    "srm": "sample ratio mismatch",
    "pre-exposure": "arms differed before exposure",
    "power": "primary metric underpowered",
}


def health_problems(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """The report's health banners in a few words each, for the index."""
    problems = []
    for banner in banners(results, None):
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
