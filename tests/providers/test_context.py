"""The measurement context the executor hands to providers: the run's stored start and its resolved args
(secrets included, never shown in the context's repr)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.analysis.executor import AnalysisExecutor
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.spec.analysis import AnalysisRun, Metric

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Recorder:
    type_label = "Recorder"

    def __init__(self) -> None:
        self.seen: list[MeasureContext] = []

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        self.seen.append(ctx)
        return MeasurementOutcome(value=1.0, printed="1")


def _run(status: dict[str, Any] | None) -> AnalysisRun:
    body: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "shop-abc-2-3", "namespace": "shop", "uid": "u1"},
        "spec": {
            "args": [{"name": "service-name", "value": "shop"}, {"name": "token", "value": "s3cr3t"}],
            "metrics": [{"name": "m", "successCondition": "result == 1",
                         "provider": {"plugin": {"test/recorder": {"service": "{{args.service-name}}"}}}}],
        },
    }
    if status is not None:
        body["status"] = status
    return AnalysisRun.model_validate(body)


def _measure_once(run: AnalysisRun) -> MeasureContext:
    recorder = Recorder()

    async def go() -> None:
        executor = AnalysisExecutor(providers={"test/recorder": recorder})
        executor.step(run, NOW)
        await executor.wait_any(5.0)
        await executor.close()

    asyncio.run(go())
    assert len(recorder.seen) == 1
    return recorder.seen[0]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"phase": "Running", "startedAt": (NOW - timedelta(minutes=7)).isoformat()},
         NOW - timedelta(minutes=7)),
        (None, NOW),
    ],
    ids=["stored-start", "no-status-yet"],
)
def test_context_carries_the_run_start_and_args(status: dict[str, Any] | None, expected: datetime) -> None:
    ctx = _measure_once(_run(status))
    assert ctx.run_started_at == expected
    assert dict(ctx.args) == {"service-name": "shop", "token": "s3cr3t"}


def test_args_and_secrets_never_show_in_the_context_repr() -> None:
    ctx = MeasureContext(namespace="n", run_name="r", metric_name="m", measurement_index=1,
                         args={"token": "s3cr3t"}, secrets=("s3cr3t",))
    assert "s3cr3t" not in repr(ctx) and "run_name='r'" in repr(ctx)
    assert MeasureContext(namespace="n", run_name="r", metric_name="m", measurement_index=1).args == {}
