"""Dashboard test helpers: a seeded store (a canary mid-release with an analysis run, events and history)
and the dashboard app served by a real uvicorn server on a free port in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from rollouts.api.app import create_app
from rollouts.store.sqlite import SQLiteStore

TOKEN = "test-token-0123456789abcdef"
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


@contextmanager
def live_server(db: Path, *, bind_host: str = "127.0.0.1", heartbeat: float = 15.0,
                **options: Any) -> Iterator[str]:
    """The dashboard on 127.0.0.1:<free port> (bind_host only decides the access rules); yields its URL.
    `options` go to create_app (limits such as max_streams)."""
    app = create_app(lambda: SQLiteStore(db), token=TOKEN, bind_host=bind_host, heartbeat=heartbeat, **options)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
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
