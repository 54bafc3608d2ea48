"""Every comparison an experiment asks for: each metric, each treatment arm.

Which arms are compared:
* a metric defined for every arm: each treatment arm against the control;
* an AI-only metric (``ai_only: true``): each further AI arm against the first
  AI arm; with a single AI arm it is only described, never compared to a
  control that cannot have it.

Each comparison carries the fixed-horizon result (the contract's main
fields), the CUPED-adjusted result where a pre-period allows it, the
always-valid confidence sequence, and a Bayesian reading of the lift.
The *verdict basis* is the result that decides better/worse/inconclusive:
the sequential one while the experiment runs (nightly reads must not inflate
false positives), the fixed-horizon one once its planned end is reached —
each CUPED-adjusted when CUPED applied (``statistics.verdict_basis`` in the
experiment config overrides this).

After the planned end the data stop at ``end`` (``Experiment.data_through``): the
final, fixed-horizon reading is then the same every night, instead of a
fixed-horizon test read again on growing data.

Multiple comparisons: the primary metric of a two-arm test is not corrected;
with several treatment arms it is Holm-corrected across those arms; the
secondary metrics × arms are Holm-corrected together (Holm 1979, "A simple
sequentially rejective multiple test procedure"). Guardrails are tested on
their own, uncorrected: "do no harm on any guardrail" is an intersection-union
rule, so correcting it for multiplicity would make blocking harder, not the
decision safer (Schultzberg, Ankargren & Frånberg 2024, "Risk-aware product
decisions in A/B tests with multiple metrics"). The verdict reads the
adjusted p-value of its basis.

Guardrails with a margin are non-inferiority tests whose bound is an end of
the two-sided ``1 - alpha`` interval of the basis: the always-valid sequence
while it runs, the fixed-horizon interval after the end
(:mod:`analysis.stats.noninferiority`).

The interval the verdict's reasons print (``verdict_lift_ci``) is Fieller's
interval of the basis's own test (:func:`analysis.stats.inference.fieller_lift_ci`),
so it excludes 0 exactly when the unadjusted basis p-value is below alpha.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from scipy import stats

from analysis.aggregates import Moments
from analysis.config.experiments import Experiment, Metric
from analysis.joint import JointMoments
from analysis.measurement import ArmData
from analysis.stats.bayes import BayesResult, GaussianPrior, bayesian_lift
from analysis.stats.cuped import CupedOutcome, cuped_estimates
from analysis.stats.inference import (
    TwoArmResult,
    compare,
    delta_ratio_test,
    fieller_lift_ci,
    welch_test,
)
from analysis.stats.multiplicity import holm
from analysis.stats.noninferiority import (
    NonInferiorityResult,
    noninferiority_sequential,
    noninferiority_test,
)
from analysis.stats.power import DaysToMde, MdeResult, days_to_mde, mde
from analysis.stats.quantile import QuantileSummary, compare_summaries, summary_estimate
from analysis.stats.sequential import (
    SequentialResult,
    sequential_halfwidth,
    sequential_interval,
    sequential_rho,
)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One metric, one treatment arm against its baseline arm.

    Attributes:
        result: the fixed-horizon comparison (the contract's main fields).
        cuped: the CUPED outcome (adjusted estimates or why not), None for quantiles.
        cuped_result: the comparison of the CUPED-adjusted estimates, when applied.
        sequential: the always-valid interval of the basis estimates.
        bayes: posterior of the lift of the basis estimates.
        basis: which result drives the verdict, e.g. ``sequential_cuped``.
        p_value_adjusted: Holm-adjusted fixed-horizon p-value.
        verdict_p_value: Holm-adjusted p-value of the basis.
        mde: the minimum detectable effect with the units so far.
        noninferiority: the one-sided test against the guardrail's margin, if it has one.
        verdict_lift_ci: Fieller's lift interval of the basis's test (module docstring).
        to_planned_mde: the days until ``mde`` reaches the planned MDE, at the accrual so far.
    """

    metric: Metric
    role: str  # primary | secondary | guardrail
    control: str
    treatment: str
    result: TwoArmResult
    cuped: CupedOutcome | None
    cuped_result: TwoArmResult | None
    sequential: SequentialResult
    bayes: BayesResult
    basis: str
    p_value_adjusted: float | None
    verdict_p_value: float | None
    verdict: str  # better | worse | inconclusive
    mde: MdeResult
    noninferiority: NonInferiorityResult | None = None
    verdict_lift_ci: tuple[float, float] | None = None
    to_planned_mde: DaysToMde | None = None

    @property
    def cuped_note(self) -> str | None:
        """Why CUPED was not applied, or the note of the CUPED-adjusted comparison."""
        if self.cuped is None:
            return "not for quantiles"
        if self.cuped_result is None:
            return self.cuped.skip_reason or "not estimable"
        return self.cuped_result.note

    @property
    def basis_result(self) -> TwoArmResult:
        """The fixed-horizon result whose estimates the basis uses."""
        return self.cuped_result if self.cuped_result is not None else self.result

    @property
    def basis_p_value(self) -> float | None:
        if self.basis.startswith("sequential"):
            return self.sequential.p_value
        return self.basis_result.p_value


