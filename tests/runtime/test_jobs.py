"""The local cluster's Job controller with real processes over a real SQLite store: Job status as Kubernetes
writes it, retries, the deadline, deletion, Pods per attempt, and Jobs outliving a killed cluster process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.images import ImageResolver
from rollouts.runtime.local.jobs import (
    BACKOFF_REASON,
    DEADLINE_MESSAGE,
    DEADLINE_REASON,
    IMAGE_REASON,
    START_REASON,
    STATE_DIR,
    JobController,
    stop_job_processes,
    terminal_condition,
)
from rollouts.store.home import database_path
from tests.providers.conftest import process_gone, wait_until

PY = sys.executable


def job(name: str, argv: list[str] | None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "check", "image": spec.pop("image", "python:3.11")}
    if argv is not None:
        container.update(command=argv[:1], args=argv[1:])
    spec.setdefault("backoffLimit", 0)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                                           "containers": [container]}}, **spec}}


@asynccontextmanager
async def controller(home: Path, **options: Any) -> AsyncIterator[tuple[SQLiteStore, JobController]]:
    store = SQLiteStore(database_path(home))
    jobs = JobController(store, home, retry_delay=options.pop("retry_delay", 0.05), resync_seconds=0.2, **options)
    await jobs.start()
    try:
        yield store, jobs
    finally:
        await jobs.close()
        store.close()


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        found = predicate()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def finished(store: SQLiteStore, name: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        found = store.get("Job", "default", name)
        return found if terminal_condition(found) else None

    return check


def pods_of(store: SQLiteStore, name: str) -> list[dict[str, Any]]:
    return store.list("Pod", "default", label_selector=f"job-name={name}")


def test_job_controller_success_writes_complete_status_and_a_pod_with_its_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with controller(tmp_path) as (store, _):
            store.create(job("ok", [PY, "-c", "import sys; print('to stdout'); print('to stderr', file=sys.stderr)"]))
            done = await until(finished(store, "ok"))
            status = done["status"]
            assert terminal_condition(done) is not None and terminal_condition(done)["type"] == "Complete"
            assert (status["succeeded"], status["active"], status["failed"]) == (1, 0, 0)
            assert status["startTime"] and status["completionTime"]
            [pod] = pods_of(store, "ok")
            assert pod["status"]["phase"] == "Succeeded"
            assert pod["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]
            log = (tmp_path / "logs" / f"{pod['metadata']['name']}.log").read_text()
            assert "to stdout" in log and "to stderr" in log  # `kubectl logs` shows both streams
            events = [(e["reason"], e["message"]) for e in store.list(
                "Event", "default", field_selector="involvedObject.name=ok")]
            assert sorted(events) == [("Completed", "Job completed"),
                                      ("SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")]

    asyncio.run(scenario())


def test_job_controller_failure_reports_backoff_limit_with_stderr_tail(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(30): print(f'line {i}', file=sys.stderr)\nprint('noise')\nsys.exit(3)"

    async def scenario() -> None:
        async with controller(tmp_path) as (store, _):
            store.create(job("bad", [PY, "-c", script]))
            done = await until(finished(store, "bad"))
            condition = terminal_condition(done)
            assert condition is not None
            assert (condition["type"], condition["reason"]) == ("Failed", BACKOFF_REASON)
            assert "exit code 3" in condition["message"]
            assert condition["message"].rstrip().endswith("line 29") and "line 20" in condition["message"]
            assert "line 19\n" not in condition["message"] and "noise" not in condition["message"]
            assert (done["status"]["failed"], done["status"].get("succeeded", 0)) == (1, 0)
            assert "completionTime" not in done["status"]  # as Kubernetes: only a Complete Job has one
            events = store.list("Event", "default", field_selector="involvedObject.name=bad")
            assert ("Warning", BACKOFF_REASON, "Job has reached the specified backoff limit") in [
                (e["type"], e["reason"], e["message"]) for e in events]

    asyncio.run(scenario())


@pytest.mark.parametrize(("succeed_at", "backoff", "condition", "failed", "starts"), [
    pytest.param(3, 2, "Complete", 2, 3, id="retried-until-success"),
    pytest.param(99, 1, "Failed", 2, 2, id="backoff-limit-exhausted"),
    pytest.param(99, None, "Failed", 7, 7, id="kubernetes-default-six-retries"),
])
def test_job_controller_backoff_limit_retries(tmp_path: Path, succeed_at: int, backoff: int | None,
                                              condition: str, failed: int, starts: int) -> None:
    attempts = tmp_path / "attempts"
    script = (f"import sys; f = open({str(attempts)!r}, 'a+'); f.write('x'); f.seek(0); "
              f"sys.exit(0 if len(f.read()) >= {succeed_at} else 1)")
    spec = job("retry", [PY, "-c", script])
    if backoff is None:
        del spec["spec"]["backoffLimit"]
    else:
        spec["spec"]["backoffLimit"] = backoff

    async def scenario() -> None:
        async with controller(tmp_path, retry_delay=0.01) as (store, _):
            store.create(spec)
            done = await until(finished(store, "retry"), 60)
            assert terminal_condition(done)["type"] == condition  # type: ignore[index]
            assert done["status"]["failed"] == failed
            assert len(pods_of(store, "retry")) == starts  # one Pod per attempt

    asyncio.run(scenario())
    assert attempts.read_text() == "x" * starts


def test_job_controller_deadline_kills_and_fails(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"

    async def scenario() -> None:
        async with controller(tmp_path) as (store, _):
            store.create(job("slow", [PY, "-c", script], activeDeadlineSeconds=3))
            await until(pid_file.exists)
            done = await until(finished(store, "slow"))
            condition = terminal_condition(done)
            assert condition is not None
            assert (condition["reason"], condition["message"]) == (DEADLINE_REASON, DEADLINE_MESSAGE)

    asyncio.run(scenario())
    assert wait_until(lambda: process_gone(int(pid_file.read_text())))


def test_job_controller_deleted_job_has_its_process_group_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        f"os.rename({str(pids)!r} + '.tmp', {str(pids)!r})\n"
        "time.sleep(60)\n"
    )

    async def scenario() -> list[int]:
        async with controller(tmp_path) as (store, _):
            store.create(job("doomed", [PY, "-c", script]))
            await until(pids.exists)
            running = [int(p) for p in pids.read_text().split()]
            assert store.get("Job", "default", "doomed")["status"]["active"] == 1
            store.delete("Job", "default", "doomed")
            await until(lambda: all(process_gone(pid) for pid in running))
            await until(lambda: not list((tmp_path / STATE_DIR).iterdir()))
            assert not pods_of(store, "doomed")  # the attempt's Pod went with its Job
            assert not list((tmp_path / "logs").iterdir())
            return running

    asyncio.run(scenario())


def test_job_controller_unresolvable_image_fails_at_once_and_mapped_image_runs(tmp_path: Path) -> None:
    images = tmp_path / "images.yaml"
    marker = tmp_path / "ran"
    images.write_text(f'"checker:*": {{command: ["{PY}", "-c", "open({str(marker)!r}, \'w\').write(\'{{tag}}\')"]}}\n')

    async def scenario() -> None:
        async with controller(tmp_path, images=ImageResolver(images)) as (store, _):
            store.create(job("unknown", None, image="curlimages/curl:8.5.0"))
            store.create(job("mapped", None, image="checker:v2"))
            condition = terminal_condition(await until(finished(store, "unknown")))
            assert condition is not None and condition["reason"] == IMAGE_REASON
            assert "curlimages/curl:8.5.0" in condition["message"] and "image map" in condition["message"]
            assert terminal_condition(await until(finished(store, "mapped")))["type"] == "Complete"  # type: ignore[index]

    asyncio.run(scenario())
    assert marker.read_text() == "v2"


# A cluster process running the Job controller, until it is SIGKILLed.
CLUSTER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from rollouts.runtime.local.jobs import JobController
    from rollouts.store.home import database_path
    from rollouts.cluster.store import SQLiteStore

    async def main() -> None:
        home = Path(sys.argv[1])
        jobs = JobController(SQLiteStore(database_path(home)), home, resync_seconds=0.2)
        await jobs.start()
        await asyncio.Event().wait()

    asyncio.run(main())
""")

