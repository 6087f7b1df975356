"""Pods (and Job attempts) outlive the local cluster process and are re-adopted by the next one, as containers outlive a
kubelet restart: SIGKILL the cluster, the pod keeps serving; start it again, the same process (pid and start
time) is Ready again and the Service and Ingress listeners come back on their recorded ports. A pod that
ended meanwhile restarts as after a crash. `cluster down` leaves no process of the home behind, also after
a SIGKILL. Real processes: the demo service as the pod, the cluster as its background process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.cli.cluster import cluster_app
from rollouts.cluster.apiserver.server import read_state, start_background, stop_background
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.kube.client import KubeStore, connect
from rollouts.runtime.local.processes import (
    JOB_PID_ANNOTATION,
    JOB_PID_START_ANNOTATION,
    PID_ANNOTATION,
    PID_START_ANNOTATION,
    alive,
    recorded,
    signal_group,
)
from rollouts.runtime.local.supervisor import OWNER_ENV
from tests.cluster.test_cluster_runtime import (
    answers,
    pod_address,
    ready_replicas,
    replica_set,
    service,
    wait_for,
)

HOST = "shop.example.com"
# No Prometheus pod: fewer processes to start on a loaded machine (a pod process not yet recorded when the cluster
# is SIGKILLed is found by its environment: tests/cluster/test_leftover_marked_pods.py).
OPTIONS = RuntimeOptions(probe_period=0.2, prometheus=False)


def ingress(name: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"rules": [{"host": HOST, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}


def through_ingress(port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": HOST})
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 (loopback)
        return int(reply.status)


def processes_using(home: Path) -> list[int]:
    """Pids of the processes (other than this one) with a file under `home` open."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd).startswith(str(home)) for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
    return found


def sigkill_cluster(home: Path) -> int:
    running = read_state(home)
    assert running is not None
    os.kill(running.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(running.pid, 0)  # start_background's child: reap it
    return running.pid


def ready_pod(kube: KubeStore, pid: int | None = None) -> dict[str, Any]:
    """The one pod of shop-abc once a running cluster reports it Ready (with a new process unless `pid`)."""
    def probe() -> dict[str, Any] | None:
        pods = kube.list("Pod", "default")
        if len(pods) != 1:
            return None
        pod = pods[0]
        notes = pod["metadata"].get("annotations") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
        fresh = notes.get(PID_ANNOTATION) == str(pid) if pid else PID_ANNOTATION in notes
        return pod if ready and fresh else None
    return wait_for("the pod Ready", probe)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[Path, KubeStore]]:
    home = tmp_path / "home"
    home.mkdir()
    start_background(home, runtime=OPTIONS)
    kube = connect(kubeconfig=str(home / "kubeconfig"))
    for obj in (service("shop"), ingress("shop"), replica_set("shop", 1)):
        kube.create(obj)
    wait_for("the ReplicaSet's pod ready", ready_replicas(kube, "shop", 1))
    yield home, kube
    stop_background(home)


def _ports(kube: KubeStore) -> tuple[int, int]:
    service_port = wait_for("the Service port", lambda: int(
        kube.get("Service", "default", "shop")["metadata"]["annotations"]["rollouts.io/port"]))
    ingress_port = wait_for("the Ingress port", lambda: int(
        kube.get("Ingress", "default", "shop")["metadata"]["annotations"]["rollouts.io/port"]))
    return service_port, ingress_port


