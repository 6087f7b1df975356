"""The job provider on a cluster: it creates batch/v1 Jobs through the Kubernetes API (a real in-process API
server over SQLite, reached with `KubeStore`), and the local cluster's Job controller runs them as processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from rollouts.analysis.providers.job import (
    HISTORY_LIMIT,
    RUN_UID_LABEL,
    JobMetricProvider,
    _collect_old_jobs,
    job_manifest,
    job_name,
)
from rollouts.kube.client import KubeStore, connect
from rollouts.runtime.local.jobs import JobController
from rollouts.store.protocol import NotFound
from tests.cluster.conftest import Cluster, start_cluster
from tests.conftest import require_tool
from tests.providers.conftest import make_ctx, metric, process_gone, wait_until
from tests.providers.test_job import job_metric

PY = sys.executable
RUN = "guestbook-6c54b-2"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    (tmp_path / "home").mkdir()
    found, stop = start_cluster(tmp_path / "home")
    yield found
    stop()


def analysis_run(cluster: Cluster, name: str = RUN) -> str:
    """An AnalysisRun in the store (the Jobs' owner); its uid."""
    run = cluster.store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                                "metadata": {"name": name, "namespace": "default"},
                                "spec": {"metrics": [{"name": "check", "provider": {"job": {"spec": {}}}}]}})
    return str(run["metadata"]["uid"])


@asynccontextmanager
async def job_controller(cluster: Cluster) -> AsyncIterator[JobController]:
    jobs = JobController(cluster.store, cluster.home, retry_delay=0.05, resync_seconds=0.2)
    await jobs.start()
    try:
        yield jobs
    finally:
        await jobs.close()


def kube(cluster: Cluster) -> KubeStore:
    return connect(kubeconfig=str(cluster.kubeconfig))


