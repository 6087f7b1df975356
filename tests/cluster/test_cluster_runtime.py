"""The cluster process hosts the local runtime: a ReplicaSet created through the API becomes a pod process
behind its Service's listener, `rollouts cluster up`'s runtime flags reach the process, and SIGTERM stops
the pods before the server. Real background processes, real pods (the demo service), real HTTP."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from rollouts.cli.cluster import cluster_app
from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.kube.client import KubeStore, connect

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except Exception:  # noqa: BLE001 (not there yet: a refused connection, a missing object)
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int, path: str = "/", host: str = "127.0.0.1") -> int:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as reply:  # noqa: S310 (loopback)
        return int(reply.status)


def refused(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) != 0


def pod_address(pod: dict[str, Any]) -> tuple[str, int]:
    """Where a pod serves: its own address (status.podIP) and its port."""
    return pod["status"]["podIP"], int(pod["metadata"]["annotations"]["rollouts.io/port"])


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def replica_set(name: str, replicas: int, image: str = "rollouts-demo:blue") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-abc", "namespace": "default",
                         "labels": {"app": name, "rollouts-pod-template-hash": "abc"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def ready_replicas(kube: KubeStore, name: str, count: int) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        rs = kube.get("ReplicaSet", "default", f"{name}-abc")
        return rs if (rs.get("status") or {}).get("readyReplicas") == count else None
    return probe


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "home"
    folder.mkdir()
    yield folder
    stop_background(folder)


def test_cluster_process_runs_replica_set_pods_behind_their_service(home: Path) -> None:
    start_background(home, runtime=RuntimeOptions(probe_period=0.2))
    kube = connect(kubeconfig=str(home / "kubeconfig"))
    kube.create(service("shop"))
    kube.create(replica_set("shop", 1))
    wait_for("the ReplicaSet's pod to be ready", ready_replicas(kube, "shop", 1))
    pods = kube.list("Pod", "default")
    assert [p["metadata"]["name"].startswith("shop-abc-") for p in pods] == [True]
    pod_ip, pod_port = pod_address(pods[0])
    assert ipaddress.IPv4Address(pod_ip) in ipaddress.IPv4Network("127.1.0.0/16") and pods[0]["status"]["podIPs"] == [{"ip": pod_ip}]
    assert answers(pod_port, host=pod_ip) == 200
    assert refused(pod_port)  # not on 127.0.0.1: the pod listens on its own address only
    service_port = wait_for("the Service's listener port", lambda: int(
        kube.get("Service", "default", "shop")["metadata"]["annotations"]["rollouts.io/port"]))
    assert wait_for("the Service to answer", lambda: answers(service_port)) == 200
    endpoints = wait_for("the Service's Endpoints", lambda: kube.get("Endpoints", "default", "shop")["subsets"])
    assert [(a["ip"], p["port"]) for s in endpoints for a in s["addresses"] for p in s["ports"]] == [
        (pod_ip, pod_port)]
    kubectl = shutil.which("kubectl")
    if kubectl:  # what users type; the API objects above are checked either way
        shown = subprocess.run([kubectl, "get", "endpoints", "shop", "--no-headers"], capture_output=True, text=True,
                               timeout=60, env={**os.environ, "KUBECONFIG": str(home / "kubeconfig"),
                                                "HOME": str(home)})
        assert shown.returncode == 0, shown.stderr
        assert f"{pod_ip}:{pod_port}" in shown.stdout

    # Deleting the ReplicaSet (through the API) stops its pod; the Endpoints empty out.
    kube.delete("ReplicaSet", "default", "shop-abc")
    wait_for("the pod to stop", lambda: refused(pod_port, pod_ip))
    assert wait_for("empty Endpoints", lambda: not kube.get("Endpoints", "default", "shop")["subsets"] or None,
                    timeout=10) is True

    assert stop_background(home)  # SIGTERM: the pods stop before the server goes
    assert refused(pod_port, pod_ip) and refused(service_port)


def test_cluster_up_runtime_flags_reach_the_cluster_process(home: Path) -> None:
    metrics_port = free_port()
    invoke = CliRunner().invoke
    # No Prometheus pod: it would take the one pod's room.
    result = invoke(cluster_app, ["up", "--home", str(home), "--no-prometheus", "--max-pods", "1",
                                  "--probe-period", "0.2",
                                  "--ingress-metrics-port", str(metrics_port)])
    assert result.exit_code == 0, result.output
    assert json.loads((home / "apiserver.json").read_text())["ingressMetricsPort"] == metrics_port
    kube = connect(kubeconfig=str(home / "kubeconfig"))
    kube.create(replica_set("shop", 2))
    wait_for("one pod (max-pods 1) ready", ready_replicas(kube, "shop", 1))
    assert kube.get("ReplicaSet", "default", "shop-abc")["status"]["replicas"] == 1
    assert wait_for("the FailedScheduling event", lambda: [
        e for e in kube.list("Event", "default") if e.get("reason") == "FailedScheduling"])
    assert answers(metrics_port, "/metrics") == 200
    down = invoke(cluster_app, ["down", "--home", str(home)])
    assert down.output.strip() == "local cluster stopped"
    assert refused(metrics_port)


def test_cluster_up_no_runtime_serves_the_api_only(home: Path) -> None:
    result = CliRunner().invoke(cluster_app, ["up", "--home", str(home), "--no-runtime"])
    assert result.exit_code == 0, result.output
    pid = json.loads((home / "apiserver.json").read_text())["pid"]
    assert b"--no-runtime" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert "ingressMetricsPort" not in json.loads((home / "apiserver.json").read_text())


@pytest.mark.parametrize(("args", "message"), [
    (["--max-pods", "0"], "--max-pods: 0 must be 1 or more"),
    (["--probe-period", "0"], "--probe-period: 0.0 must be a number of seconds above 0"),
    (["--ingress-metrics-port", "70000"], "--ingress-metrics-port: 70000 is not between 0 and 65535"),
], ids=["max-pods-zero", "probe-period-zero", "metrics-port-out-of-range"])
def test_cluster_up_rejects_bad_runtime_flags(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cluster_app, ["up", "--home", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "apiserver.json").exists()


def test_cluster_pods_use_the_image_map_of_the_clusters_home(home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "images.yaml").write_text("shop:1:\n  command: ['{python}', '-m', 'rollouts.demo.service']\n")
    monkeypatch.setenv("ROLLOUTS_HOME", str(tmp_path / "another-home"))  # not the cluster's
    start_background(home, runtime=RuntimeOptions(probe_period=0.2))
    kube = connect(kubeconfig=str(home / "kubeconfig"))
    kube.create(replica_set("shop", 1, image="shop:1"))
    wait_for("the mapped image's pod ready", ready_replicas(kube, "shop", 1))
