"""Were the arms alike before exposure? The pre-period as a randomisation check.

Each metric's pre-period value (the CUPED covariate) is compared between the
control and each treatment arm with the metric's own fixed-horizon test;
Bonferroni across all (metric, arm) tests, flagged at adjusted p < 0.001
(analysis.stats.balance).
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.aggregates import Moments
from analysis.comparisons import arm_pairs
from analysis.config.experiments import Experiment, Metric
from analysis.joint import JointMoments
from analysis.measurement import ArmData
from analysis.stats.balance import BalanceResult, pre_exposure_check
from analysis.stats.inference import delta_ratio_test, welch_test


def _pre(m: JointMoments, ratio: bool) -> Moments:
    return m.marginal(2, 3) if ratio else m.marginal(1)


def balance_check(
    experiment: Experiment, metrics: Sequence[Metric], data: ArmData
) -> BalanceResult | None:
    """None when there is no pre-period to compare."""
    if experiment.pre_window_days == 0 or not data.joint:
        return None
    p_values: dict[str, float | None] = {}
    for metric in metrics:
        joint = data.joint.get(metric.name)
        if joint is None:
            continue
        ratio = metric.kind == "ratio"
        k = 4 if ratio else 2
        for control, treatment in arm_pairs(experiment, metric):
            c = _pre(joint.get(control, JointMoments.empty(k)), ratio)
            t = _pre(joint.get(treatment, JointMoments.empty(k)), ratio)
            test = delta_ratio_test if ratio else welch_test
            p_values[f"{metric.name} ({treatment} vs {control})"] = test(
                c, t, experiment.alpha
            ).p_value
    return pre_exposure_check(p_values)
