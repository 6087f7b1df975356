"""Pure judgements of analysis: a measurement's phase from its value, a metric's bookkeeping and phase,
and the run's phase, summaries and message (Argo's rules and wording)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from rollouts.analysis.args import ArgsError, args_without_secrets, substitute_metric
from rollouts.analysis.expr import ExprError, evaluate_condition
from rollouts.analysis.limits import LimitsError, MetricLimits, is_dry_run, metric_limits, validate_metrics
from rollouts.analysis.messages import (
    RUN_TERMINATED,
    SPEC_INVALID_PREFIX,
    UNRESOLVED_ARGS_PREFIX,
    consecutive_error_reason,
    dry_run_metric_message,
    failed_reason,
    inconclusive_reason,
    redact,
    run_metric_message,
    success_limit_not_reached_reason,
)
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.spec.analysis import (
    AnalysisPhase,
    AnalysisRun,
    AnalysisRunStatus,
    Measurement,
    Metric,
    MetricResult,
    RunSummary,
)

COMPLETED: Final = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
# Phases of a non-dry-run metric that stop the whole run early.
FAIL_FAST: Final = frozenset({"Failed", "Error", "Inconclusive"})
# Best to worst; the run ends in the worst phase among its (non-dry-run) metrics.
PHASE_ORDER: Final[tuple[AnalysisPhase, ...]] = (
    "Successful",
    "Running",
    "Pending",
    "Inconclusive",
    "Error",
    "Failed",
)


def is_completed(phase: str | None) -> bool:
    return phase in COMPLETED


def worst(phases: Iterable[AnalysisPhase]) -> AnalysisPhase | None:
    """The worst phase in Argo's order (unknown phases rank best), None for no phases."""
    ranked = [(PHASE_ORDER.index(p) if p in PHASE_ORDER else -1, p) for p in phases]
    return max(ranked, key=lambda item: item[0])[1] if ranked else None


# --- measurements ----------------------------------------------------------------------------------


def assess_measurement_value(metric: Metric, value: Any) -> tuple[AnalysisPhase, str | None]:
    """A provider value judged by the metric's successCondition / failureCondition.

    Neither set: Successful. Only success: Successful or Failed. Only failure: Failed or Successful.
    Both: Failed if the failure condition holds, else Successful if the success condition holds, else
    Inconclusive. An expression that cannot be evaluated makes the measurement an Error.
    """
    success = metric.success_condition or ""
    failure = metric.failure_condition or ""
    try:
        # Both conditions are evaluated: an error in either makes the measurement an Error.
        succeeded = evaluate_condition(success, value) if success else None
        failed = evaluate_condition(failure, value) if failure else None
    except ExprError as exc:
        return "Error", str(exc)
    if failed:
        return "Failed", None
    if succeeded is None:
        return "Successful", None
    if succeeded:
        return "Successful", None
    return ("Inconclusive" if failed is not None else "Failed"), None


def judge_outcome(metric: Metric, outcome: MeasurementOutcome) -> tuple[AnalysisPhase, str | None]:
    """A provider's outcome as a measurement phase: provider errors are Errors, providers that decide
    on their own (job) keep their phase, otherwise the conditions decide."""
    if outcome.error is not None:
        return "Error", outcome.error
    if outcome.phase is not None:
        return outcome.phase, outcome.message
    return assess_measurement_value(metric, outcome.value)


def _in_flight(measurement: Measurement) -> bool:
    return measurement.finished_at is None and not is_completed(measurement.phase)


def record_measurement(
    metric_result: MetricResult, measurement: Measurement, retention_limit: int
) -> MetricResult:
    """The metric result with `measurement` added (replacing an in-flight one) and counters updated.

    Errors never count toward `count`; any non-error outcome resets consecutiveError, and anything but a
    success resets consecutiveSuccess. Only the last `retention_limit` measurements are kept.
    """
    measurements = list(metric_result.measurements)
    if measurements and _in_flight(measurements[-1]):
        measurements[-1] = measurement
    else:
        measurements.append(measurement)
    if retention_limit > 0:
        measurements = measurements[-retention_limit:]
    update: dict[str, Any] = {"measurements": measurements}
    r = metric_result
    match measurement.phase:
        case "Successful":
            update |= {
                "successful": r.successful + 1,
                "count": r.count + 1,
                "consecutive_error": 0,
                "consecutive_success": r.consecutive_success + 1,
            }
        case "Failed":
            update |= {"failed": r.failed + 1, "count": r.count + 1, "consecutive_error": 0}
            update["consecutive_success"] = 0
        case "Inconclusive":
            update |= {"inconclusive": r.inconclusive + 1, "count": r.count + 1, "consecutive_error": 0}
            update["consecutive_success"] = 0
        case "Error":
            update |= {
                "error": r.error + 1,
                "consecutive_error": r.consecutive_error + 1,
                "consecutive_success": 0,
            }
        case _:
            pass
    return metric_result.model_copy(update=update)


