"""The job provider without a cluster (`rollouts analyze --once`): the Job runs here, through the local
cluster's planner and attempt loop, with real processes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from rollouts.analysis.providers import JobMetricProvider
from rollouts.analysis.providers.job import DEADLINE_MESSAGE, job_name
from rollouts.runtime.local.job_metric import local_job_provider
from tests.providers.conftest import (
    async_wait_until,
    make_ctx,
    metric,
    process_gone,
    run,
    wait_until,
)

PY = sys.executable


def job_metric(argv: list[str], **options: Any) -> Any:
    """A job metric that is not retried unless asked (Kubernetes' default is 6 retries)."""
    from tests.providers.conftest import job_metric as build

    options.setdefault("backoffLimit", 0)
    return build(argv, **options)


def measure(m: Any, provider: JobMetricProvider | None = None, **ctx: Any) -> Any:
    return run((provider or local_job_provider()).measure(m, make_ctx(**ctx)))


def test_exit_zero_is_successful() -> None:
    outcome = measure(job_metric([PY, "-c", "print('all good')"], name="smoke"), measurement_index=3)
    assert (outcome.phase, outcome.error) == ("Successful", None)
    assert outcome.metadata == {"job-name": "guestbook-6c54b-2.smoke.3"}


def test_non_zero_exit_fails_with_code_and_stderr_tail() -> None:
    script = "import sys\nfor i in range(30): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    outcome = measure(job_metric([PY, "-c", script]))
    assert (outcome.phase, outcome.error) == ("Failed", None)
    message = outcome.metadata["message"]
    assert "exit code 3" in message
    assert message.rstrip().endswith("line 29") and "line 20" in message
    assert "line 19\n" not in message  # only the last lines


def test_killed_by_signal_is_described() -> None:
    outcome = measure(job_metric([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]))
    assert outcome.phase == "Failed" and "killed by signal SIGKILL" in outcome.metadata["message"]


def test_env_values_and_references_reach_the_process() -> None:
    # The script reports what it got on stderr and fails, so the message shows it.
    script = "import os, sys; sys.exit(repr([os.environ['GREETING'], os.environ['FULL'], *sys.argv[1:]]))"
    outcome = measure(job_metric([PY, "-c", script, "$(GREETING)/x", "$$(GREETING)", "$(UNKNOWN)"],
                                 env={"GREETING": "hello", "FULL": "$(GREETING)-world"}))
    assert outcome.phase == "Failed"
    last_line = outcome.metadata["message"].splitlines()[-1]
    assert last_line == "['hello', 'hello-world', 'hello/x', '$(GREETING)', '$(UNKNOWN)']"


def test_runs_in_its_working_folder_whatever_working_dir_says(tmp_path: Path) -> None:
    """A manifest's workingDir is a container path: an existing host folder of that name is not used."""
    script = "import os, sys; sys.exit('cwd=' + os.getcwd())"
    scratch = measure(job_metric([PY, "-c", script]))
    assert scratch.phase == "Failed" and "/work" in scratch.metadata["message"]
    assert not (Path.cwd() / "marker").exists()
    spec = job_metric([PY, "-c", script]).model_dump(by_alias=True, exclude_none=True)
    spec["provider"]["job"]["spec"]["template"]["spec"]["containers"][0]["workingDir"] = str(tmp_path)
    outcome = measure(metric("m", **spec["provider"]))
    cwd = outcome.metadata["message"].splitlines()[-1].removeprefix("cwd=")
    assert cwd.endswith("/work" + str(tmp_path)) and cwd != str(tmp_path)


def test_deadline_kills_and_fails(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    outcome = measure(job_metric([PY, "-c", script], activeDeadlineSeconds=3))  # room for a slow start
    assert outcome.phase == "Failed"
    assert outcome.metadata["message"] == DEADLINE_MESSAGE
    assert wait_until(lambda: process_gone(int(pid_file.read_text())))


def test_backoff_limit_retries_until_success(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    script = (f"import sys; f = open({str(attempts)!r}, 'a+'); f.write('x'); f.seek(0); "
              "sys.exit(0 if len(f.read()) >= 3 else 1)")
    provider = local_job_provider(retry_delay_seconds=0.01)
    outcome = measure(job_metric([PY, "-c", script], backoffLimit=2), provider)
    assert outcome.phase == "Successful"
    assert attempts.read_text() == "xxx"


def test_backoff_limit_exhausted_fails(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    script = f"import sys; open({str(attempts)!r}, 'a').write('x'); sys.exit(2)"
    provider = local_job_provider(retry_delay_seconds=0.01)
    outcome = measure(job_metric([PY, "-c", script], backoffLimit=1), provider)
    assert outcome.phase == "Failed" and "exit code 2" in outcome.metadata["message"]
    assert attempts.read_text() == "xx"


def test_cancellation_kills_the_process_group_and_propagates(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The job starts a grandchild: both must go when the measurement is cancelled.
    script = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        f"os.rename({str(pids)!r} + '.tmp', {str(pids)!r})\n"
        "time.sleep(60)\n"
    )

    async def scenario() -> list[int]:
        task = asyncio.create_task(local_job_provider(stop_grace_seconds=2).measure(
            job_metric([PY, "-c", script]), make_ctx()))
        assert await async_wait_until(pids.exists)
        running = [int(p) for p in pids.read_text().split()]
        assert not any(process_gone(pid) for pid in running)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running

    running = run(scenario())
    assert wait_until(lambda: all(process_gone(pid) for pid in running))


def test_processes_left_behind_by_a_finished_job_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
    )
    outcome = measure(job_metric([PY, "-c", script]))
    assert outcome.phase == "Successful"
    assert wait_until(lambda: process_gone(int(pid_file.read_text())))


@pytest.mark.parametrize(("container", "fragments"), [
    pytest.param({"name": "c", "image": "curlimages/curl:8.5.0"},
                 ["has no command", "curlimages/curl:8.5.0", "cannot be run locally", "image map"],
                 id="no-command"),
    pytest.param({"name": "c", "command": ["definitely-not-a-program-xyz"]},
                 ["cannot start 'definitely-not-a-program-xyz'"], id="not-found"),
    pytest.param({"name": "c", "command": ["./check.sh"]}, ["workingDir"], id="relative-path-hint"),
    pytest.param({"name": "c", "command": [PY], "env": [{"name": "T", "valueFrom": {"secretKeyRef": {
        "name": "s", "key": "k"}}}]}, ["env[0] (T) uses valueFrom"], id="env-value-from"),
])
def test_unrunnable_containers_are_errors(container: dict[str, Any], fragments: list[str]) -> None:
    m = metric("m", job={"spec": {"template": {"spec": {"containers": [container]}}}})
    outcome = measure(m)
    assert outcome.phase == "Error" and outcome.error is not None
    for fragment in fragments:
        assert fragment in outcome.error
    assert outcome.metadata["job-name"] == "guestbook-6c54b-2.m.1"


def test_secrets_in_stderr_are_redacted() -> None:
    outcome = measure(job_metric([PY, "-c", "import sys; sys.exit('token hunter2 rejected')"]),
                      secrets=["hunter2"])
    message = outcome.metadata["message"]
    assert "token ***** rejected" in message and "hunter2" not in message


@pytest.mark.parametrize(("run_name", "metric_name", "index", "expected"), [
    ("r", "m", 1, "r.m.1"),
    ("run-" + "a" * 40, "metric-" + "b" * 30, 12, "run-" + "a" * 40 + ".metric-" + "b" * 8 + ".12"),
])
def test_job_name_fits_63_characters(run_name: str, metric_name: str, index: int, expected: str) -> None:
    name = job_name(run_name, metric_name, index)
    assert name == expected and len(name) <= 63


@pytest.mark.parametrize(("code", "exit_code", "phase"), [(0, 0, "Successful"), (4, 1, "Failed")],
                         ids=["exit-0", "exit-4"])
def test_analyze_once_runs_job_metrics_here_without_a_cluster(tmp_path: Path, code: int, exit_code: int,
                                                              phase: str) -> None:
    import json
    import os
    import subprocess

    template = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "smoke"},
                "spec": {"metrics": [{"name": "check", "provider": {"job": {"spec": {"backoffLimit": 0, "template": {
                    "spec": {"restartPolicy": "Never", "containers": [
                        {"name": "c", "image": "python:3.11", "command": [PY, "-c", f"import sys; sys.exit({code})"]}]}}}}}}]}}
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template))
    home = tmp_path / "home"
    done = subprocess.run([PY, "-m", "rollouts", "analyze", "-f", str(path), "--once"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "ROLLOUTS_HOME": str(home), "KUBECONFIG": str(tmp_path / "none")})
    assert done.returncode == exit_code, done.stdout + done.stderr
    assert f"AnalysisRun {phase}" in done.stdout
    assert not (home / "apiserver.json").exists()  # no cluster was started for it
