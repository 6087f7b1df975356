"""After a measurement Error the next one is taken 10 s after it finished, whatever the metric's interval:
shorter (2 s), longer (5 m) or none. Argo Rollouts has done so since v1.0.0 (analysis/analysis.go: both
`generateMetricTasks` and `calculateNextReconcileTime` pick `DefaultErrorRetryInterval`, 10 s, when the last
measurement's phase is Error, and the metric's interval otherwise)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.analysis.advance import advance_run
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.schedule import metrics_due, run_requeue_after
from rollouts.spec.analysis import ERROR_RETRY_SECONDS, AnalysisRun

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_of(**fields: Any) -> AnalysisRun:
    metric = {"name": "m", "provider": {"web": {"url": "http://x"}}, "count": 5, **fields}
    return AnalysisRun.model_validate({"metadata": {"name": "r"}, "spec": {"metrics": [metric]}})


@pytest.mark.parametrize("interval", ["2s", "5m", None], ids=["shorter-interval", "longer-interval", "no-interval"])
def test_error_is_retried_after_10s_whatever_the_interval(interval: str | None) -> None:
    assert ERROR_RETRY_SECONDS == 10.0
    run = run_of(**({"interval": interval} if interval else {"count": 1}))
    run = advance_run(run, at(0), {"m": MeasurementOutcome(error="connection refused")})
    assert run.status is not None and run.status.phase == "Running"
    assert run_requeue_after(run, at(0)) == 10.0
    assert metrics_due(run, at(5)) == []  # not at a 2 s interval
    assert metrics_due(run, at(9.9)) == []
    assert metrics_due(run, at(10)) == ["m"]  # and not waiting 5 m either


def test_after_a_good_measurement_the_interval_applies_again() -> None:
    run = run_of(interval="2s")
    run = advance_run(run, at(0), {"m": MeasurementOutcome(error="timeout")})
    run = advance_run(run, at(10), {"m": MeasurementOutcome(value=1)})
    assert run_requeue_after(run, at(10)) == 2.0
    assert metrics_due(run, at(12)) == ["m"]
