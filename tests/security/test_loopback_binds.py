"""Every server binds the loopback unless told otherwise: started with their defaults, the local cluster's
API server, its ingress proxy (and its /metrics), Service listeners, pods' processes (the demo service and
the cluster's own Prometheus), the dashboard and the operator's /metrics + /healthz listen on loopback
addresses only, read back from the kernel's socket tables (/proc/net/tcp, tcp6), not from our own records."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.kube.client import KubeStore, connect
from rollouts.runtime.local.processes import PID_ANNOTATION
from tests.cluster.test_cluster_runtime import ready_replicas, replica_set, service
from tests.cluster.test_pods_outlive_cluster import ingress

LISTEN = "0A"


def _address(hex_address: str) -> str:
    host, _ = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    words = struct.unpack("<4I", raw)  # four host-order 32-bit words
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))


def listening_inodes() -> dict[str, tuple[str, int]]:
    """Socket inode -> (address, port) of every listening TCP socket of the machine."""
    found: dict[str, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[3] == LISTEN:
                    found[fields[9]] = (_address(fields[1]), int(fields[1].split(":")[1], 16))
    return found


def listening(pid: int) -> list[tuple[str, int]]:
    """The (address, port) pairs process `pid` listens on."""
    inodes = listening_inodes()
    bound = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            bound.append(inodes[target[8:-1]])
    return sorted(bound)


def assert_loopback(what: str, bound: list[tuple[str, int]]) -> None:
    assert bound, f"{what} listens nowhere"
    for address, port in bound:
        assert ipaddress.ip_address(address).is_loopback, f"{what} listens on {address}:{port}, not loopback"


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except Exception:  # noqa: BLE001 (not there yet)
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "home"
    folder.mkdir()
    yield folder
    stop_background(folder)


@pytest.mark.integration
def test_cluster_servers_pods_and_prometheus_bind_loopback_by_default(home: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    prometheus = shutil.which("prometheus") is not None
    running = start_background(home, runtime=RuntimeOptions(probe_period=0.2, ingress_metrics_port=metrics_port,
                                                            prometheus=prometheus))
    kube: KubeStore = connect(kubeconfig=str(home / "kubeconfig"))
    for obj in (service("shop"), ingress("shop"), replica_set("shop", 1)):
        kube.create(obj)
    wait_for("the shop pod ready", ready_replicas(kube, "shop", 1))
    wait_for("the Ingress port", lambda: kube.get("Ingress", "default", "shop")["metadata"]["annotations"]
             ["rollouts.io/port"])
    service_port = int(kube.get("Service", "default", "shop")["metadata"]["annotations"]["rollouts.io/port"])
    ingress_port = int(kube.get("Ingress", "default", "shop")["metadata"]["annotations"]["rollouts.io/port"])

    cluster = listening(running.pid)
    assert_loopback("the cluster process (API server, ingress proxy, Service listeners)", cluster)
    ports = {port for _, port in cluster}
    assert {running.port, service_port, ingress_port, metrics_port} <= ports, (cluster, running.port)

    namespaces = ["default", "prometheus"] if prometheus else ["default"]
    pods = [p for ns in namespaces for p in kube.list("Pod", ns)]
    if prometheus:
        wait_for("the cluster's Prometheus pod", lambda: any(
            (p["metadata"].get("annotations") or {}).get(PID_ANNOTATION) for p in kube.list("Pod", "prometheus")))
        pods = [p for ns in namespaces for p in kube.list("Pod", ns)]
    for pod in pods:
        pid = int(pod["metadata"]["annotations"][PID_ANNOTATION])
        name = f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}"
        bound = wait_for(f"{name} listening", lambda pid=pid: listening(pid))
        assert_loopback(name, bound)
        assert ipaddress.ip_address(pod["status"]["podIP"]).is_loopback
    assert len(pods) == (2 if prometheus else 1)


def test_dashboard_and_operator_metrics_bind_loopback_by_default() -> None:
    from rollouts.api.server import DEFAULT_PORT, build_server, parse_address, serve_until, wait_started
    from rollouts.controller.metrics_http import DEFAULT_ADDRESS, MetricsServer, parse_metrics_address

    host, port = parse_address("")  # what `--dashboard-address` means when given no host
    assert (host, port) == ("127.0.0.1", DEFAULT_PORT)
    metrics_host, _ = parse_metrics_address(DEFAULT_ADDRESS)
    assert metrics_host == "127.0.0.1"

    async def main() -> list[tuple[str, int]]:
        stop = asyncio.Event()
        server = build_server(lambda: None, host, 0, "t" * 32)  # type: ignore[arg-type, return-value]
        task = asyncio.create_task(serve_until(server, stop))
        metrics = MetricsServer(render=lambda: b"", healthy=lambda: (True, "ok"), extra=[])
        await metrics.start(f"{metrics_host}:0")
        try:
            await wait_started(server)
            return listening(os.getpid())
        finally:
            await metrics.close()
            stop.set()
            await task

    bound = asyncio.run(main())
    assert_loopback("the dashboard and the operator's /metrics", bound)
    assert len(bound) >= 2


def test_job_process_binds_loopback_by_default(tmp_path: Path) -> None:
    """A Job's process is told its pod's address (POD_IP, loopback, as its Pod shows it) and a server that
    follows it (the demo service, the cluster's Prometheus launcher) listens there."""
    from rollouts.runtime.local.jobs import run_job_locally

    script = ("import os, socket; s = socket.socket(); s.bind((os.environ['POD_IP'], 0)); s.listen(); "
              "print('bound=' + s.getsockname()[0])")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "listen", "uid": "u1"},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "c", "command": [sys.executable, "-c", script]}]}}}}
    status = asyncio.run(run_job_locally(job, tmp_path / "job"))
    assert status["conditions"][0]["type"] == "Complete", status
    output = "".join(p.read_text() for p in (tmp_path / "job").glob("*.log"))
    bound = output.split("bound=")[1].split()[0]
    assert ipaddress.ip_address(bound).is_loopback
