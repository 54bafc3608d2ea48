"""The recommendation, with its reasons in plain words.

Rules, in order:
1. Data that can't be trusted — a sample-ratio mismatch, a failed critical
   validation, or arms that differed before exposure — means *investigate*,
   whatever the metrics say.
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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.comparisons import Comparison
from analysis.config import Experiment
from analysis.stats.balance import BalanceResult
from analysis.stats.srm import SrmResult


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
    lift_ci = c.sequential.lift_ci if sequential else r.lift_ci
    diff_ci = c.sequential.diff_ci if sequential else r.diff_ci
    if r.lift is not None and lift_ci is not None:
        lo, hi = lift_ci
        return f"{head} {_pct(r.lift)} ({kind} {_pct(lo)} to {_pct(hi)})."
    if r.diff is not None and diff_ci is not None:
        lo, hi = diff_ci
        return f"{head} changed by {r.diff:+.4g} ({kind} {lo:+.4g} to {hi:+.4g})."
    return f"{head}: not estimable ({r.note or 'no data'})."


def _margin_text(c: Comparison) -> str:
    ni = c.noninferiority
    assert ni is not None
    return f"{ni.margin:.0%}"


def decide(
    experiment: Experiment,
    comparisons: Sequence[Comparison],
    srm: SrmResult,
    validation_ok: bool,
    as_of: dt.date,
    balance: BalanceResult | None = None,
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
    ended = experiment.end is not None and as_of >= experiment.end
    primary = [c for c in comparisons if c.role == "primary"]
    # Each treatment arm is judged on the comparisons where it is the treatment
    # (for AI-only guardrails that is against the first AI arm).
    arms = list(dict.fromkeys(c.treatment for c in primary))
    shippable: list[Comparison] = []
    blocked: list[str] = []
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
        worse_trust = [
            c
            for c in comparisons
            if c.treatment == best.treatment
            and c.metric.category == "trust"
            and c.verdict == "worse"
        ]
        reasons += [f"Watch: {describe_change(c, level)}" for c in worse_trust]
        if not worse_trust and not blocked:
            reasons.append("No guardrail was breached and no trust metric got significantly worse.")
        return Decision("ship", tuple(reasons))
    if pending:
        if ended:
            return Decision("don't ship", (*pending, "The planned end is reached."))
        return Decision("keep running", (*pending, *blocked))
    if blocked:
        return Decision("don't ship", tuple(blocked))

    reasons = [f"Inconclusive: {describe_change(c, level)}" for c in primary]
    if ended:
        reasons.append(
            "The planned end is reached without a detectable improvement of the primary metric."
        )
        return Decision("don't ship", tuple(reasons))
    reasons.append(
        "Not enough evidence yet either way; keep collecting data until the planned end."
    )
    return Decision("keep running", tuple(reasons))