@dataclass(frozen=True, slots=True)
class Description:
    """An arm's value of a metric that has nothing to be compared with."""

    metric: Metric
    variant: str
    n: int
    value: float | None


def arm_pairs(experiment: Experiment, metric: Metric) -> list[tuple[str, str]]:
    if metric.ai_only:
        ai = experiment.ai_variants()
        return [(ai[0], t) for t in ai[1:]]
    return [(experiment.control, t) for t in experiment.treatments()]


def sequential_drives(experiment: Experiment, as_of: dt.date) -> bool:
    """Whether the sequential result drives verdicts at this analysis date."""
    choice = experiment.statistics.verdict_basis
    if choice != "auto":
        return choice == "sequential"
    return experiment.end is None or as_of < experiment.end


def _critical_value(
    result: TwoArmResult, sequential: bool, alpha: float, n_star: int
) -> float | None:
    """The multiple of the standard error at which the basis's test rejects at ``alpha``."""
    if sequential:
        n = result.control.n + result.treatment.n
        if n < 1:
            return None
        return sequential_halfwidth(1.0, n, alpha, sequential_rho(alpha, n_star))
    if result.df is None:
        return None
    return float(stats.t.ppf(1 - alpha / 2, result.df))


def verdict_interval(
    result: TwoArmResult, sequential: bool, alpha: float, n_star: int
) -> tuple[float, float] | None:
    """Fieller's lift interval at the critical value of the basis's test (module docstring)."""
    if result.diff is None or result.lift is None:
        return None
    q = _critical_value(result, sequential, alpha, n_star)
    return None if q is None else fieller_lift_ci(result.control, result.treatment, q)


def guardrail_test(
    metric: Metric,
    result: TwoArmResult,
    margin: float,
    sequential: bool,
    alpha: float,
    n_star: int,
) -> NonInferiorityResult:
    """Non-inferiority against ``margin`` with the bound at the end of the basis's interval."""
    if sequential:
        return noninferiority_sequential(
            result.control, result.treatment, margin, metric.goal, alpha, n_star
        )
    return noninferiority_test(
        result.control,
        result.treatment,
        margin,
        metric.goal,
        alpha / 2,
        math.inf if metric.kind == "quantile" else None,
    )


def fixed_test(
    metric: Metric,
    control: str,
    treatment: str,
    data: ArmData,
    alpha: float,
) -> TwoArmResult:
    if metric.kind == "quantile":
        assert metric.quantile is not None
        return compare_summaries(
            _summary(metric, control, data, alpha), _summary(metric, treatment, data, alpha), alpha
        )
    moments = data.moments.get(metric.name, {})
    c, t = moments.get(control, Moments.empty()), moments.get(treatment, Moments.empty())
    if metric.kind == "ratio":
        return delta_ratio_test(c, t, alpha)
    return welch_test(c, t, alpha)


def _cuped(
    metric: Metric, control: str, treatment: str, data: ArmData, experiment: Experiment
) -> tuple[CupedOutcome | None, TwoArmResult | None]:
    if metric.kind == "quantile":
        return None, None
    kind: Literal["mean", "ratio"] = "ratio" if metric.kind == "ratio" else "mean"
    method = f"cuped_{'delta_method' if kind == 'ratio' else 'welch'}_t"

    def skipped(reason: str) -> tuple[CupedOutcome, None]:
        return CupedOutcome(None, None, None, None, method, reason), None

    if not experiment.statistics.cuped:
        return skipped("CUPED is turned off in the experiment config")
    if experiment.pre_window_days == 0:
        return skipped("no pre-period (pre_window_days is 0)")
    joint = data.joint.get(metric.name)
    if joint is None:
        return skipped(
            "the metric has no per-unit pre-period value (a mean of event values "
            "is undefined for units without such events)"
        )
    k = 4 if kind == "ratio" else 2
    outcome = cuped_estimates(
        joint.get(control, JointMoments.empty(k)),
        joint.get(treatment, JointMoments.empty(k)),
        kind,
    )
    if outcome.control is None or outcome.treatment is None:
        return outcome, None
    return outcome, compare(outcome.control, outcome.treatment, experiment.alpha, outcome.method)


def verdict_of(metric: Metric, result: TwoArmResult, p_adjusted: float | None, alpha: float) -> str:
    if result.diff is None or p_adjusted is None or p_adjusted >= alpha:
        return "inconclusive"
    improved = (result.diff > 0) == (metric.goal == "increase")
    return "better" if improved else "worse"


