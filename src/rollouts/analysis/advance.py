"""The pure analysis driver: record the measurements the shell took and re-assess the run.

Controllers and `simulate` call `metric_tasks` (schedule) to learn what to measure, take the
measurements through the providers, then hand the outcomes to `advance_run`. Job-like providers
record an in-flight measurement with `start_measurement` and finish it later through `advance_run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from rollouts.analysis.assessment import (
    assess_run,
    is_completed,
    judge_outcome,
    record_measurement,
    resolve_run_metrics,
)
from rollouts.analysis.limits import is_dry_run, retention_limit
from rollouts.analysis.messages import METRIC_TERMINATED, redact
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.spec.analysis import (
    DEFAULT_MEASUREMENTS_RETAINED,
    AnalysisRun,
    AnalysisRunStatus,
    Measurement,
    MetricResult,
)


def _status(run: AnalysisRun, now: datetime) -> AnalysisRunStatus:
    status = run.status or AnalysisRunStatus()
    return status if status.started_at else status.model_copy(update={"started_at": now})


def _result(run: AnalysisRun, status: AnalysisRunStatus, name: str) -> MetricResult:
    for result in status.metric_results:
        if result.name == name:
            return result
    return MetricResult(name=name, phase="Running", dry_run=is_dry_run(run.spec.dry_run, name) or None)


def _put(status: AnalysisRunStatus, result: MetricResult) -> AnalysisRunStatus:
    results = [r for r in status.metric_results if r.name != result.name]
    index = next((i for i, r in enumerate(status.metric_results) if r.name == result.name), len(results))
    results.insert(index, result)
    return status.model_copy(update={"metric_results": results})


def _in_flight(result: MetricResult) -> Measurement | None:
    if result.measurements:
        last = result.measurements[-1]
        if last.finished_at is None and not is_completed(last.phase):
            return last
    return None


def _terminating(run: AnalysisRun, status: AnalysisRunStatus) -> bool:
    if run.spec.terminate:
        return True
    return any(
        r.phase in ("Failed", "Error", "Inconclusive") and not r.dry_run for r in status.metric_results
    )


def advance_run(
    run: AnalysisRun,
    now: datetime,
    measurements: Mapping[str, MeasurementOutcome],
    *,
    args: Mapping[str, str] | None = None,
    secret_values: Iterable[str] = (),
    metric_metadata: Mapping[str, Mapping[str, str]] | None = None,
) -> AnalysisRun:
    """The run after recording `measurements` (metric name -> outcome, taken at `now`) and
    re-assessing every metric and the run. A completed run is returned unchanged.

    `args` are the fully resolved argument values (secrets included) used for the conditions; without
    them secrets are placeholders. Every recorded message is redacted with `secret_values`.
    An outcome for a metric with an in-flight measurement completes that measurement; when the run
    is terminating, a successful completion is recorded as "Metric Terminated".
    """
    if run.status is not None and is_completed(run.status.phase):
        return run
    status = _status(run, now)
    secrets = list(secret_values)
    metrics, problem = resolve_run_metrics(run, args)
    if problem is None and measurements:
        by_name = {m.name: m for m in metrics}
        terminating = _terminating(run, status)
        for name, outcome in measurements.items():
            metric = by_name.get(name)
            if metric is None:
                raise KeyError(f"AnalysisRun {run.metadata.name}: no metric named {name!r}")
            result = _result(run, status, name)
            if is_completed(result.phase):
                continue  # a completed metric takes no more measurements
            pending = _in_flight(result)
            phase, message = judge_outcome(metric, outcome)
            if pending is not None and terminating and phase == "Successful":
                message = METRIC_TERMINATED
            measurement = Measurement(
                phase=phase,
                message=redact(message, secrets) if message else None,
                started_at=pending.started_at if pending and pending.started_at else now,
                finished_at=now,
                value=redact(outcome.printed, secrets) if outcome.printed else None,
                metadata=dict(outcome.metadata) or (pending.metadata if pending else None),
            )
            limit = retention_limit(run.spec.measurement_retention, name, DEFAULT_MEASUREMENTS_RETAINED)
            result = record_measurement(result, measurement, limit)
            if metric_metadata and name in metric_metadata:
                result = result.model_copy(update={"metadata": dict(metric_metadata[name])})
            status = _put(status, result)
    advanced = run.model_copy(update={"status": status})
    return advanced.model_copy(update={"status": assess_run(advanced, now, secret_values=secrets)})


def start_measurement(
    run: AnalysisRun,
    metric_name: str,
    now: datetime,
    *,
    resume_at: datetime | None = None,
    metadata: Mapping[str, str] | None = None,
    message: str | None = None,
) -> AnalysisRun:
    """The run with an in-flight (Running) measurement for a job-like provider, to be resumed at
    `resume_at`. Calling it again while one is in flight updates that measurement (new resumeAt)."""
    if run.status is not None and is_completed(run.status.phase):
        return run
    if all(m.name != metric_name for m in run.spec.metrics):
        raise KeyError(f"AnalysisRun {run.metadata.name}: no metric named {metric_name!r}")
    status = _status(run, now)
    result = _result(run, status, metric_name)
    pending = _in_flight(result)
    measurement = Measurement(
        phase="Running",
        message=message,
        started_at=pending.started_at if pending and pending.started_at else now,
        resume_at=resume_at,
        metadata=dict(metadata) if metadata else (pending.metadata if pending else None),
    )
    limit = retention_limit(run.spec.measurement_retention, metric_name, DEFAULT_MEASUREMENTS_RETAINED)
    status = _put(status, record_measurement(result, measurement, limit))
    advanced = run.model_copy(update={"status": status})
    return advanced.model_copy(update={"status": assess_run(advanced, now)})
