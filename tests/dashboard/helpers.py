"""Dashboard test helpers: a seeded store (a canary mid-release with an analysis run, events and history)
and the dashboard app served by a real uvicorn server on a free port in a background thread.

The dashboard never opens the SQLite file: the seeded store is served API-only by a local API server
(`tests.cluster.conftest.start_cluster`) and the app reads and writes it with a `KubeStore` from that
server's kubeconfig, so every read, action and live update goes through the Kubernetes API over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from rollouts.api.app import create_app
from rollouts.cluster.store import SQLiteStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.store.protocol import ObjectStore
from tests.cluster.conftest import start_cluster

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/api/v1/rollouts/default/shop"
POD_HASH_LABEL = "rollouts-pod-template-hash"


def template(image: str, pod_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": "shop"} | ({POD_HASH_LABEL: pod_hash} if pod_hash else {})
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "shop", "image": image}]}}


ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "shop", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "shop"}},
        "template": template("rollouts-demo:yellow"),
        "strategy": {"canary": {"steps": [
            {"setWeight": 30}, {"pause": {}}, {"analysis": {"templates": [{"templateName": "gate"}]}},
            {"setWeight": 60},
        ]}},
    },
}


def seed(store: SQLiteStore) -> dict[str, Any]:
    """A canary paused at step 1 (30 %), revision 2 (yellow) over stable revision 1 (blue)."""
    rollout = store.create(ROLLOUT)
    owner = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "shop",
             "uid": rollout["metadata"]["uid"], "controller": True}
    for revision, color, pod_hash, replicas in ((1, "blue", "aaa111", 2), (2, "yellow", "bbb222", 1)):
        store.create({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"shop-{pod_hash}", "namespace": "default",
                         "labels": {"app": "shop", POD_HASH_LABEL: pod_hash},
                         "annotations": {"rollout.argoproj.io/revision": str(revision)},
                         "ownerReferences": [owner]},
            "spec": {"replicas": replicas, "template": template(f"rollouts-demo:{color}", pod_hash)},
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
        })
        store.record_revision("default", "shop", revision, pod_hash, {"shop": f"rollouts-demo:{color}"},
                              template(f"rollouts-demo:{color}"),
                              outcome="promoted" if revision == 1 else "current")
    store.patch("Rollout", "default", "shop", {"status": {
        "phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1, "stableRS": "aaa111",
        "currentPodHash": "bbb222", "replicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "updatedReplicas": 1, "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-01-01T00:00:00Z"}],
        "canary": {"weights": {"canary": {"weight": 30, "podTemplateHash": "bbb222"},
                               "stable": {"weight": 70, "podTemplateHash": "aaa111"}}},
    }}, subresource="status")
    store.create({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "shop-bbb222-2-2", "namespace": "default", "ownerReferences": [owner],
                     "labels": {"rollout-type": "Step", POD_HASH_LABEL: "bbb222"}},
        "spec": {"metrics": [{"name": "success-rate", "successCondition": "result[0] >= 0.95",
                              "failureCondition": "result[0] < 0.9",
                              "provider": {"web": {"url": "http://example.invalid"}}}]},
        "status": {"phase": "Running", "metricResults": [{
            "name": "success-rate", "phase": "Running", "count": 2, "successful": 2,
            "measurements": [
                {"phase": "Successful", "value": "[0.99]", "startedAt": "2024-01-01T00:00:00Z"},
                {"phase": "Successful", "value": "[0.97]", "startedAt": "2024-01-01T00:00:10Z"},
            ]}]},
    })
    involved = {"kind": "Rollout", "namespace": "default", "name": "shop", "uid": rollout["metadata"]["uid"]}
    store.record_event(involved, "Normal", "RolloutUpdated", "Rollout updated to revision 2")
    store.record_event(involved, "Normal", "RolloutPaused", "Rollout is paused (CanaryPauseStep)")
    return store.get("Rollout", "default", "shop")


def kube_factory(kubeconfig: Path) -> Callable[[], ObjectStore]:
    """What the dashboard is given in these tests: a `KubeStore` on the cluster of `kubeconfig`."""
    return lambda: KubeStore(load_config(kubeconfig=kubeconfig))


@contextmanager
def api_served(db: Path | None, kubeconfig: Path | None = None) -> Iterator[Path]:
    """The kubeconfig to reach the store with: `kubeconfig` when given (a cluster already serving), else
    the store file `db` served API-only from this process for the duration of the block."""
    if kubeconfig is not None:
        yield kubeconfig
        return
    assert db is not None, "a store file or a kubeconfig"
    cluster, stop = start_cluster(db.parent)
    try:
        yield cluster.kubeconfig
    finally:
        stop()


@contextmanager
def live_server(db: Path | None, *, bind_host: str = "127.0.0.1", heartbeat: float = 15.0,
                kubeconfig: Path | None = None,
                store_factory: Callable[[Path], Callable[[], ObjectStore]] = kube_factory,
                **options: Any) -> Iterator[str]:
    """The dashboard on 127.0.0.1:<free port> (bind_host only decides the access rules) over the API
    server of `db` (or of `kubeconfig`), through `store_factory(kubeconfig)`; yields its URL. `options` go
    to create_app (limits such as max_streams)."""
    with api_served(db, kubeconfig) as config:
        app = create_app(store_factory(config), token=TOKEN, bind_host=bind_host, heartbeat=heartbeat, **options)
        server_config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                       timeout_graceful_shutdown=1)
        server = uvicorn.Server(server_config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started = threading.Event()
        for _ in range(500):
            if server.started:
                started.set()
                break
            thread.join(0.01)
        assert started.is_set(), "the dashboard server did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            app.state.close_streams()
            server.should_exit = True
            thread.join(10)


def pod(name: str, pod_hash: str, *, phase: str = "Running", ready: bool = True,
        waiting: str | None = None) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"app": "shop", POD_HASH_LABEL: pod_hash},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"shop-{pod_hash}",
                                          "uid": f"rs-{pod_hash}", "controller": True}]},
        "spec": {"containers": [{"name": "shop", "image": "rollouts-demo"}]},
        "status": {"phase": phase, "containerStatuses": [
            {"name": "shop", "ready": ready, "restartCount": 0 if ready else 3, "state": state}]},
    }


def event(reason: str, message: str, at: str, involved: dict[str, Any]) -> dict[str, Any]:
    """A stored Event with a chosen time (record_event stamps the present)."""
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"shop.{abs(hash((reason, message, at))):x}", "namespace": "default"},
            "involvedObject": involved, "type": "Normal", "reason": reason, "message": message,
            "count": 1, "firstTimestamp": at, "lastTimestamp": at, "source": {"component": "rollouts-controller"}}


def _ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def weight_events() -> list[tuple[str, str, str]]:
    """The release's story as its events tell it, an earlier release first (to be left out)."""
    return [
        ("RolloutUpdated", "Rollout updated to revision 1", _ago(60)),
        ("TrafficWeightUpdated", "Traffic weight updated from 0 to 100", _ago(59)),
        ("RolloutUpdated", "Rollout updated to revision 2", _ago(5)),
        ("TrafficWeightUpdated", "Traffic weight updated from 0 to 10", _ago(4)),
        ("TrafficWeightUpdated", "Traffic weight updated from 10 to 30", _ago(2)),
    ]


