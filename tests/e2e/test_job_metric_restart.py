"""A `job` metric across operator restarts, with real processes: the operator creates a batch/v1 Job, the
local cluster runs it; SIGKILL the operator while the job runs, restart it, and the Job it created is waited
for (one start, one measurement); a clean shutdown cancels the measurement, which deletes the Job and so
ends its process."""

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
    store = controller.store()
    [job] = store.list("Job", "default")  # one Job, kept for `kubectl logs` / `describe`
    assert job["metadata"]["name"] == "job-restart.check.1" and job["status"]["succeeded"] == 1
    assert len(store.list("Pod", "default", label_selector="job-name=job-restart.check.1")) == 1

    # A clean shutdown ends a job still running.
    long_starts = tmp_path / "long-starts"
    manifest.write_text(json.dumps(analysis_run("job-shutdown", long_starts, 120)))
    controller.cli("create", "-f", str(manifest))
    wait_until(lambda: started(long_starts), 30, "the long job to start")
    (long_pid,) = started(long_starts)
    controller.stop()
    wait_until(lambda: not alive(long_pid), 20, "the job to end with the controller")
    assert [j["metadata"]["name"] for j in controller.store().list("Job", "default")] == ["job-restart.check.1"]
