"""Store contents for the CLI tests: Argo's documented `get rollout` examples written as objects straight into
a SQLiteStore (no controller), with creation times set through the store's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rollouts.cluster.store import SQLiteStore

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def ago(self, **delta: float) -> None:
        self.now = NOW - timedelta(**delta)


def open_home(home: Path, clock: Clock | None = None) -> SQLiteStore:
    return SQLiteStore(home / "state.db", clock=clock)


def _owner(kind: str, name: str, uid: str = "") -> list[dict[str, Any]]:
    api = "argoproj.io/v1alpha1" if kind == "Rollout" else "apps/v1"
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": uid, "controller": True}]


def rollout(name: str, *, image: str, steps: list[dict[str, Any]] | None = None, blue_green: bool = False,
            replicas: int = 1, namespace: str = "default") -> dict[str, Any]:
    strategy: dict[str, Any] = (
        {"blueGreen": {"activeService": f"{name}-active", "previewService": f"{name}-preview"}}
        if blue_green else {"canary": {"steps": steps or []}}
    )
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": image}]}},
            "strategy": strategy,
        },
    }


def replica_set(rollout_name: str, pod_hash: str, revision: int, *, image: str, replicas: int,
                available: int, namespace: str = "default",
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": rollout_name, "rollouts-pod-template-hash": pod_hash}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{rollout_name}-{pod_hash}", "namespace": namespace, "labels": labels,
                     "annotations": {"rollout.argoproj.io/revision": str(revision), **(annotations or {})},
                     "ownerReferences": _owner("Rollout", rollout_name)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": rollout_name, "image": image}]}}},
        "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available},
    }


def pod(rs_name: str, suffix: str, *, image: str, port: int, ready: bool = True, restarts: int = 0,
        waiting: str | None = None, namespace: str = "default") -> dict[str, Any]:
    labels = {"app": rs_name.rsplit("-", 1)[0], "rollouts-pod-template-hash": rs_name.rsplit("-", 1)[1]}
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{rs_name}-{suffix}", "namespace": namespace, "labels": labels,
                     "annotations": {"rollouts.io/port": str(port)}, "ownerReferences": _owner("ReplicaSet", rs_name)},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "containerStatuses": [{"name": "app", "image": image, "ready": ready, "restartCount": restarts,
                                          "state": state}]},
    }


def analysis_run(rollout_name: str, pod_hash: str, revision: int, *, phase: str, successful: int = 0,
                 failed: int = 0, suffix: str = "", namespace: str = "default") -> dict[str, Any]:
    name = f"{rollout_name}-{pod_hash}-{revision}{suffix}"
    measurements = [{"phase": "Successful", "value": "0.99", "startedAt": "2024-05-01T11:59:00Z",
                     "finishedAt": "2024-05-01T11:59:01Z"}] * successful + [
        {"phase": "Failed", "value": "0.5", "startedAt": "2024-05-01T11:59:10Z",
         "finishedAt": "2024-05-01T11:59:11Z", "message": ""}] * failed
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"rollouts-pod-template-hash": pod_hash, "rollout-type": "Background"},
                     "ownerReferences": _owner("Rollout", rollout_name)},
        "spec": {"metrics": [{"name": "web", "provider": {"web": {"url": "http://x"}},
                              "successCondition": "result > 0.9"}]},
        "status": {"phase": phase, "message": "metric \"web\" assessed Failed" if failed else None,
                   "metricResults": [{"name": "web", "phase": phase, "count": successful + failed,
                                      "successful": successful, "failed": failed, "measurements": measurements}]},
    }


ECHO_STEPS: list[dict[str, Any]] = [{"setWeight": 30}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": "10s"}},
              {"setWeight": 90}, {"pause": {}}]


def paused_canary(store: SQLiteStore, clock: Clock) -> None:
    """reference §3's first example: echo-rollout paused at step 1/6 with 30% on revision 3."""
    image = "hashicorp/http-echo"
    clock.ago(days=2, hours=21)
    ro = store.create(rollout("echo-rollout", image=image, steps=ECHO_STEPS))
    store.create(replica_set("echo-rollout", "948d9c9f9", 1, image=image, replicas=0, available=0))
    clock.ago(hours=3, minutes=5)
    store.create(replica_set("echo-rollout", "578bfdb4b8", 2, image=image, replicas=1, available=1))
    store.create(pod("echo-rollout-578bfdb4b8", "86z6n", image=image, port=41001))
    clock.ago(seconds=2)
    store.create(replica_set("echo-rollout", "64fb847897", 3, image=image, replicas=1, available=1))
    store.create(pod("echo-rollout-64fb847897", "49sg6", image=image, port=41002))
    clock.now = NOW
    status = {"phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1, "stableRS": "578bfdb4b8",
              "currentPodHash": "64fb847897", "replicas": 2, "updatedReplicas": 1, "readyReplicas": 2,
              "availableReplicas": 2, "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2024-05-01T11:59:00Z"}],
              "canary": {"weights": {"canary": {"weight": 30}, "stable": {"weight": 70}}}}
    store.patch("Rollout", "default", ro["metadata"]["name"], {"status": status}, subresource="status")
    store.record_event({"kind": "Rollout", "namespace": "default", "name": "echo-rollout"}, "Normal",
                       "RolloutPaused", "Rollout is paused (CanaryPauseStep)")


def aborted_canary(store: SQLiteStore, clock: Clock) -> None:
    """reference §3's second example: an aborted canary whose background run failed."""
    name = "rollout-background-analysis"
    image = "argoproj/rollouts-demo:blue"
    clock.ago(days=7)
    ro = store.create(rollout(name, image=image, steps=[{"setWeight": 10}, {"pause": {}}]))
    store.create(replica_set(name, "7d84d44bb8", 1, image=image, replicas=1, available=1))
    store.create(pod(f"{name}-7d84d44bb8", "z5wps", image=image, port=41003))
    store.create(replica_set(name, "db976bc44", 2, image="argoproj/rollouts-demo:yellow", replicas=0,
                             available=0))
    store.create(analysis_run(name, "db976bc44", 2, phase="Failed", failed=1))
    clock.now = NOW
    message = 'RolloutAborted: metric "web" assessed Failed due to failed (1) > failureLimit (0)'
    status = {"phase": "Degraded", "message": message, "currentStepIndex": 0, "abort": True,
              "stableRS": "7d84d44bb8", "currentPodHash": "db976bc44", "replicas": 1, "updatedReplicas": 0,
              "readyReplicas": 1, "availableReplicas": 1}
    store.patch("Rollout", "default", ro["metadata"]["name"], {"status": status}, subresource="status")