JOB = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(float(sys.argv[2]))"


def _killed_cluster(home: Path, starts: Path) -> int:
    repo = Path(__file__).resolve().parents[2]
    cluster = subprocess.Popen([PY, "-c", CLUSTER, str(home)], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert wait_until(lambda: starts.exists() and starts.read_text().strip(), 20), "the job never started"
    finally:
        cluster.send_signal(signal.SIGKILL)
        cluster.wait(timeout=10)
    (pid,) = [int(line) for line in starts.read_text().split()]
    assert not process_gone(pid), "the job should outlive the killed cluster process"
    return pid


def test_job_controller_job_outlives_a_killed_cluster_and_is_not_started_twice(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    store = SQLiteStore(database_path(tmp_path))
    store.create(job("survivor", [PY, "-c", JOB, str(starts), "2"]))
    store.close()
    pid = _killed_cluster(tmp_path, starts)

    async def scenario() -> None:
        async with controller(tmp_path) as (store, _):
            done = await until(finished(store, "survivor"))
            assert terminal_condition(done)["type"] == "Complete"  # type: ignore[index]
            assert len(pods_of(store, "survivor")) == 1

    asyncio.run(scenario())
    assert [int(line) for line in starts.read_text().split()] == [pid], "the job was started a second time"


def test_job_controller_job_deleted_while_cluster_down_is_killed_on_start_or_down(tmp_path: Path) -> None:
    for name, by_down in (("gone-at-start", False), ("gone-at-down", True)):
        starts = tmp_path / f"{name}.starts"
        store = SQLiteStore(database_path(tmp_path))
        store.create(job(name, [PY, "-c", JOB, str(starts), "60"]))
        store.close()
        pid = _killed_cluster(tmp_path, starts)
        if by_down:
            assert stop_job_processes(tmp_path) == 1  # `rollouts cluster down` with no cluster process
            assert wait_until(lambda: process_gone(pid)), "down left the job running"  # noqa: B023
            continue
        store = SQLiteStore(database_path(tmp_path))
        store.delete("Job", "default", name)
        store.close()

        async def scenario() -> None:
            async with controller(tmp_path):
                await until(lambda: process_gone(pid))  # noqa: B023

        asyncio.run(scenario())


def test_job_runs_in_the_cluster_process_outlives_its_sigkill_and_cluster_down_stops_it(tmp_path: Path) -> None:
    from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
    from rollouts.cluster.apiserver.server import read_state, start_background, stop_background
    from rollouts.cluster.runtime_options import RuntimeOptions
    from rollouts.kube.client import connect

    home = tmp_path / "home"
    home.mkdir()
    first, second = tmp_path / "first.starts", tmp_path / "second.starts"
    try:
        start_background(home, runtime=RuntimeOptions(probe_period=0.2))
        api = connect(kubeconfig=str(kubeconfig_path(home)))
        api.create(job("short", [PY, "-c", JOB, str(first), "3"]))
        assert wait_until(lambda: first.exists() and first.read_text().strip(), 30), "the job never started"
        (pid,) = [int(line) for line in first.read_text().split()]
        running = read_state(home)
        assert running is not None
        os.kill(running.pid, signal.SIGKILL)
        assert wait_until(lambda: process_gone(running.pid)), "the cluster process did not die"
        assert not process_gone(pid), "the job should outlive the killed cluster process"
        start_background(home, runtime=RuntimeOptions(probe_period=0.2))
        api = connect(kubeconfig=str(kubeconfig_path(home)))
        assert wait_until(lambda: terminal_condition(api.get("Job", "default", "short")) is not None, 30)
        assert terminal_condition(api.get("Job", "default", "short"))["type"] == "Complete"  # type: ignore[index]
        assert [int(line) for line in first.read_text().split()] == [pid], "the job was started a second time"

        api.create(job("long", [PY, "-c", JOB, str(second), "120"]))
        assert wait_until(lambda: second.exists() and second.read_text().strip(), 30), "the long job never started"
        (long_pid,) = [int(line) for line in second.read_text().split()]
    finally:
        stop_background(home)
    assert wait_until(lambda: process_gone(long_pid), 20), "cluster down left the job running"


def test_job_controller_restart_during_backoff_keeps_the_failure_count(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    script = f"import sys; open({str(attempts)!r}, 'a').write('x'); sys.exit(1)"
    store = SQLiteStore(database_path(tmp_path))
    store.create(job("flaky", [PY, "-c", script], backoffLimit=2))
    repo = Path(__file__).resolve().parents[2]
    # The cluster process waits 10 s after the first failure: it is killed during that back-off.
    cluster = subprocess.Popen([PY, "-c", CLUSTER, str(tmp_path)], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert wait_until(lambda: (store.get("Job", "default", "flaky").get("status") or {}).get("failed") == 1, 20)
    finally:
        cluster.send_signal(signal.SIGKILL)
        cluster.wait(timeout=10)
    store.close()

    async def scenario() -> None:
        async with controller(tmp_path, retry_delay=0.01) as (store, _):
            done = await until(finished(store, "flaky"))
            condition = terminal_condition(done)
            assert condition is not None and condition["reason"] == BACKOFF_REASON
            assert done["status"]["failed"] == 3
            assert "attempt 3 of 3" in condition["message"]

    asyncio.run(scenario())
    assert attempts.read_text() == "xxx"


def test_job_controller_retries_a_job_whose_status_write_failed(tmp_path: Path) -> None:
    class Flaky(SQLiteStore):
        failures = 1

        def patch(self, kind: str, namespace: str, name: str, patch: Any, *args: Any, **kwargs: Any) -> Any:
            if kind == "Job" and "status" in patch and Flaky.failures:
                Flaky.failures -= 1
                raise RuntimeError("the store is briefly unavailable")
            return super().patch(kind, namespace, name, patch, *args, **kwargs)

    async def scenario() -> None:
        store = Flaky(database_path(tmp_path))
        jobs = JobController(store, tmp_path, retry_delay=0.01, resync_seconds=0.2)
        await jobs.start()
        try:
            store.create(job("once", [PY, "-c", "pass"]))
            done = await until(finished(store, "once"))
            assert terminal_condition(done)["type"] == "Complete"  # type: ignore[index]
        finally:
            await jobs.close()
            store.close()

    asyncio.run(scenario())


def test_job_controller_ttl_seconds_after_finished_deletes_the_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with controller(tmp_path) as (store, _):
            store.create(job("kept", [PY, "-c", "pass"]))
            store.create(job("expiring", [PY, "-c", "pass"], ttlSecondsAfterFinished=1))
            await until(finished(store, "kept"))
            await until(lambda: not store.list("Job", "default", field_selector="metadata.name=expiring"))
            assert not pods_of(store, "expiring")  # its Pods went with it
            await until(lambda: len(list((tmp_path / STATE_DIR).iterdir())) == 1)  # and its folder
            assert store.get("Job", "default", "kept")

    asyncio.run(scenario())


def test_job_controller_close_bounds_the_grace_period_of_running_attempts(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # Ignores SIGTERM: only the SIGKILL after the grace period ends it.
    script = (f"import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
    spec = job("stubborn", [PY, "-c", script])
    del spec["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]  # Kubernetes' 30 s

    async def scenario() -> float:
        store = SQLiteStore(database_path(tmp_path))
        jobs = JobController(store, tmp_path, resync_seconds=0.2)
        await jobs.start()
        try:
            store.create(spec)
            await until(lambda: pid_file.exists() and pid_file.read_text())
            began = asyncio.get_running_loop().time()
            await jobs.close(grace_seconds=0.5)
            return asyncio.get_running_loop().time() - began
        finally:
            store.close()

    took = asyncio.run(scenario())
    assert took < 10, f"close waited {took:.1f}s"
    assert wait_until(lambda: process_gone(int(pid_file.read_text())))


@pytest.mark.parametrize(("argv", "fragment", "pods"), [
    pytest.param(["definitely-not-a-program-xyz"], "cannot start 'definitely-not-a-program-xyz'", 1, id="not-found"),
    pytest.param([PY, "-c", "pass\x00"], "null byte", 0, id="nul-byte"),
])
def test_job_controller_command_that_cannot_start_fails_with_start_error(tmp_path: Path, argv: list[str],
                                                                         fragment: str, pods: int) -> None:
    async def scenario() -> None:
        async with controller(tmp_path) as (store, _):
            store.create(job("unstartable", argv, backoffLimit=3))
            condition = terminal_condition(await until(finished(store, "unstartable")))
            assert condition is not None and condition["reason"] == START_REASON, condition
            assert fragment in condition["message"]
            found = pods_of(store, "unstartable")
            assert len(found) == pods and all(p["status"]["phase"] == "Failed" for p in found)

    asyncio.run(scenario())
