"""When each metric of a run is next measured, which measurements are due now, and when to look again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from rollouts.analysis.assessment import is_completed, resolve_run_metrics
from rollouts.analysis.limits import LimitsError, metric_limits
from rollouts.spec.analysis import ERROR_RETRY_SECONDS, AnalysisRun, Metric, MetricResult

TaskKind = Literal["measure", "resume", "terminate"]


@dataclass(frozen=True)
class MetricTask:
    """A measurement the shell should take now: a new one, resuming an in-flight one (job-like
    providers), or terminating an in-flight one because the run is stopping."""

    metric: str
    kind: TaskKind


def _in_flight(result: MetricResult | None) -> bool:
    if result is None or not result.measurements:
        return False
    last = result.measurements[-1]
    return last.finished_at is None and not is_completed(last.phase)


def next_measurement_at(
    metric: Metric, metric_result: MetricResult | None, run_started_at: datetime
) -> datetime | None:
    """When the metric's next measurement is due (the metric must have its arguments substituted).

    First measurement: `initialDelay` after the run started. In flight: its `resumeAt`. After an Error:
    10 s later whatever the interval, shorter or longer (Argo's `DefaultErrorRetryInterval`, which its
    `generateMetricTasks` and `calculateNextReconcileTime` both pick when the last measurement is an Error).
    Otherwise `interval` after the last one finished. None when the metric is completed, its count is
    reached, or a single measurement is done.
    """
    try:
        limits = metric_limits(metric)
    except LimitsError:
        return None
    if metric_result is not None and is_completed(metric_result.phase):
        return None
    if metric_result is None or not metric_result.measurements:
        return run_started_at + timedelta(seconds=limits.initial_delay or 0.0)
    last = metric_result.measurements[-1]
    if _in_flight(metric_result):
        return last.resume_at
    if limits.effective_count is not None and metric_result.count >= limits.effective_count:
        return None
    finished = last.finished_at or last.started_at or run_started_at
    if last.phase == "Error":
        return finished + timedelta(seconds=ERROR_RETRY_SECONDS)
    if limits.interval is None:
        return None
    return finished + timedelta(seconds=limits.interval)


def _terminating(run: AnalysisRun) -> bool:
    if run.spec.terminate:
        return True
    results = run.status.metric_results if run.status else []
    return any(r.phase in ("Failed", "Error", "Inconclusive") and not r.dry_run for r in results)


def _schedulable(
    run: AnalysisRun, now: datetime
) -> tuple[list[Metric], dict[str, MetricResult], datetime, bool] | None:
    """The run's metrics (arguments substituted), their results by name, when the run started and whether
    it is terminating; None when nothing is scheduled (a completed run, or metrics that do not resolve)."""
    status = run.status
    if status is not None and is_completed(status.phase):
        return None
    metrics, problem = resolve_run_metrics(run)
    if problem is not None:
        return None
    results = {r.name: r for r in status.metric_results} if status else {}
    started = (status.started_at if status else None) or now
    return metrics, results, started, _terminating(run)


def metric_tasks(run: AnalysisRun, now: datetime) -> list[MetricTask]:
    """The measurements to take, resume or terminate now, in metric order. Nothing for a completed run.

    In-flight measurements are resumed when their resumeAt has passed (or they have none); a
    terminating run starts no new measurements and terminates the in-flight ones.
    """
    view = _schedulable(run, now)
    if view is None:
        return []
    metrics, results, started, terminating = view
    tasks: list[MetricTask] = []
    for metric in metrics:
        result = results.get(metric.name)
        if result is not None and is_completed(result.phase):
            continue
        if _in_flight(result):
            assert result is not None
            resume_at = result.measurements[-1].resume_at
            if resume_at is None or resume_at <= now:
                tasks.append(MetricTask(metric.name, "terminate" if terminating else "resume"))
            continue
        if terminating:
            continue
        due = next_measurement_at(metric, result, started)
        if due is not None and due <= now:
            tasks.append(MetricTask(metric.name, "measure"))
    return tasks


def metrics_due(run: AnalysisRun, now: datetime) -> list[str]:
    """Names of the metrics with a measurement to take, resume or terminate now."""
    return [task.metric for task in metric_tasks(run, now)]


def run_requeue_after(run: AnalysisRun, now: datetime) -> float | None:
    """Seconds until the run next needs attention (0 when something is overdue), None when nothing is
    scheduled (completed run, or only in-flight measurements without a resumeAt: those are resumed
    when the run is next looked at for another reason, as Argo does on watch events)."""
    view = _schedulable(run, now)
    if view is None:
        return None
    metrics, results, started, terminating = view
    times: list[datetime] = []
    for metric in metrics:
        result = results.get(metric.name)
        if terminating and not _in_flight(result):
            continue
        due = next_measurement_at(metric, result, started)
        if due is not None:
            times.append(due)
    if not times:
        return None
    return max(0.0, (min(times) - now).total_seconds())