def seed_mid_release(store: SQLiteStore) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """seed() plus pods for both ReplicaSets (one canary pod crash-looping) and the weight events of a
    release that started 5 minutes ago (seed's own events, stamped now, are replaced)."""
    rollout = seed(store)
    for item in store.list("Event", "default"):
        store.delete("Event", "default", item["metadata"]["name"])
    for spec in (pod("shop-aaa111-x1", "aaa111"), pod("shop-aaa111-x2", "aaa111"),
                 pod("shop-bbb222-y1", "bbb222"),
                 pod("shop-bbb222-y2", "bbb222", ready=False, waiting="CrashLoopBackOff")):
        store.create(spec)
    store.patch("ReplicaSet", "default", "shop-bbb222", {"spec": {"replicas": 2}})
    store.patch("ReplicaSet", "default", "shop-bbb222", {"status": {"replicas": 2, "readyReplicas": 1,
                                                                  "availableReplicas": 1}}, subresource="status")
    involved = {"kind": "Rollout", "namespace": "default", "name": "shop", "uid": rollout["metadata"]["uid"]}
    story = weight_events()
    for reason, message, at in story:
        store.create(event(reason, message, at, involved))
    return rollout, story


def seeded_db(path: Path, fill: Callable[[SQLiteStore], Any]) -> Path:
    """A store file at `path` filled by `fill` (seed, seed_mid_release, ...)."""
    with SQLiteStore(path) as store:
        fill(store)
    return path


@contextmanager
def in_process_client(db: Path, *, bind_host: str = "127.0.0.1",
                      base_url: str = "http://127.0.0.1:3100", authorized: bool = True) -> Iterator[Any]:
    """The dashboard app behind FastAPI's TestClient (same app, no socket of its own) over the API server
    of the store file `db`, on a loopback base URL unless told otherwise; every request carries the token
    unless `authorized` is False (or the request sets its own Authorization header)."""
    from fastapi.testclient import TestClient

    with api_served(db) as config:
        app = create_app(kube_factory(config), token=TOKEN, bind_host=bind_host)
        with TestClient(app, base_url=base_url, headers=AUTH if authorized else None) as http:
            yield http
