"""The recommendation, with its reasons in plain words.

Rules, in order:
1. Data that can't be trusted — a sample-ratio mismatch, a failed critical
   validation, arms that differed before exposure, more than
   ``MAX_CROSSOVER_SHARE`` of the units assigned to two arms — or a primary
   metric that cannot be estimated (a typo in an event name, no events)
   means *investigate*, whatever the metrics say, with the reason.
2. Each treatment arm is judged on its own comparisons: an arm whose primary
   metric is significantly better and no primary or guardrail metric
   significantly worse — for a guardrail with a non-inferiority margin: shown
   not worse than the margin allows — can ship; with several such arms, the one with the
   largest primary gain is named. Trust metrics that got worse are named as
   reasons to watch.
3. No arm can ship, and some arm has a primary or guardrail metric
   significantly worse: *don't ship*.
4. Otherwise: *keep running* until the planned end, then *don't ship* — no
   detectable benefit is not a reason to ship.

Whatever the recommendation, every metric that got significantly worse is
named in the reasons ("Worse" when it blocks, "Watch" otherwise), and each
change is printed with the interval of the test that decided it
(``Comparison.verdict_lift_ci``), so a verdict never sits beside an interval
that contradicts it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.comparisons import Comparison
from analysis.config.experiments import Experiment
from analysis.measurement import Cleaning
from analysis.stats.balance import BalanceResult
from analysis.stats.srm import SrmResult

MAX_CROSSOVER_SHARE = 0.05
"""Above this share of units seen in two arms, excluding them could bias the comparison."""


@dataclass(frozen=True, slots=True)
class Decision:
    recommendation: str  # ship | don't ship | keep running | investigate
    reasons: tuple[str, ...]


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def _gain(c: Comparison) -> float:
    """How much better the treatment is, in the direction of the metric's goal."""
    r = c.basis_result
    lift = r.lift if r.lift is not None else r.diff or 0.0
    return lift if c.metric.goal == "increase" else -lift


def describe_change(c: Comparison, level: float) -> str:
    """E.g. 'Task completion rate: ai vs control +5.1% (95% CI +3.2% to +7.0%).'

    The numbers are those of the verdict's basis: CUPED-adjusted when CUPED
    applied, with the always-valid interval when the sequential result decides.
    """
    r = c.basis_result
    head = f"{c.metric.label}: {c.treatment} vs {c.control}"
    sequential = c.basis.startswith("sequential")
    kind = f"always-valid {level:.0%} CI" if sequential else f"{level:.0%} CI"
    diff_ci = c.sequential.diff_ci if sequential else r.diff_ci
    if r.lift is not None and c.verdict_lift_ci is not None:
        lo, hi = c.verdict_lift_ci
        return f"{head} {_pct(r.lift)} ({kind} {_pct(lo)} to {_pct(hi)})."
    if r.diff is not None and diff_ci is not None:
        lo, hi = diff_ci
        return f"{head} changed by {r.diff:+.4g} ({kind} {lo:+.4g} to {hi:+.4g})."
    return f"{head}: not estimable ({r.note or 'no data'})."


def _margin_text(c: Comparison) -> str:
    ni = c.noninferiority
    assert ni is not None
    return f"{ni.margin:.0%}"


def _unblocking_harm(
    comparisons: Sequence[Comparison],
    arms: Sequence[str],
    blocked_by: Sequence[Comparison],
    level: float,
) -> list[str]:
    """'Watch' reasons: every significant worsening of these arms that does not block."""
    return [
        f"Watch: {describe_change(c, level)} It got significantly "
        f"worse, though that does not block shipping ({_role_text(c)})."
        for c in comparisons
        if c.treatment in arms and c.verdict == "worse" and c not in blocked_by
    ]


def _role_text(c: Comparison) -> str:
    if c.noninferiority is not None:
        return f"a guardrail still within its margin of {_margin_text(c)}"
    kind = c.metric.category if c.role == "secondary" else c.role
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind} metric; only primary and guardrail metrics block"


def decide(
    experiment: Experiment,
    comparisons: Sequence[Comparison],
    srm: SrmResult,
    validation_ok: bool,
    as_of: dt.date,
    balance: BalanceResult | None = None,
    cleaning: Cleaning | None = None,
    described_guardrails: Sequence[str] = (),
) -> Decision:
    """The recommendation and its reasons.

    ``described_guardrails``: the labels of the guardrails that could not be
    compared (an AI-only metric with one AI arm has no arm to be compared
    with): the reasons say so, so that "no guardrail was breached" never
    covers them.
    """
    found = _decide(experiment, comparisons, srm, validation_ok, as_of, balance, cleaning)
    if not described_guardrails or found.recommendation == "investigate":
        return found
    names = " and ".join(described_guardrails)
    several = len(described_guardrails) > 1
    reasons = [
        r.replace("No guardrail was breached", "No compared guardrail was breached")
        for r in found.reasons
    ]
    reasons.append(
        f"Not compared: the guardrail{'s' if several else ''} {names} "
        f"{'are' if several else 'is'} AI-only and there is one AI arm, so "
        f"{'they are' if several else 'it is'} only described (the level is in the report); "
        "a second AI arm would be needed to compare. Check the level before acting."
    )
    return Decision(found.recommendation, tuple(reasons))