def compare_all(
    experiment: Experiment,
    metrics: Sequence[Metric],
    data: ArmData,
    as_of: dt.date,
) -> tuple[list[Comparison], list[Description]]:
    """All comparisons (with adjusted p-values and verdicts) and descriptions."""
    alpha = experiment.alpha
    options = experiment.statistics
    prior = (
        GaussianPrior(variance=options.bayes_prior_sd**2)
        if options.bayes_prior_sd is not None
        else None
    )
    use_sequential = sequential_drives(experiment, as_of)
    days_elapsed = (as_of - experiment.start).days + 1
    roles = {experiment.metrics.primary: "primary"}
    roles |= {m: "secondary" for m in experiment.metrics.secondary if m not in roles}
    roles |= {m: "guardrail" for m in experiment.metrics.guardrails if m not in roles}

    drafts: list[Comparison] = []
    descriptions: list[Description] = []
    for metric in metrics:
        pairs = arm_pairs(experiment, metric)
        if metric.ai_only and not pairs:
            arms = experiment.ai_variants()
            descriptions += [_describe(metric, arm, data, alpha) for arm in arms]
            continue
        for control, treatment in pairs:
            result = fixed_test(metric, control, treatment, data, alpha)
            cuped, cuped_result = _cuped(metric, control, treatment, data, experiment)
            basis_result = cuped_result if cuped_result is not None else result
            basis = "sequential" if use_sequential else "fixed_horizon"
            if cuped_result is not None:
                basis += "_cuped"
            role = roles[metric.name]
            margin = options.guardrail_margins.get(metric.name) if role == "guardrail" else None
            power = mde(basis_result.control, basis_result.treatment, alpha, options.power)
            drafts.append(
                Comparison(
                    metric=metric,
                    role=role,
                    control=control,
                    treatment=treatment,
                    result=result,
                    cuped=cuped,
                    cuped_result=cuped_result,
                    sequential=sequential_interval(basis_result, alpha, options.sequential_n_star),
                    bayes=bayesian_lift(basis_result, metric.goal, alpha, prior),
                    basis=basis,
                    p_value_adjusted=None,
                    verdict_p_value=None,
                    verdict="inconclusive",
                    mde=power,
                    noninferiority=None
                    if margin is None
                    else guardrail_test(
                        metric,
                        basis_result,
                        margin,
                        use_sequential,
                        alpha,
                        options.sequential_n_star,
                    ),
                    verdict_lift_ci=verdict_interval(
                        basis_result, use_sequential, alpha, options.sequential_n_star
                    ),
                    to_planned_mde=days_to_mde(options.planned_mde, power.relative, days_elapsed),
                )
            )

    fixed_adjusted = _adjust(drafts, [d.result.p_value for d in drafts])
    basis_adjusted = _adjust(drafts, [d.basis_p_value for d in drafts])
    comparisons = [
        replace(
            d,
            p_value_adjusted=p_fixed,
            verdict_p_value=p_basis,
            verdict=verdict_of(d.metric, d.basis_result, p_basis, alpha),
        )
        for d, p_fixed, p_basis in zip(drafts, fixed_adjusted, basis_adjusted, strict=True)
    ]
    return comparisons, descriptions


def _describe(metric: Metric, arm: str, data: ArmData, alpha: float) -> Description:
    if metric.kind == "quantile":
        assert metric.quantile is not None
        est = summary_estimate(_summary(metric, arm, data, alpha))
        value = est.value if math.isfinite(est.value) else None
        return Description(metric, arm, est.n, value)
    m = data.moments.get(metric.name, {}).get(arm, Moments.empty())
    if m.n == 0:
        return Description(metric, arm, 0, None)
    ratio = m.mean_x / m.mean_y if m.mean_y else None
    return Description(metric, arm, m.n, ratio if ratio is None or math.isfinite(ratio) else None)


def _summary(metric: Metric, arm: str, data: ArmData, alpha: float) -> QuantileSummary:
    assert metric.quantile is not None
    found = data.quantiles.get(metric.name, {}).get(arm)
    if found is None:
        return QuantileSummary.empty(metric.quantile, alpha)
    # The outer ranks were picked for one level; read at another, the interval would be wrong.
    assert found.alpha == alpha, (found.alpha, alpha)
    assert found.p == metric.quantile, (found.p, metric.quantile)
    return found


def _adjust(drafts: Sequence[Comparison], p_values: Sequence[float | None]) -> list[float | None]:
    """Holm within the primary and within the secondary family; guardrails stay raw."""
    adjusted: list[float | None] = [
        p if d.role == "guardrail" else None for d, p in zip(drafts, p_values, strict=True)
    ]
    for family in (("primary",), ("secondary",)):
        idx = [i for i, d in enumerate(drafts) if d.role in family and p_values[i] is not None]
        ps = [p for i in idx if (p := p_values[i]) is not None]
        for i, p in zip(idx, holm(ps), strict=True):
            adjusted[i] = p
    return adjusted
