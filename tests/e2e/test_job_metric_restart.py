"""A `job` metric's process across controller restarts, with a real controller process: SIGKILL while the
job runs, restart, and the job is waited for (one start, one measurement); SIGTERM ends a running job."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.e2e.harness import ControllerProcess, wait_until
from tests.e2e.processes import alive

# The job notes its pid in a file, runs `seconds`, succeeds.
JOB = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(float(sys.argv[2]))"


def analysis_run(name: str, starts: Path, seconds: float) -> dict[str, object]:
    container = {"name": "check", "image": "python:3.11", "command": [sys.executable, "-c", JOB, str(starts),
                                                                      str(seconds)]}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"metrics": [{"name": "check", "count": 1, "provider": {"job": {"spec": {
                "backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}}}}]}}


def started(starts: Path) -> list[int]:
    return [int(line) for line in starts.read_text().split()] if starts.exists() else []


def run_status(ctl: ControllerProcess, name: str) -> dict[str, object]:
    return dict(ctl.store().get("AnalysisRun", "default", name).get("status") or {})


def test_job_metric_survives_controller_kill_once_and_ends_on_shutdown(
        controller: ControllerProcess, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    manifest = tmp_path / "run.json"
    manifest.write_text(json.dumps(analysis_run("job-restart", starts, 4)))
    controller.cli("create", "-f", str(manifest))
    wait_until(lambda: started(starts), 30, "the job to start")
    controller.kill()
    (pid,) = started(starts)
    assert alive(pid), "the job runs on while no controller is there"
    controller.start()
    wait_until(lambda: run_status(controller, "job-restart").get("phase") == "Successful", 60,
               "the run to finish Successful")
    assert started(starts) == [pid], "the job was started a second time"
    metric = run_status(controller, "job-restart")["metricResults"][0]  # type: ignore[index]
    assert (metric["count"], metric["successful"]) == (1, 1), metric
    assert not list((controller.home / "jobs").iterdir())

    # A clean shutdown ends a job still running.
    long_starts = tmp_path / "long-starts"
    manifest.write_text(json.dumps(analysis_run("job-shutdown", long_starts, 120)))
    controller.cli("create", "-f", str(manifest))
    wait_until(lambda: started(long_starts), 30, "the long job to start")
    (long_pid,) = started(long_starts)
    controller.stop()
    wait_until(lambda: not alive(long_pid), 20, "the job to end with the controller")
