"""Job metrics are owned: a job left running by a killed controller is found again after the restart (its
pid file in the home), waited for instead of started twice, and ended on clean shutdown. Real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rollouts.analysis.providers.job import MARKER_ENV, JobMetricProvider
from tests.providers.conftest import make_ctx, process_gone, wait_until
from tests.providers.test_job import job_metric

PY = sys.executable

# The job: notes each start (with its pid) in a file, runs `seconds`, exits with `code`.
JOB = textwrap.dedent("""
    import os, sys, time
    with open(sys.argv[1], "a") as log:
        log.write(f"started {os.getpid()} {os.environ.get('MARKER', '')}\\n")
    time.sleep(float(sys.argv[2]))
    sys.exit(int(sys.argv[3]))
""").replace("MARKER", MARKER_ENV)

# A "controller" that measures the job with the home's state dir, until it is SIGKILLed.
CONTROLLER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from rollouts.analysis.providers.job import JobMetricProvider
    from tests.providers.conftest import make_ctx
    from tests.providers.test_job import job_metric
    state, log, seconds, code = sys.argv[1:5]
    metric = job_metric([sys.executable, "-c", sys.argv[5], log, seconds, code])
    asyncio.run(JobMetricProvider(state_dir=Path(state)).measure(metric, make_ctx()))
""")


def _starts(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [(int(line.split()[1]), line.split()[2] if len(line.split()) > 2 else "")
            for line in log.read_text().splitlines()]


def _killed_controller(state: Path, log: Path, seconds: float, code: int) -> int:
    """Starts the job from a controller process, SIGKILLs that controller; returns the job's pid."""
    repo = Path(__file__).resolve().parents[2]
    controller = subprocess.Popen([PY, "-c", CONTROLLER, str(state), str(log), str(seconds), str(code), JOB],
                                  cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert wait_until(lambda: len(_starts(log)) == 1, 20), "the job never started"
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait(timeout=10)
    pid = _starts(log)[0][0]
    assert not process_gone(pid), "the job should outlive the killed controller"
    return pid


@pytest.mark.parametrize(("code", "phase"), [(0, "Successful"), (3, "Failed")], ids=["exit-0", "exit-3"])
def test_job_metric_found_again_after_restart_not_started_twice(tmp_path: Path, code: int, phase: str) -> None:
    state, log = tmp_path / "home" / "jobs", tmp_path / "starts.log"
    pid = _killed_controller(state, log, 1.5, code)
    metric = job_metric([PY, "-c", JOB, str(log), "1.5", str(code)])
    outcome = asyncio.run(JobMetricProvider(state_dir=state).measure(metric, make_ctx()))
    assert outcome.phase == phase
    if code:
        assert "exit code 3" in outcome.metadata["message"]
    starts = _starts(log)
    assert [p for p, _ in starts] == [pid], "the job was started a second time"
    assert starts[0][1], f"the job's environment carries {MARKER_ENV}"
    assert process_gone(pid)
    assert list(state.iterdir()) == []  # measured: its folder is gone


def test_job_metric_finished_while_controller_down_is_not_rerun(tmp_path: Path) -> None:
    state, log = tmp_path / "home" / "jobs", tmp_path / "starts.log"
    pid = _killed_controller(state, log, 0.2, 0)
    assert wait_until(lambda: process_gone(pid), 10)
    metric = job_metric([PY, "-c", JOB, str(log), "0.2", "0"])
    outcome = asyncio.run(JobMetricProvider(state_dir=state).measure(metric, make_ctx()))
    assert outcome.phase == "Successful"
    assert len(_starts(log)) == 1


@pytest.mark.parametrize("adopted", [False, True], ids=["own-job", "job-of-earlier-controller"])
def test_job_metric_ended_on_clean_shutdown(tmp_path: Path, adopted: bool) -> None:
    state, log = tmp_path / "home" / "jobs", tmp_path / "starts.log"
    if adopted:
        _killed_controller(state, log, 60, 0)
    metric = job_metric([PY, "-c", JOB, str(log), "60", "0"], terminationGracePeriodSeconds=1)
    provider = JobMetricProvider(state_dir=state, stop_grace_seconds=1)

    async def main() -> None:
        task = asyncio.create_task(provider.measure(metric, make_ctx()))
        deadline = asyncio.get_running_loop().time() + 20
        while not _starts(log) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the measurement is waiting on the job now
        task.cancel()  # what the executor does on shutdown
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    starts = _starts(log)
    assert len(starts) == 1
    assert wait_until(lambda: process_gone(starts[0][0]), 10), "the job outlived the shutdown"
    assert list(state.iterdir()) == []


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
