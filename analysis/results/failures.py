"""The ``failure_patterns`` record of results.json, from :mod:`analysis.failure_patterns`."""

from __future__ import annotations

from analysis.failure_patterns import FailurePatterns
from analysis.failures import MAX_DISTINCT, MAX_LABEL_LENGTH
from analysis.results.comparison import num, pair
from analysis.results.records import FailurePatternsRecord, LabelMoveRecord, LabelShareRecord


def failure_patterns_record(patterns: FailurePatterns) -> FailurePatternsRecord:
    return FailurePatternsRecord(
        shares=tuple(
            LabelShareRecord(
                event=s.failure.event,
                label=s.failure.label,
                arm=s.arm,
                units=s.estimate.n,
                share=num(s.estimate.value),
                ci=pair(s.ci),
            )
            for s in patterns.shares
        ),
        moves=tuple(
            LabelMoveRecord(
                event=m.failure.event,
                label=m.failure.label,
                control=m.control,
                treatment=m.treatment,
                control_share=num(m.result.control.value),
                treatment_share=num(m.result.treatment.value),
                diff=num(m.result.diff),
                diff_ci=pair(m.result.diff_ci),
                p_value=num(m.result.p_value),
                p_value_adjusted=num(m.p_adjusted),
                note=m.result.note,
            )
            for m in patterns.moves
        ),
        labels_found=patterns.distinct,
        reason=None if patterns.shares else _none_because(patterns.distinct),
    )


def _none_because(distinct: int) -> str:
    if distinct > MAX_DISTINCT:
        return (
            f"the rejections and errors carry more than {MAX_DISTINCT} distinct labels, "
            "too many to be categories (ids or free text?)"
        )
    return f"their labels are empty or longer than {MAX_LABEL_LENGTH} characters"
