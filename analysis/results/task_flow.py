"""The ``task_flow`` record of results.json, from :mod:`analysis.task_flow`."""

from __future__ import annotations

from analysis.results.comparison import num, pair
from analysis.results.records import (
    FlowComparisonRecord,
    FlowDivergenceRecord,
    FlowShareRecord,
    TaskFlowRecord,
)
from analysis.task_flow import WORDS, TaskFlow


def task_flow_record(flow: TaskFlow) -> TaskFlowRecord:
    return TaskFlowRecord(
        shares=tuple(
            FlowShareRecord(
                step=s.step,
                label=WORDS[s.step],
                arm=s.arm,
                units=s.estimate.n,
                share=num(s.estimate.value),
                ci=pair(s.ci),
            )
            for s in flow.shares
        ),
        comparisons=tuple(
            FlowComparisonRecord(
                step=c.step,
                label=WORDS[c.step],
                control=c.control,
                treatment=c.treatment,
                control_share=num(c.result.control.value),
                treatment_share=num(c.result.treatment.value),
                diff=num(c.result.diff),
                diff_ci=pair(c.result.diff_ci),
                p_value=num(c.result.p_value),
                p_value_adjusted=num(c.p_adjusted),
                note=c.result.note,
            )
            for c in flow.comparisons
        ),
        diverges=tuple(
            FlowDivergenceRecord(
                control=control,
                treatment=treatment,
                step=None if c is None else c.step,
                label=None if c is None else WORDS[c.step],
                diff=None if c is None else num(c.result.diff),
                diff_ci=None if c is None else pair(c.result.diff_ci),
            )
            for (control, treatment), c in flow.diverges.items()
        ),
    )