# --- metric phase ----------------------------------------------------------------------------------


def _limit_reason(limits: MetricLimits, result: MetricResult) -> tuple[AnalysisPhase | None, str]:
    """Failed / Inconclusive / Error from the limits, later checks overriding earlier ones."""
    phase: AnalysisPhase | None = None
    reason = ""
    if limits.failure_limit >= 0 and result.failed > limits.failure_limit:
        phase, reason = "Failed", failed_reason(result.failed, limits.failure_limit)
    if result.inconclusive > limits.inconclusive_limit:
        phase, reason = "Inconclusive", inconclusive_reason(result.inconclusive, limits.inconclusive_limit)
    if result.consecutive_error > limits.consecutive_error_limit:
        phase = "Error"
        reason = consecutive_error_reason(result.consecutive_error, limits.consecutive_error_limit)
    return phase, reason


def _assess_phase(limits: MetricLimits, result: MetricResult, terminating: bool) -> tuple[AnalysisPhase, str]:
    if is_completed(result.phase):
        return result.phase, _limit_reason(limits, result)[1]
    if not result.measurements:
        return ("Successful" if terminating else "Pending"), ""
    if not is_completed(result.measurements[-1].phase):
        return "Running", ""
    phase, reason = _limit_reason(limits, result)
    if phase is not None:
        return phase, reason
    success_limit = limits.consecutive_success_limit
    if success_limit > 0 and result.consecutive_success >= success_limit:
        return "Successful", ""
    count = limits.effective_count
    if count is not None and result.count >= count:
        failure_enabled = limits.failure_limit >= 0
        if success_limit > 0:
            reason = success_limit_not_reached_reason(result.consecutive_success, success_limit)
            return ("Inconclusive" if failure_enabled else "Failed"), reason
        return "Successful", ""
    # Not done yet (or unlimited): stopping early counts as success.
    return ("Successful" if terminating else "Running"), ""


def _last_message(result: MetricResult) -> str | None:
    return result.measurements[-1].message if result.measurements else result.message


def assess_metric_phase(
    metric: Metric, metric_result: MetricResult, *, terminating: bool, dry_run: bool
) -> tuple[AnalysisPhase, str]:
    """The metric's phase and, when a limit decided it, the reason in Argo's words.

    `metric` must already have its arguments substituted. A completed metric keeps its phase.
    """
    try:
        limits = metric_limits(metric)
    except LimitsError as exc:
        return "Error", str(exc)
    phase, reason = _assess_phase(limits, metric_result, terminating)
    if not reason or not is_completed(phase):
        return phase, ""
    if dry_run:
        return phase, dry_run_metric_message(phase, reason)
    return phase, run_metric_message(metric.name, phase, reason, _last_message(metric_result))


# --- run phase -------------------------------------------------------------------------------------


def resolve_run_metrics(
    run: AnalysisRun, args: Mapping[str, str] | None = None
) -> tuple[list[Metric], str | None]:
    """The run's metrics with arguments substituted (secrets as a placeholder unless `args` has them),
    and why the run cannot proceed (Argo's run-level wording), if it cannot."""
    values = dict(args) if args is not None else args_without_secrets(run.spec.args)
    try:
        metrics = [substitute_metric(m, values) for m in run.spec.metrics]
    except ArgsError as exc:
        return [], UNRESOLVED_ARGS_PREFIX + str(exc)
    problem = validate_metrics(metrics, run.spec.dry_run, run.spec.measurement_retention)
    if problem is not None:
        return metrics, SPEC_INVALID_PREFIX + problem
    return metrics, None


