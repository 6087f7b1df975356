"""Measurement scheduling: initialDelay, interval, 10 s error retry, completion, requeue time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.analysis.advance import advance_run, start_measurement
from rollouts.analysis.assessment import record_measurement
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.schedule import metrics_due, next_measurement_at, run_requeue_after
from rollouts.spec.analysis import AnalysisRun, Measurement, Metric, MetricResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def metric(**fields: Any) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"web": {"url": "http://x"}}, **fields})


def history(*entries: tuple[str, float]) -> MetricResult:
    result = MetricResult(name="m", phase="Running")
    for phase, finished in entries:
        stamp = at(finished)
        m = Measurement(phase=phase, started_at=stamp, finished_at=stamp)  # type: ignore[arg-type]
        result = record_measurement(result, m, 10)
    return result


NEXT = [
    pytest.param({}, None, at(0), id="first-immediately"),
    pytest.param({"initialDelay": "2m"}, None, at(120), id="initial-delay-before-first"),
    pytest.param(
        {"interval": "1m", "initialDelay": "2m"},
        history(("Successful", 130)),
        at(190),
        id="interval-after-last-finish",
    ),
    pytest.param(
        {"interval": "5m", "count": 3},
        history(("Successful", 0), ("Error", 300)),
        at(310),
        id="error-retry-10s-despite-interval",
    ),
    pytest.param({}, history(("Error", 40)), at(50), id="single-measurement-error-retried"),
    pytest.param({}, history(("Successful", 40)), None, id="single-measurement-done"),
    pytest.param(
        {"interval": "1m", "count": 2}, history(("Successful", 0), ("Failed", 60)), None, id="count-reached"
    ),
    pytest.param(
        {"interval": "1m"},
        history(*[("Successful", 60 * i) for i in range(30)]),
        at(1800),
        id="unlimited-continues",
    ),
]


@pytest.mark.parametrize(("fields", "result", "expected"), NEXT)
def test_next_measurement_at(
    fields: dict[str, Any], result: MetricResult | None, expected: datetime | None
) -> None:
    assert next_measurement_at(metric(**fields), result, T0) == expected


def test_completed_metric_has_no_next_measurement() -> None:
    result = history(("Successful", 0)).model_copy(update={"phase": "Successful"})
    assert next_measurement_at(metric(interval="1m"), result, T0) is None


def test_in_flight_measurement_next_is_resume_at() -> None:
    result = record_measurement(
        MetricResult(name="m"), Measurement(phase="Running", started_at=T0, resume_at=at(15)), 10
    )
    assert next_measurement_at(metric(), result, T0) == at(15)


def run_of(*metrics: dict[str, Any]) -> AnalysisRun:
    return AnalysisRun.model_validate({"metadata": {"name": "r"}, "spec": {"metrics": list(metrics)}})


def web(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"web": {"url": "http://x"}}, **fields}


def test_metrics_due_and_requeue() -> None:
    run = run_of(web("fast", interval="30s", count=3), web("slow", interval="5m", count=2, initialDelay="1m"))
    run = advance_run(run, at(0), {})
    assert metrics_due(run, at(0)) == ["fast"]
    assert run_requeue_after(run, at(0)) == 0.0
    run = advance_run(run, at(0), {"fast": MeasurementOutcome(value=1)})
    assert metrics_due(run, at(1)) == []
    assert run_requeue_after(run, at(1)) == 29.0
    assert metrics_due(run, at(30)) == ["fast"]
    run = advance_run(run, at(30), {"fast": MeasurementOutcome(error="timeout")})
    assert run_requeue_after(run, at(30)) == 10.0
    assert metrics_due(run, at(60)) == ["fast", "slow"]


def test_nothing_due_for_completed_run() -> None:
    run = advance_run(run_of(web("m")), at(0), {"m": MeasurementOutcome(value=1)})
    assert run.status is not None and run.status.phase == "Successful"
    assert metrics_due(run, at(100)) == []
    assert run_requeue_after(run, at(100)) is None


def test_in_flight_without_resume_at_is_due_but_not_timed() -> None:
    run = start_measurement(run_of(web("job")), "job", at(0))
    assert metrics_due(run, at(0)) == ["job"]
    assert run_requeue_after(run, at(0)) is None
    run = start_measurement(run, "job", at(0), resume_at=at(20))
    assert metrics_due(run, at(5)) == []
    assert run_requeue_after(run, at(5)) == 15.0
