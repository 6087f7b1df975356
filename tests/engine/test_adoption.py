"""Taking over from Argo's controller: ReplicaSets, Services and status written the way Argo writes them
are adopted by template equality (no new ReplicaSet, no pod deleted, selectors unchanged), and the next
release then proceeds normally. Engine + apply over a real SQLite store."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from rollouts.controller.loop import Controller
from rollouts.engine.adoption import equal_ignore_hash
from rollouts.engine.hashing import pod_template_hash
from rollouts.spec.pod import PodTemplateSpec
from rollouts.store.sqlite import SQLiteStore

NS = "default"
UID = "0b7c7a51-6d7e-4e53-9d1e-1c2a0d6c1f10"
# Hashes as Argo's ComputeHash renders them (our own formula would never produce these).
STABLE_HASH = "6f8c9bd5c4"
CANARY_HASH = "7d9b5f4c8d"
HASH = "rollouts-pod-template-hash"


def _template(image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}]}}


def _defaulted(image: str, pod_hash: str) -> dict[str, Any]:
    """The template as the API server stores it in a ReplicaSet Argo created: defaults filled in."""
    return {"metadata": {"creationTimestamp": None, "labels": {"app": "web", HASH: pod_hash}},
            "spec": {"containers": [{"name": "web", "image": image,
                                     "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                     "resources": {},
                                     "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File",
                                     "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                     "dnsPolicy": "ClusterFirst", "securityContext": {},
                     "schedulerName": "default-scheduler"}}


STEPS = [{"setWeight": 50}, {"pause": {}}]


def _rollout(image: str) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": NS, "uid": UID},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": _template(image),
                     "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                                             "steps": STEPS}}}}


def _replica_set(pod_hash: str, image: str, revision: int, replicas: int, created: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"web-{pod_hash}", "namespace": NS, "creationTimestamp": created,
                         "labels": {"app": "web", HASH: pod_hash},
                         "annotations": {"rollout.argoproj.io/revision": str(revision),
                                         "rollout.argoproj.io/desired-replicas": "2"},
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                              "name": "web", "uid": UID, "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH: pod_hash}},
                     "template": _defaulted(image, pod_hash)}}


def _service(name: str, pod_hash: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS,
            "annotations": {"argo-rollouts.argoproj.io/managed-by-rollouts": "web"}},
            "spec": {"selector": {"app": "web", HASH: pod_hash}, "ports": [{"port": 80, "targetPort": 8080}]}}


def _pod(pod_hash: str, index: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-{pod_hash}-{index}", "namespace": NS,
                         "labels": {"app": "web", HASH: pod_hash},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": f"web-{pod_hash}", "controller": True}]},
            "spec": {"containers": [{"name": "web", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


def _settle(store: SQLiteStore) -> None:
    """What the ReplicaSet controller would do: each ReplicaSet's pods exist and are ready."""
    for rs in store.list("ReplicaSet", NS):
        want = int(rs["spec"].get("replicas") or 0)
        pod_hash = rs["metadata"]["labels"][HASH]
        have = [p for p in store.list("Pod", NS) if p["metadata"]["labels"].get(HASH) == pod_hash]
        for index in range(len(have), want):
            store.create(_pod(pod_hash, index))
        for pod in have[want:]:
            store.delete("Pod", NS, pod["metadata"]["name"])
        status = {"replicas": want, "readyReplicas": want, "availableReplicas": want,
                  "observedGeneration": 1}
        store.update_status({**rs, "status": status})


def _load(store: SQLiteStore, *, mid_release: bool) -> None:
    image = "web:2" if mid_release else "web:1"
    store.create(_rollout(image))
    store.create(_replica_set(STABLE_HASH, "web:1", 1, 1 if mid_release else 2, "2026-11-01T10:00:00Z"))
    store.create(_service("web-stable", STABLE_HASH))
    store.create(_service("web-canary", CANARY_HASH if mid_release else STABLE_HASH))
    if mid_release:
        store.create(_replica_set(CANARY_HASH, "web:2", 2, 1, "2026-11-02T10:00:00Z"))
    _settle(store)
    rollout = store.get("Rollout", NS, "web")
    current = CANARY_HASH if mid_release else STABLE_HASH
    status: dict[str, Any] = {
        "currentPodHash": current, "stableRS": STABLE_HASH, "currentStepHash": "5b5f6f8d5c",
        "currentStepIndex": 1 if mid_release else 2, "replicas": 2, "updatedReplicas": 1 if mid_release else 2,
        "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": "1", "phase": "Healthy",
        "canary": {}, "selector": "app=web",
    }
    if mid_release:
        status["phase"] = "Paused"
        status["pauseConditions"] = [{"reason": "CanaryPauseStep", "startTime": "2026-11-02T10:01:00Z"}]
        status["controllerPause"] = True
    store.update_status({**rollout, "status": status})