def test_job_provider_creates_a_job_owned_by_the_run_and_reports_successful(cluster: Cluster) -> None:
    uid = analysis_run(cluster)
    m = metric("smoke", job={"metadata": {"labels": {"team": "shop"}, "annotations": {"note": "n"}},
                             "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                                 {"name": "c", "image": "python:3.11", "command": [PY, "-c", "print('ok')"]}]}}}})

    async def scenario() -> Any:
        async with job_controller(cluster):
            return await JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(
                m, make_ctx(measurement_index=2))

    outcome = asyncio.run(scenario())
    assert (outcome.phase, outcome.error) == ("Successful", None)
    name = job_name(RUN, "smoke", 2)
    assert outcome.metadata == {"job-name": name}
    stored = cluster.store.get("Job", "default", name)  # kept for `kubectl logs` / `describe`
    meta = stored["metadata"]
    assert meta["labels"] == {"team": "shop", RUN_UID_LABEL: uid}
    assert meta["annotations"]["note"] == "n"
    assert meta["annotations"]["analysisrun.argoproj.io/name"] == RUN
    assert meta["annotations"]["analysisrun.argoproj.io/metric-name"] == "smoke"
    [owner] = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("AnalysisRun", uid, True)
    assert stored["status"]["succeeded"] == 1
    cluster.store.delete("AnalysisRun", "default", RUN)
    with pytest.raises(NotFound):  # the run's Jobs go with it
        cluster.store.get("Job", "default", name)


def test_job_provider_failed_job_is_a_failed_measurement_with_redacted_stderr(cluster: Cluster) -> None:
    analysis_run(cluster)
    m = job_metric([PY, "-c", "import sys; sys.exit('token hunter2 rejected')"])

    async def scenario() -> Any:
        async with job_controller(cluster):
            return await JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(
                m, make_ctx(secrets=["hunter2"]))

    outcome = asyncio.run(scenario())
    assert (outcome.phase, outcome.error) == ("Failed", None)
    assert "exit code 1" in outcome.message and "token ***** rejected" in outcome.message
    assert "hunter2" not in outcome.message and outcome.metadata["message"] == outcome.message


@pytest.mark.parametrize(("container", "fragment"), [
    pytest.param({"name": "c", "image": "curlimages/curl:8.5.0"}, "curlimages/curl:8.5.0", id="image-not-resolvable"),
    pytest.param({"name": "c", "command": ["definitely-not-a-program-xyz"]},
                 "cannot start 'definitely-not-a-program-xyz'", id="start-error"),
])
def test_job_provider_job_the_cluster_cannot_run_is_an_error(cluster: Cluster, container: dict[str, Any],
                                                             fragment: str) -> None:
    analysis_run(cluster)
    m = metric("m", job={"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}})

    async def scenario() -> Any:
        async with job_controller(cluster):
            return await JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(m, make_ctx())

    outcome = asyncio.run(scenario())
    assert outcome.phase == "Error" and outcome.error is not None
    assert outcome.error.startswith(f"job {job_name(RUN, 'm', 1)}: ") and fragment in outcome.error


def test_job_provider_finds_the_job_an_earlier_operator_created_instead_of_a_second(
        cluster: Cluster, tmp_path: Path) -> None:
    uid = analysis_run(cluster)
    starts = tmp_path / "starts"
    script = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(1)"
    m = job_metric([PY, "-c", script, str(starts)])
    ctx = make_ctx()
    # What the operator killed mid-measurement left: its Job, running.
    cluster.store.create(job_manifest(m, ctx, job_name(RUN, m.name, 1), uid))

    async def scenario() -> Any:
        async with job_controller(cluster):
            assert await _until(starts.exists)
            return await JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(m, ctx)

    outcome = asyncio.run(scenario())
    assert outcome.phase == "Successful"
    assert len(starts.read_text().split()) == 1, "a second job was started"
    assert len(cluster.store.list("Job")) == 1


def test_job_provider_job_of_another_owner_is_not_taken_over(cluster: Cluster) -> None:
    analysis_run(cluster)
    m = job_metric([PY, "-c", "pass"])
    ctx = make_ctx()
    cluster.store.create(job_manifest(m, ctx, job_name(RUN, m.name, 1), "some-other-uid"))
    outcome = asyncio.run(JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(m, ctx))
    assert outcome.phase == "Error" and "not owned by analysisrun" in (outcome.error or "")


def test_job_provider_cancelled_measurement_deletes_the_job_and_stops_its_process(
        cluster: Cluster, tmp_path: Path) -> None:
    analysis_run(cluster)
    pid_file = tmp_path / "pid"
    m = job_metric([PY, "-c", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                              "time.sleep(60)"], terminationGracePeriodSeconds=1)

    async def scenario() -> int:
        async with job_controller(cluster):
            task = asyncio.create_task(JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(m, make_ctx()))
            assert await _until(lambda: pid_file.exists() and pid_file.read_text())
            task.cancel()  # the executor does this when the run is terminated
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(NotFound):
                cluster.store.get("Job", "default", job_name(RUN, m.name, 1))
            pid = int(pid_file.read_text())
            assert await _until(lambda: process_gone(pid))
            return pid

    asyncio.run(scenario())


def test_job_provider_keeps_the_last_ten_jobs_of_a_run(cluster: Cluster) -> None:
    uid = analysis_run(cluster)
    m = job_metric([PY, "-c", "pass"])
    for index in range(1, HISTORY_LIMIT + 3):
        cluster.store.create(job_manifest(m, make_ctx(), job_name(RUN, m.name, index), uid))
    other = cluster.store.create(job_manifest(m, make_ctx(run_name="other"), "other.check.1", "other-uid"))
    _collect_old_jobs(kube(cluster), "default", uid)
    left = sorted(int(j["metadata"]["name"].rpartition(".")[2]) for j in cluster.store.list(
        "Job", "default", label_selector=f"{RUN_UID_LABEL}={uid}"))
    assert left == list(range(3, HISTORY_LIMIT + 3))
    assert cluster.store.get("Job", "default", other["metadata"]["name"])


async def _until(predicate: Any, timeout: float = 20.0) -> bool:
    return await asyncio.to_thread(wait_until, predicate, timeout)


def test_job_provider_job_logs_and_status_read_with_kubectl(cluster: Cluster) -> None:
    kubectl = require_tool("kubectl", "apt-get install kubernetes-client (Debian)")
    analysis_run(cluster)
    m = job_metric([PY, "-c", "print('checked 42 rows')"])

    async def scenario() -> Any:
        async with job_controller(cluster):
            return await JobMetricProvider(store=kube(cluster), poll_seconds=0.05).measure(m, make_ctx())

    assert asyncio.run(scenario()).phase == "Successful"
    name = job_name(RUN, m.name, 1)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.home)}

    def run(*args: str) -> str:
        done = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    assert "checked 42 rows" in run("logs", f"job/{name}")
    assert run("get", "job", name, "-o", "jsonpath={.status.succeeded}") == "1"
    assert name in run("get", "pods", "-l", f"job-name={name}", "-o", "name")
    [row] = [line.split() for line in run("get", "jobs").splitlines()[1:]]
    assert row[:2] == [name, "1/1"], row
    assert "Completed" in run("get", "events", "--field-selector", f"involvedObject.name={name}")
