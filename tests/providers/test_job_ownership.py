"""A restarted operator asks for the job measurement in flight under the same number, so the job provider
finds the Job it created (same name) instead of creating a second one. The Job surviving the restart itself
is the cluster's part: tests/runtime/test_jobs.py and tests/e2e/test_job_metric_restart.py."""

from __future__ import annotations

import asyncio


def test_job_metric_restarted_executor_numbers_the_measurement_in_flight_alike() -> None:
    from datetime import UTC, datetime

    from rollouts.analysis.executor import AnalysisExecutor
    from rollouts.analysis.outcome import MeasurementOutcome
    from rollouts.spec.analysis import AnalysisRun

    seen: list[int] = []

    class Recorder:
        type_label = "Job"

        async def measure(self, metric: object, ctx: object) -> MeasurementOutcome:
            seen.append(ctx.measurement_index)  # type: ignore[attr-defined]
            return MeasurementOutcome(phase="Successful")

    run = AnalysisRun.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "shop-1", "namespace": "default", "uid": "u-1"},
        "spec": {"metrics": [{"name": "check", "interval": "1s", "count": 10,
                              "provider": {"job": {"spec": {"template": {"spec": {"containers": [
                                  {"name": "c", "image": "i", "command": ["true"]}]}}}}}}]},
        "status": {"phase": "Running", "startedAt": "2024-05-01T12:00:00Z",
                   "metricResults": [{"name": "check", "phase": "Running", "count": 2, "error": 1}]},
    })

    async def main() -> None:
        executor = AnalysisExecutor(providers={"job": Recorder()})  # type: ignore[dict-item]
        executor.step(run, datetime(2024, 5, 1, 12, 1, tzinfo=UTC))
        await executor.wait_any(5.0)
        await executor.close()

    asyncio.run(main())
    assert seen == [4]  # 2 measured + 1 error before the restart: the one in flight is the 4th