def _snapshot(store: SQLiteStore) -> dict[str, Any]:
    return {
        "replica_sets": sorted((rs["metadata"]["name"], rs["metadata"]["labels"][HASH],
                                rs["metadata"]["annotations"]["rollout.argoproj.io/revision"], rs["spec"]["replicas"])
                               for rs in store.list("ReplicaSet", NS)),
        "pods": sorted((p["metadata"]["name"], p["metadata"]["uid"]) for p in store.list("Pod", NS)
                       if p["metadata"].get("deletionTimestamp") is None),
        "selectors": {s["metadata"]["name"]: s["spec"]["selector"] for s in store.list("Service", NS)},
    }


def _pass(controller: Controller, store: SQLiteStore, times: int = 3) -> None:
    for _ in range(times):
        asyncio.run(controller.run_once())
        _settle(store)


@pytest.mark.parametrize("mid_release", [False, True], ids=["stable-only", "stable-and-canary-paused"])
def test_adoption_of_argo_replica_sets_without_restart(tmp_path: Path, mid_release: bool) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    _load(store, mid_release=mid_release)
    before = _snapshot(store)
    controller = Controller(store=store)
    _pass(controller, store)
    assert _snapshot(store) == before  # no ReplicaSet created or scaled, no pod replaced, selectors kept
    status = store.get("Rollout", NS, "web")["status"]
    assert status["stableRS"] == STABLE_HASH
    assert status["currentPodHash"] == (CANARY_HASH if mid_release else STABLE_HASH)
    assert status["currentStepIndex"] == (1 if mid_release else 2)
    assert status["phase"] == ("Paused" if mid_release else "Healthy")
    if mid_release:  # the steps were not restarted: the pause Argo started is the one still running
        assert status["pauseConditions"] == [{"reason": "CanaryPauseStep", "startTime": "2026-11-02T10:01:00Z"}]
    created = [e for e in store.list("Event", NS) if e.get("reason") == "NewReplicaSetCreated"]
    assert created == []


def test_adoption_then_new_release_proceeds(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    _load(store, mid_release=False)
    controller = Controller(store=store)
    _pass(controller, store)
    rollout = store.get("Rollout", NS, "web")
    rollout["spec"]["template"] = _template("web:3")
    store.update(rollout)
    _pass(controller, store, times=5)
    ours = pod_template_hash(PodTemplateSpec.model_validate(_template("web:3")))
    names = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in store.list("ReplicaSet", NS)}
    assert names == {f"web-{STABLE_HASH}": 1, f"web-{ours}": 1}
    status = store.get("Rollout", NS, "web")["status"]
    assert (status["currentPodHash"], status["stableRS"], status["currentStepIndex"]) == (ours, STABLE_HASH, 1)
    selectors = _snapshot(store)["selectors"]
    assert selectors["web-stable"][HASH] == STABLE_HASH and selectors["web-canary"][HASH] == ours


def _spec(template: dict[str, Any]) -> PodTemplateSpec:
    return PodTemplateSpec.model_validate(template)


def _with(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(("live", "equal"), [
    (_defaulted("web:1", STABLE_HASH), True),
    (_template("web:1"), True),
    (_defaulted("web:2", STABLE_HASH), False),
    (_with(_defaulted("web:1", STABLE_HASH), ("spec", "containers", 0, "imagePullPolicy"), "Always"), False),
    (_with(_defaulted("web:1", STABLE_HASH), ("metadata", "labels", "app"), "other"), False),
    (_with(_defaulted("web:1", STABLE_HASH), ("spec", "terminationGracePeriodSeconds"), 5), False),
    (_with(_defaulted("web:1", STABLE_HASH), ("spec", "tolerations"), []), True),
], ids=["argo-defaulted", "undefaulted", "other-image", "other-pull-policy", "other-label", "other-grace",
        "empty-list-is-unset"])
def test_adoption_template_equality_ignores_hash_after_defaults(live: dict[str, Any], equal: bool) -> None:
    assert equal_ignore_hash(_spec(live), _spec(_template("web:1"))) is equal