def test_pods_outlive_cluster_sigkill_and_are_readopted_on_restart(shop: tuple[Path, KubeStore]) -> None:
    home, kube = shop
    pod = ready_pod(kube)
    notes = pod["metadata"]["annotations"]
    pid, started = int(notes[PID_ANNOTATION]), int(notes[PID_START_ANNOTATION])
    # The process names its cluster's home, so `down` finds it even before its pid is recorded.
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"{OWNER_ENV}={home.resolve()}".encode() in environ
    pod_ip, pod_port = pod_address(pod)
    service_port, ingress_port = _ports(kube)
    cluster_ip = wait_for("the Service's cluster IP", lambda: kube.get("Service", "default", "shop")["spec"].get(
        "clusterIP"))
    assert wait_for("the Ingress to answer", lambda: through_ingress(ingress_port)) == 200

    old_cluster = sigkill_cluster(home)
    assert answers(pod_port, host=pod_ip) == 200  # the pod serves on without its cluster
    assert alive(pid, started)

    start_background(home, runtime=OPTIONS)
    assert read_state(home) is not None and read_state(home).pid != old_cluster  # type: ignore[union-attr]
    kube = connect(kubeconfig=str(home / "kubeconfig"))
    again = ready_pod(kube, pid)
    assert again["metadata"]["name"] == pod["metadata"]["name"]
    assert again["metadata"]["annotations"][PID_START_ANNOTATION] == str(started)
    assert again["status"]["containerStatuses"][0]["restartCount"] == 0
    assert pod_address(again) == (pod_ip, pod_port)  # the re-adopted pod keeps its address
    assert _ports(kube) == (service_port, ingress_port)
    assert kube.get("Service", "default", "shop")["spec"]["clusterIP"] == cluster_ip
    assert wait_for("the cluster IP to answer again", lambda: answers(80, host=cluster_ip)) == 200
    assert wait_for("the Service to answer again", lambda: answers(service_port)) == 200
    assert wait_for("the Ingress to answer again", lambda: through_ingress(ingress_port)) == 200

    assert stop_background(home)
    assert not alive(pid, started)
    assert processes_using(home) == []


def test_pod_that_ended_while_cluster_was_down_restarts_as_after_a_crash(shop: tuple[Path, KubeStore]) -> None:
    home, kube = shop
    pod = ready_pod(kube)
    pid = int(pod["metadata"]["annotations"][PID_ANNOTATION])
    pod_ip, pod_port = pod_address(pod)
    sigkill_cluster(home)
    signal_group(pid, signal.SIGKILL)
    wait_for("the pod process to end", lambda: not alive(pid, None))

    start_background(home, runtime=OPTIONS)
    kube = connect(kubeconfig=str(home / "kubeconfig"))

    def restarted() -> dict[str, Any] | None:
        found = ready_pod(kube)
        return found if found["metadata"]["annotations"][PID_ANNOTATION] != str(pid) else None
    again = wait_for("the pod restarted", restarted)
    assert again["metadata"]["name"] == pod["metadata"]["name"]
    assert pod_address(again) == (pod_ip, pod_port)  # restarted on its recorded address and port
    assert again["status"]["containerStatuses"][0]["restartCount"] == 1
    assert answers(pod_port, host=pod_ip) == 200

    # Killed again, then `down` with no cluster process: the pods it left are stopped all the same.
    new_pid = int(again["metadata"]["annotations"][PID_ANNOTATION])
    sigkill_cluster(home)
    assert answers(pod_port, host=pod_ip) == 200
    result = CliRunner().invoke(cluster_app, ["down", "--home", str(home)])
    assert result.output.strip() == "local cluster was not running"
    assert not alive(new_pid, None)
    assert processes_using(home) == []


def test_cluster_down_after_sigkill_stops_running_job_attempts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    start_background(home, runtime=OPTIONS)
    try:
        kube = connect(kubeconfig=str(home / "kubeconfig"))
        kube.create({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "load", "namespace": "default"},
                     "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                         {"name": "load", "image": "python",
                          "command": [sys.executable, "-c", "import time; time.sleep(120)"]}]}}}})

        def job_pid() -> tuple[int, int | None] | None:
            for pod in kube.list("Pod", "default"):
                found = recorded(pod["metadata"].get("annotations"), JOB_PID_ANNOTATION, JOB_PID_START_ANNOTATION)
                if found is not None:
                    return found
            return None
        pid, started = wait_for("the Job attempt's process", job_pid)
        sigkill_cluster(home)
        assert alive(pid, started)  # the attempt outlives the cluster process too
    finally:
        result = CliRunner().invoke(cluster_app, ["down", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert not alive(pid, started)
    assert processes_using(home) == []
