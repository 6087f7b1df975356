"""Items 1, 2 and 4 together on a real local cluster process with its runtime: a ReplicaSet's demo pod behind
a Service and an Ingress; `rollouts load` drives the rollout's Ingress (the real ingress proxy), and the pod's
own /metrics, reached by its cluster name through the resolver, counts exactly that traffic under
`service="<app label>"` and the runtime's env."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.kube.client import KubeStore, connect
from rollouts.kube.dns import ClusterResolver

T = TypeVar("T")
APP = "auth-svc"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 40.0) -> T:
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


def objects() -> list[dict[str, Any]]:
    labels = {"app": APP, "rollouts-pod-template-hash": "abc"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "rollouts-demo:blue"}]}}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{APP}-stable", "namespace": "default"},
         "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": f"{APP}-abc", "namespace": "default",
                                                                     "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": APP, "namespace": "default"},
         "spec": {"ingressClassName": "nginx", "rules": [{"host": f"{APP}.aivo.dev", "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": f"{APP}-stable", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": APP, "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": APP}}, "template": template,
                  "strategy": {"canary": {"stableService": f"{APP}-stable", "canaryService": f"{APP}-canary",
                                          "trafficRouting": {"nginx": {"stableIngress": APP}},
                                          "steps": [{"setWeight": 10}]}}}},
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, KubeStore]]:
    home = tmp_path / "home"
    home.mkdir()
    start_background(home, runtime=RuntimeOptions(probe_period=0.2))
    kube = connect(kubeconfig=str(home / "kubeconfig"))
    try:
        yield home, kube
    finally:
        kube.close()
        stop_background(home)


def test_load_through_the_real_ingress_counted_by_the_pods_own_metrics(cluster: tuple[Path, KubeStore]) -> None:
    home, kube = cluster
    for obj in objects():
        kube.create(obj)
    wait_for("the pod to be ready", lambda: (kube.get("ReplicaSet", "default", f"{APP}-abc").get("status") or {})
             .get("readyReplicas") == 1)
    wait_for("the Ingress's local port", lambda: kube.get("Ingress", "default", APP)["metadata"]["annotations"]
             ["rollouts.io/port"])
    resolved = wait_for("the Service's listener", lambda: ClusterResolver(kube).resolve(
        f"http://{APP}-stable.default.svc/metrics", "default"))
    assert resolved.host == f"{APP}-stable.default.svc"

    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_NAMESPACE")}
    load = subprocess.run([sys.executable, "-m", "rollouts", "load", APP, "--rps", "20", "--duration", "2s",
                           "--interval", "1s", "--home", str(home)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert load.returncode == 0, load.stderr
    assert "to ingress/auth-svc (" in load.stdout and "Host auth-svc.aivo.dev" in load.stdout
    total = load.stdout.splitlines()[-1]
    assert "errors 0 (0.0%)" in total and "versions blue=" in total, load.stdout
    sent = int(total.split("requests ", 1)[1].split()[0])
    assert 30 <= sent <= 41, load.stdout

    scrape = httpx.get(resolved.url, headers={"Host": resolved.host or ""}, timeout=10)
    assert scrape.status_code == 200
    counted = {(s.labels["service"], s.labels["code"]): s.value
               for family in text_string_to_metric_families(scrape.text) for s in family.samples
               if s.name == "http_requests_total"}
    assert counted == {(APP, "200"): sent}  # the pod's app label names the service; probes are not counted