def _terminating(run: AnalysisRun, results: Iterable[MetricResult]) -> bool:
    if run.spec.terminate:
        return True
    return any(r.phase in FAIL_FAST and not r.dry_run for r in results)


def _reassess(
    metrics: Sequence[Metric], results: dict[str, MetricResult], dry: Mapping[str, bool], terminating: bool
) -> dict[str, MetricResult]:
    out = dict(results)
    for metric in metrics:
        result = out.get(metric.name)
        if result is None:
            continue
        phase, message = assess_metric_phase(
            metric, result, terminating=terminating, dry_run=dry[metric.name]
        )
        update: dict[str, Any] = {"dry_run": dry[metric.name] or None}
        if phase != result.phase:
            update["phase"] = phase
            last = _last_message(result)
            if last is not None:
                update["message"] = last
        if dry[metric.name] and message:
            update["message"] = message
        out[metric.name] = result.model_copy(update=update)
    return out


def _count(summary: RunSummary, phase: str) -> RunSummary:
    field = {"Failed": "failed", "Error": "error", "Inconclusive": "inconclusive"}.get(phase, "successful")
    return summary.model_copy(update={field: getattr(summary, field) + 1})


def assess_run(run: AnalysisRun, now: datetime, *, secret_values: Iterable[str] = ()) -> AnalysisRunStatus:
    """The run's status after re-assessing every metric (phases, summaries, message, timestamps).

    A completed run is returned unchanged. The run is terminating when asked to or when a non-dry-run
    metric is Failed, Error or Inconclusive; unfinished metrics then end Successful.
    """
    status = run.status or AnalysisRunStatus()
    if is_completed(status.phase):
        return status
    started = status.started_at or now
    secrets = list(secret_values)
    metrics, problem = resolve_run_metrics(run)
    if problem is not None:
        return status.model_copy(
            update={
                "phase": "Error",
                "message": redact(problem, secrets),
                "started_at": started,
                "completed_at": now,
            }
        )
    dry = {m.name: is_dry_run(run.spec.dry_run, m.name) for m in metrics}
    results = {r.name: r for r in status.metric_results}
    terminating = _terminating(run, results.values())
    results = _reassess(metrics, results, dry, terminating)
    if not terminating and _terminating(run, results.values()):
        # Fail fast: the other metrics stop now rather than on the next reconcile.
        terminating = True
        results = _reassess(metrics, results, dry, terminating)

    run_summary, dry_summary = RunSummary(), RunSummary()
    worst_phase: AnalysisPhase | None = None
    worst_message = RUN_TERMINATED if run.spec.terminate else ""
    everything_completed = True
    in_flight = False
    for metric in metrics:
        is_dry = dry[metric.name]
        if is_dry:
            dry_summary = dry_summary.model_copy(update={"count": dry_summary.count + 1})
        else:
            run_summary = run_summary.model_copy(update={"count": run_summary.count + 1})
        result = results.get(metric.name)
        if result is None or not is_completed(result.phase):
            everything_completed = False
            in_flight = in_flight or bool(
                result and result.measurements and _in_flight(result.measurements[-1])
            )
            continue
        if is_dry:
            worst_phase = worst_phase or "Successful"
            dry_summary = _count(dry_summary, result.phase)
            continue
        run_summary = _count(run_summary, result.phase)
        if worst_phase is None or worst([worst_phase, result.phase]) != worst_phase:
            worst_phase = result.phase
            _, message = assess_metric_phase(metric, result, terminating=terminating, dry_run=False)
            if message:
                worst_message = message

    if terminating and not in_flight:
        phase: AnalysisPhase = worst_phase or "Successful"
    elif not everything_completed or worst_phase is None:
        phase = "Running"
    else:
        phase = worst_phase
    ordered = [results[m.name] for m in metrics if m.name in results]
    ordered += [r for name, r in results.items() if name not in dry]
    update: dict[str, Any] = {
        "phase": phase,
        "started_at": started,
        "metric_results": ordered,
        "run_summary": run_summary,
        "dry_run_summary": dry_summary,
        "message": redact(worst_message, secrets) or None if is_completed(phase) else None,
    }
    if is_completed(phase):
        update["completed_at"] = status.completed_at or now
    return status.model_copy(update=update)
