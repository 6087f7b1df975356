"""Ingress changes reach the local cluster's proxy through their own feed: a canary-weight change is routed by
while the runtime's sync pass is still busy with pods; the feed re-reads after a failed apply and applies an
unchanged list only once; closing the host ends the feed's thread. Because a weight no longer waits for the
pass, a pod is in its Service's endpoints before the store says it is Ready (what the operator raises the
weight on)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rollouts.cluster.host import RuntimeHost
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.ingress_feed import IngressFeed
from rollouts.runtime.local.routing import PORT_ANNOTATION
from rollouts.store.home import database_path

P = "nginx.ingress.kubernetes.io"
PASS_SECONDS = 4.0


class BusyPassStore(SQLiteStore):
    """Once `busy` is set, every sync pass spends PASS_SECONDS reading ReplicaSets, holding its thread the way a
    pass reconciling many pods on a loaded machine does."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.busy = False
        self.in_pass = threading.Event()

    def list(self, kind: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        found = super().list(kind, *args, **kwargs)
        if kind == "ReplicaSet" and self.busy:
            self.in_pass.set()
            time.sleep(PASS_SECONDS)
        return found


class SlowAfterReadyStore(SQLiteStore):
    """Holds the sync pass for a while right after it writes a Pod's Ready status (before the pass reaches the
    Services), as a pass with many pods to write does on a loaded machine."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.ready_written = threading.Event()

    def patch(self, kind: str, namespace: str, name: str, body: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        written = super().patch(kind, namespace, name, body, *args, **kwargs)
        conditions = ((body.get("status") or {}).get("conditions") or []) if kind == "Pod" else []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            self.ready_written.set()
            time.sleep(PASS_SECONDS / 2)
        return written


def _until(what: str, check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"not within {seconds} s: {what}")


def _ingress(name: str, service: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": service, "port": {"number": 80}}}}]}}]}}


def _sleepers(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": "sleep", "command": ["sleep", "600"]}]}}}}


def _canary_weight(host: RuntimeHost) -> int | None:
    assert host.runtime is not None
    for route in host.runtime.proxy.table.routes:
        if route.canary is not None:
            return route.canary.weight
    return None


def test_weight_change_is_routed_by_while_the_sync_pass_is_busy_with_pods(tmp_path: Path) -> None:
    store = BusyPassStore(database_path(tmp_path))
    host = RuntimeHost(store, tmp_path, RuntimeOptions(prometheus=False))
    host.start()
    try:
        store.create(_ingress("web", "web-stable", {}))
        store.create(_ingress("web-canary", "web-canary", {f"{P}/canary": "true", f"{P}/canary-weight": "0"}))
        _until("the canary route at weight 0", lambda: _canary_weight(host) == 0, 20)
        port = int(_until("the proxy's port on the Ingress", lambda: (store.get("Ingress", "default", "web")[
            "metadata"].get("annotations") or {}).get(PORT_ANNOTATION), 20))
        store.busy = True
        store.create(_sleepers("many", 10))  # real pods for the pass to reconcile, behind a slow read
        assert store.in_pass.wait(10), "no sync pass started"
        syncs = host.syncs
        written = time.monotonic()
        store.patch("Ingress", "default", "web-canary", {"metadata": {"annotations": {f"{P}/canary-weight": "100"}}})
        _until("the proxy routing by weight 100", lambda: _canary_weight(host) == 100, PASS_SECONDS / 2)
        took = time.monotonic() - written
        assert host.syncs == syncs, "the weight waited for a sync pass to end"
        # A request sent now goes to the canary Service (no pod behind it: 503, counted under its version).
        answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert answer.status_code == 503
        metrics = host.runtime.render_metrics().decode() if host.runtime is not None else ""
        assert 'ingress="web",version="canary"' in metrics, metrics
        assert took < PASS_SECONDS / 2
    finally:
        store.busy = False
        host.close()
    assert host.runtime is not None and host.runtime.ingress_feed is not None
    assert not host.runtime.ingress_feed.running


def test_ingress_feed_applies_each_list_once_and_retries_a_failed_apply(tmp_path: Path) -> None:
    store = SQLiteStore(database_path(tmp_path))
    applied: list[list[str]] = []
    failures = [1]

    def apply(ingresses: list[dict[str, Any]]) -> None:
        if failures[0] and ingresses:
            failures[0] -= 1
            raise RuntimeError("the data plane is not running")
        applied.append([i["metadata"]["name"] for i in ingresses])

    feed = IngressFeed(store, apply, resync_seconds=0.2, wait_seconds=0.1)
    feed.start()
    try:
        _until("the first (empty) list", lambda: applied == [[]], 10)
        store.create(_ingress("web", "web-stable", {}))  # its first apply fails, the retry applies it
        _until("the list with web after one failure", lambda: applied == [[], ["web"]], 10)
        assert feed.failures == 1
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "default"}})
        reads = feed.reads
        _until("two more reads (resyncs)", lambda: feed.reads >= reads + 2, 10)  # unchanged: not applied again
        assert applied == [[], ["web"]]
        store.delete("Ingress", "default", "web")
        _until("the list without web", lambda: applied == [[], ["web"], []], 10)
    finally:
        feed.stop()
    assert not feed.running


def test_a_pod_is_in_its_services_endpoints_before_the_store_says_it_is_ready(tmp_path: Path) -> None:
    store = SlowAfterReadyStore(database_path(tmp_path))
    host = RuntimeHost(store, tmp_path, RuntimeOptions(prometheus=False, probe_period=0.1))
    host.start()
    try:
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "many", "namespace": "default"},
                      "spec": {"selector": {"app": "many"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        runtime = host.runtime
        assert runtime is not None
        _until("the Service's listener", lambda: "default/many" in runtime.balancer.ports, 20)
        demo = _sleepers("many", 1)
        demo["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "rollouts-demo:blue"}]
        store.create(demo)
        assert store.ready_written.wait(30), "the pod never became Ready"
        # The pass is held right after the Ready write: only the readiness change itself can have told the
        # Service's listener.
        endpoints = runtime.balancer.endpoints("default/many")
        assert [e.pod for e in endpoints] == [p["metadata"]["name"] for p in store.list("Pod")]
    finally:
        host.close()
