"""Run-level assessment and the pure driver: worst phase, fail-fast, terminate, dry-run, summaries,
messages, retention, in-flight measurements and redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.analysis.advance import advance_run, start_measurement
from rollouts.analysis.assessment import assess_run
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.schedule import metric_tasks
from rollouts.spec.analysis import AnalysisRun, AnalysisRunStatus, Measurement, MetricResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def metric(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": {"web": {"url": "http://x"}},
        "successCondition": "result == true",
        **fields,
    }


def run_of(metrics: list[dict[str, Any]], **spec: Any) -> AnalysisRun:
    return AnalysisRun.model_validate(
        {"metadata": {"name": "r", "namespace": "ns"}, "spec": {"metrics": metrics, **spec}}
    )


def completed_result(name: str, phase: str) -> MetricResult:
    m = Measurement(phase=phase, started_at=T0, finished_at=T0)  # type: ignore[arg-type]
    counters = {
        "Successful": "successful",
        "Failed": "failed",
        "Inconclusive": "inconclusive",
        "Error": "error",
    }
    return MetricResult.model_validate(
        {
            "name": name,
            "phase": phase,
            "measurements": [m],
            counters[phase]: 1,
            "count": int(phase != "Error"),
        }
    )


def with_results(run: AnalysisRun, *results: MetricResult) -> AnalysisRun:
    return run.model_copy(
        update={"status": AnalysisRunStatus(phase="Running", started_at=T0, metric_results=list(results))}
    )


OK = MeasurementOutcome(value=True, printed="true")
BAD = MeasurementOutcome(value=False, printed="false")
ERR = MeasurementOutcome(error="connection refused")


# --- worst phase -----------------------------------------------------------------------------------

WORST = [
    pytest.param(["Successful", "Successful"], "Successful", id="all-successful"),
    pytest.param(["Successful", "Inconclusive"], "Inconclusive", id="inconclusive-beats-successful"),
    pytest.param(["Inconclusive", "Error"], "Error", id="error-beats-inconclusive"),
    pytest.param(["Failed", "Error"], "Failed", id="failed-beats-error"),
    pytest.param(["Error", "Failed", "Inconclusive"], "Failed", id="failed-worst-of-three"),
]


@pytest.mark.parametrize(("phases", "expected"), WORST)
def test_run_phase_is_worst_metric_phase(phases: list[str], expected: str) -> None:
    run = run_of([metric(f"m{i}") for i in range(len(phases))])
    run = with_results(run, *(completed_result(f"m{i}", p) for i, p in enumerate(phases)))
    status = assess_run(run, at(60))
    assert status.phase == expected
    assert status.completed_at == at(60)
    assert status.run_summary is not None
    assert status.run_summary.count == len(phases)
    assert status.run_summary.failed == phases.count("Failed")
    assert status.run_summary.error == phases.count("Error")


def test_single_measurement_success() -> None:
    run = advance_run(run_of([metric("m")]), at(0), {"m": OK})
    assert run.status is not None
    assert run.status.phase == "Successful"
    assert run.status.message is None
    r = run.status.metric_results[0]
    assert (r.phase, r.count, r.successful, r.measurements[0].value) == ("Successful", 1, 1, "true")
    assert (run.status.started_at, run.status.completed_at) == (at(0), at(0))


def test_failure_message_and_fail_fast() -> None:
    run = run_of([metric("rate", interval="1m", count=5), metric("background", interval="1m")])
    run = advance_run(run, at(0), {"rate": OK, "background": OK})
    assert run.status is not None and run.status.phase == "Running"
    run = advance_run(run, at(60), {"rate": BAD})
    assert run.status is not None
    assert run.status.phase == "Failed"
    assert run.status.message == 'Metric "rate" assessed Failed due to failed (1) > failureLimit (0)'
    phases = {r.name: r.phase for r in run.status.metric_results}
    assert phases == {"rate": "Failed", "background": "Successful"}
    assert metric_tasks(run, at(600)) == []


def test_error_metric_message_includes_last_error() -> None:
    run = run_of([metric("m", consecutiveErrorLimit=1)])
    run = advance_run(run, at(0), {"m": ERR})
    run = advance_run(run, at(10), {"m": ERR})
    assert run.status is not None
    assert run.status.phase == "Error"
    assert run.status.message == (
        'Metric "m" assessed Error due to consecutiveErrors (2) > consecutiveErrorLimit (1): '
        '"Error Message: connection refused"'
    )


def test_terminate_before_any_measurement_is_successful() -> None:
    run = run_of([metric("m", initialDelay="5m")], terminate=True)
    status = assess_run(run, at(1))
    assert (status.phase, status.message) == ("Successful", "Run Terminated")


def test_terminate_unlimited_metric_is_successful() -> None:
    run = advance_run(run_of([metric("m", interval="1m")]), at(0), {"m": OK})
    run = run.model_copy(update={"spec": run.spec.model_copy(update={"terminate": True})})
    status = assess_run(run, at(5))
    assert (status.phase, status.message) == ("Successful", "Run Terminated")
    assert status.metric_results[0].phase == "Successful"


def test_terminate_keeps_violated_failure_limit() -> None:
    run = run_of([metric("m", interval="1m", count=5, failureLimit=1)])
    for i, outcome in enumerate([BAD, BAD]):
        run = advance_run(run, at(60 * i), {"m": outcome})
    assert run.status is not None and run.status.phase == "Failed"


def test_dry_run_metric_excluded_from_phase() -> None:
    run = run_of([metric("gate"), metric("shadow")], dryRun=[{"metricName": "sha.*"}])
    run = advance_run(run, at(0), {"gate": OK, "shadow": BAD})
    assert run.status is not None
    assert run.status.phase == "Successful"
    shadow = run.status.metric_results[1]
    assert (shadow.phase, shadow.dry_run, shadow.message) == (
        "Failed",
        True,
        "Metric assessed Failed due to failed (1) > failureLimit (0)",
    )
    assert run.status.dry_run_summary is not None and run.status.run_summary is not None
    assert (run.status.dry_run_summary.count, run.status.dry_run_summary.failed) == (1, 1)
    assert (run.status.run_summary.count, run.status.run_summary.successful) == (1, 1)


def test_dry_run_failure_does_not_fail_fast() -> None:
    run = run_of(
        [metric("gate", interval="1m", count=2), metric("shadow")], dryRun=[{"metricName": "shadow"}]
    )
    run = advance_run(run, at(0), {"gate": OK, "shadow": BAD})
    assert run.status is not None and run.status.phase == "Running"
    assert [t.metric for t in metric_tasks(run, at(60))] == ["gate"]


def test_all_dry_run_is_successful() -> None:
    run = run_of([metric("a"), metric("b")], dryRun=[{"metricName": ".*"}])
    run = advance_run(run, at(0), {"a": BAD, "b": ERR})
    run = advance_run(run, at(10), {"b": ERR})
    for i in range(2, 5):
        run = advance_run(run, at(10 * i), {"b": ERR})
    assert run.status is not None
    assert run.status.phase == "Successful"
    assert {r.name: r.phase for r in run.status.metric_results} == {"a": "Failed", "b": "Error"}


def test_completed_run_never_changes() -> None:
    run = advance_run(run_of([metric("m")]), at(0), {"m": BAD})
    assert run.status is not None and run.status.phase == "Failed"
    again = advance_run(run, at(99), {"m": OK})
    assert again == run
    assert (
        assess_run(run.model_copy(update={"spec": run.spec.model_copy(update={"terminate": True})}), at(5))
        == run.status
    )


SPEC_ERRORS = [
    pytest.param(
        [metric("m", count=3)],
        "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
        id="count-needs-interval",
    ),
    pytest.param(
        [metric("m", interval="soon")],
        "Analysis spec invalid: metrics[0]: invalid interval",
        id="bad-interval",
    ),
    pytest.param([], "Analysis spec invalid: no metrics specified", id="no-metrics"),
    pytest.param(
        [metric("m", successCondition="result > {{args.x}}")],
        "Unable to resolve metric arguments: failed to resolve {{args.x}}",
        id="unresolved-arg",
    ),
    pytest.param(
        [{"name": "m", "provider": {}}],
        "Analysis spec invalid: metrics[0]: no provider specified",
        id="no-provider",
    ),
    pytest.param(
        [metric("m", interval="1m", count=2, failureLimit=3)],
        "Analysis spec invalid: metrics[0]: count (2) must be >= failureLimit + consecutiveSuccessLimit (3 + 0) if both >= 0",
        id="count-below-failure-limit",
    ),
    # Argo's ValidateMetric (utils/analysis/factory_test.go): the check that was missing, and its wording.
    pytest.param(
        [metric("m", interval="1m", count=2, failureLimit=-1, consecutiveSuccessLimit=3)],
        "Analysis spec invalid: metrics[0]: count must be >= consecutiveSuccessLimit",
        id="count-below-consecutive-success-limit",
    ),
    pytest.param(
        [metric("m", failureLimit=-1)],
        "Analysis spec invalid: metrics[0]: failureLimit and consecutiveSuccessLimit cannot both be disabled",
        id="both-limits-disabled",
    ),
    pytest.param(
        [metric("m", failureLimit=-2)],
        "Analysis spec invalid: metrics[0]: failureLimit must be >= 0, or -1 to be disabled",
        id="failure-limit-below-minus-one",
    ),
    pytest.param(
        [metric("m", interval="1m", count=3000000000)],
        "Analysis spec invalid: metrics[0]: metrics[m].count: 3000000000 is out of range",
        id="count-beyond-int32",
    ),
    pytest.param(
        [metric("m", interval="9999999999h", count=2)],
        "Analysis spec invalid: metrics[0]: metrics[m].interval: '9999999999h' is longer than",
        id="interval-beyond-go-duration",
    ),
]


@pytest.mark.parametrize(("metrics", "message"), SPEC_ERRORS)
def test_spec_errors_end_run_in_error(metrics: list[dict[str, Any]], message: str) -> None:
    status = assess_run(run_of(metrics), at(0))
    assert status.phase == "Error"
    assert status.message is not None and status.message.startswith(message)


def test_unmatched_dry_run_rule_is_spec_error() -> None:
    status = assess_run(run_of([metric("m")], dryRun=[{"metricName": "zzz"}]), at(0))
    assert (status.phase, status.message) == (
        "Error",
        "Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)",
    )


def test_count_and_limits_from_args() -> None:
    run = run_of(
        [metric("m", interval="{{args.every}}", count="{{args.n}}", failureLimit="{{args.fails}}")],
        args=[
            {"name": "every", "value": "30s"},
            {"name": "n", "value": "2"},
            {"name": "fails", "value": "1"},
        ],
    )
    run = advance_run(run, at(0), {"m": BAD})
    assert run.status is not None and run.status.phase == "Running"
    assert [t.metric for t in metric_tasks(run, at(30))] == ["m"]
    run = advance_run(run, at(30), {"m": OK})
    assert run.status is not None and run.status.phase == "Successful"


@pytest.mark.parametrize(
    ("limit", "kept"), [(None, 10), (3, 3), (0, 10)], ids=["default", "override", "zero-means-default"]
)
def test_measurement_retention(limit: int | None, kept: int) -> None:
    spec = {} if limit is None else {"measurementRetention": [{"metricName": "m", "limit": limit}]}
    run = run_of([metric("m", interval="1s")], **spec)
    for i in range(14):
        run = advance_run(run, at(i), {"m": OK})
    assert run.status is not None
    result = run.status.metric_results[0]
    assert (len(result.measurements), result.count) == (kept, 14)


def test_secrets_redacted_from_messages_and_values() -> None:
    run = run_of(
        [metric("m", consecutiveErrorLimit=0)],
        args=[{"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    )
    outcome = MeasurementOutcome(error="401 for token hunter2", printed="hunter2")
    run = advance_run(run, at(0), {"m": outcome}, args={"token": "hunter2"}, secret_values=["hunter2"])
    assert run.status is not None
    assert "hunter2" not in run.model_dump_json()
    assert run.status.metric_results[0].measurements[0].message == "401 for token *****"
    assert run.status.message is not None and run.status.message.endswith(
        '"Error Message: 401 for token *****"'
    )


def test_in_flight_job_measurement_resume_and_complete() -> None:
    run = run_of([metric("job", successCondition=None)])
    run = start_measurement(run, "job", at(0), resume_at=at(10), metadata={"job-name": "j1"})
    assert run.status is not None and run.status.phase == "Running"
    assert run.status.metric_results[0].phase == "Running"
    assert metric_tasks(run, at(5)) == []
    assert [(t.metric, t.kind) for t in metric_tasks(run, at(10))] == [("job", "resume")]
    run = start_measurement(run, "job", at(10), resume_at=at(20))
    assert run.status is not None and len(run.status.metric_results[0].measurements) == 1
    run = advance_run(run, at(20), {"job": MeasurementOutcome(phase="Successful")})
    assert run.status is not None and run.status.phase == "Successful"
    m = run.status.metric_results[0].measurements[0]
    assert (m.started_at, m.finished_at, m.metadata) == (at(0), at(20), {"job-name": "j1"})


def test_terminate_in_flight_measurement() -> None:
    run = run_of([metric("job", successCondition=None)])
    run = start_measurement(run, "job", at(0), resume_at=at(60))
    run = run.model_copy(update={"spec": run.spec.model_copy(update={"terminate": True})})
    status = assess_run(run, at(1))
    assert status.phase == "Running"  # the in-flight job must be stopped first
    assert [(t.metric, t.kind) for t in metric_tasks(run, at(70))] == [("job", "terminate")]
    run = advance_run(run, at(70), {"job": MeasurementOutcome(phase="Successful")})
    assert run.status is not None
    assert (run.status.phase, run.status.message) == ("Successful", "Run Terminated")
    result = run.status.metric_results[0]
    assert result.measurements[0].message == "Metric Terminated"
    assert result.message == "Metric Terminated"


def test_outcome_for_completed_metric_is_ignored() -> None:
    run = run_of([metric("once"), metric("more", interval="1m", count=3)])
    run = advance_run(run, at(0), {"once": OK, "more": OK})
    run = advance_run(run, at(60), {"once": BAD, "more": OK})
    assert run.status is not None
    once = run.status.metric_results[0]
    assert (once.phase, once.count, once.failed, len(once.measurements)) == ("Successful", 1, 0, 1)