def _decide(
    experiment: Experiment,
    comparisons: Sequence[Comparison],
    srm: SrmResult,
    validation_ok: bool,
    as_of: dt.date,
    balance: BalanceResult | None,
    cleaning: Cleaning | None,
) -> Decision:
    level = 1 - experiment.alpha
    if srm.flagged:
        return Decision(
            "investigate",
            (
                "The arms are not the sizes the traffic split promises (sample-ratio mismatch, "
                f"p = {srm.p_value:.2g}); something in assignment or logging is broken, "
                "so no result can be trusted until it is explained.",
            ),
        )
    if not validation_ok:
        return Decision(
            "investigate",
            ("The input data failed validation; see the data quality section.",),
        )
    if balance is not None and balance.flagged:
        names = ", ".join(balance.flagged)
        return Decision(
            "investigate",
            (
                f"The arms already differed before exposure ({names}); randomisation or "
                "logging may be broken, so the comparison is not fair until it is explained.",
            ),
        )
    if cleaning is not None:
        crossed = cleaning.crossovers_excluded
        seen = crossed + sum(cleaning.units.values())
        if seen and crossed / seen > MAX_CROSSOVER_SHARE:
            return Decision(
                "investigate",
                (
                    f"{crossed:,} of {seen:,} units ({crossed / seen:.0%}) were assigned to more "
                    f"than one arm (more than {MAX_CROSSOVER_SHARE:.0%}); they are left out, and "
                    "leaving out that many can bias the comparison. Fix the assignment first.",
                ),
            )
    primary = [c for c in comparisons if c.role == "primary"]
    missing = [c for c in primary if c.basis_result.diff is None]
    if missing or not primary:
        reasons = [
            f"The primary metric cannot be estimated — {describe_change(c, level)}" for c in missing
        ] or [f"The primary metric {experiment.metrics.primary} has no comparison."]
        reasons.append(
            "Check the metric's event names in metrics.yaml and that the events table has "
            "data for the experiment's period; no verdict without the primary metric."
        )
        return Decision("investigate", tuple(reasons))
    ended = experiment.end is not None and as_of >= experiment.end
    # Each treatment arm is judged on the comparisons where it is the treatment
    # (for AI-only guardrails that is against the first AI arm).
    arms = list(dict.fromkeys(c.treatment for c in primary))
    shippable: list[Comparison] = []
    blocked: list[str] = []
    blocked_by: list[Comparison] = []
    pending: list[str] = []
    for arm in arms:
        own = [c for c in comparisons if c.treatment == arm]
        arm_primary = [c for c in primary if c.treatment == arm]
        worse = [
            c
            for c in own
            if c.role in ("primary", "guardrail")
            and (
                (c.verdict == "worse" and c.noninferiority is None)
                or (c.noninferiority is not None and c.noninferiority.inferior)
            )
        ]
        unproven = [
            c
            for c in own
            if c.noninferiority is not None
            and not c.noninferiority.passed
            and not c.noninferiority.inferior
        ]
        if worse:
            blocked += [f"Worse: {describe_change(c, level)}" for c in worse]
            blocked_by += worse
        elif any(c.verdict == "better" for c in arm_primary):
            if unproven:
                pending += [
                    f"Not yet shown: {describe_change(c, level)} It may not get worse by more "
                    f"than {_margin_text(c)}, and the data cannot rule that out yet."
                    for c in unproven
                ]
            else:
                shippable += [c for c in arm_primary if c.verdict == "better"]

    if shippable:
        best = max(shippable, key=_gain)
        reasons = [f"Better: {describe_change(c, level)}" for c in shippable]
        if len(arms) > 1:
            reasons.insert(
                0,
                f"Ship {best.treatment}: the largest improvement of the primary metric "
                "among the arms whose guardrails held.",
            )
        reasons += blocked + pending
        watch = _unblocking_harm(comparisons, [best.treatment], blocked_by, level)
        reasons += watch
        if not watch and not blocked:
            reasons.append("No guardrail was breached and no metric got significantly worse.")
        return Decision("ship", tuple(reasons))
    watch = _unblocking_harm(comparisons, arms, blocked_by, level)
    if pending:
        if ended:
            return Decision("don't ship", (*pending, "The planned end is reached.", *watch))
        return Decision("keep running", (*pending, *blocked, *watch))
    if blocked:
        return Decision("don't ship", (*blocked, *watch))

    reasons = [f"Inconclusive: {describe_change(c, level)}" for c in primary]
    reasons += watch
    if ended:
        reasons.append(
            "The planned end is reached without a detectable improvement of the primary metric."
        )
        return Decision("don't ship", tuple(reasons))
    reasons.append(
        "Not enough evidence yet either way; keep collecting data until the planned end."
    )
    return Decision("keep running", tuple(reasons))
