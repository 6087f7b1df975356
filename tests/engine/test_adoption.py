"""Taking over from Argo's controller: ReplicaSets, Services and status written the way Argo writes them
are adopted by template equality (no new ReplicaSet, no pod deleted, selectors unchanged), and the next
release then proceeds normally. Engine + apply over a real SQLite store."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.controller.loop import Controller
from rollouts.controller.observe import observe_rollout
from rollouts.engine import intents
from rollouts.engine.adoption import equal_ignore_hash
from rollouts.engine.hashing import argo_steps_hash, pod_template_hash, steps_hash
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import CanaryStep, Rollout

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
ARGO_STEPS_HASH = "757f5f97b"  # Argo's ComputeStepHash of STEPS (see the Argo-known pairs below)


def _strategy(kind: str) -> dict[str, Any]:
    if kind == "blue-green":
        return {"blueGreen": {"activeService": "web-stable", "previewService": "web-canary",
                              "autoPromotionEnabled": False}}
    canary: dict[str, Any] = {"canaryService": "web-canary", "stableService": "web-stable", "steps": STEPS}
    if kind == "nginx":
        canary["trafficRouting"] = {"nginx": {"stableIngress": "web-ingress"}}
    return {"canary": canary}


def _rollout(image: str, kind: str = "basic") -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": NS, "uid": UID},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": _template(image),
                     "strategy": _strategy(kind)}}


def _ingress(name: str, service: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


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


def _load(store: SQLiteStore, *, mid_release: bool, kind: str = "basic") -> None:
    image = "web:2" if mid_release else "web:1"
    store.create(_rollout(image, kind))
    # A basic canary at 50 % of 2 replicas runs 1 + 1; with traffic routing the stable stays at 2.
    stable_replicas = 1 if mid_release and kind == "basic" else 2
    store.create(_replica_set(STABLE_HASH, "web:1", 1, stable_replicas, "2026-11-01T10:00:00Z"))
    store.create(_service("web-stable", STABLE_HASH))
    store.create(_service("web-canary", CANARY_HASH if mid_release else STABLE_HASH))
    if mid_release:
        store.create(_replica_set(CANARY_HASH, "web:2", 2, 1, "2026-11-02T10:00:00Z"))
    if kind == "nginx":
        store.create(_ingress("web-ingress", "web-stable", {}))
        # As Argo clones it: `<rollout>-<stableIngress>-canary`, owned by the Rollout.
        canary = _ingress("web-web-ingress-canary", "web-canary", {
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "50" if mid_release else "0"})
        canary["metadata"]["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                                  "name": "web", "uid": UID, "controller": True}]
        store.create(canary)
    _settle(store)
    rollout = store.get("Rollout", NS, "web")
    current = CANARY_HASH if mid_release else STABLE_HASH
    status: dict[str, Any] = {
        "currentPodHash": current, "stableRS": STABLE_HASH, "currentStepHash": ARGO_STEPS_HASH,
        "currentStepIndex": 1 if mid_release else 2, "replicas": 2, "updatedReplicas": 1 if mid_release else 2,
        "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": "1", "phase": "Healthy",
        "canary": {}, "selector": "app=web",
    }
    if kind == "blue-green":
        for key in ("currentStepHash", "currentStepIndex", "canary"):
            del status[key]
        status["blueGreen"] = {"activeSelector": STABLE_HASH, "previewSelector": STABLE_HASH}
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
        "ingresses": {i["metadata"]["name"]: (i["metadata"].get("annotations"), i["spec"])
                      for i in store.list("Ingress", NS)},
    }


def _pass(controller: Controller, store: SQLiteStore, times: int = 3) -> None:
    for _ in range(times):
        asyncio.run(controller.run_once())
        _settle(store)


@pytest.mark.parametrize(("mid_release", "kind"), [
    (False, "basic"), (True, "basic"), (False, "nginx"), (True, "nginx"), (False, "blue-green"),
], ids=["stable-only", "stable-and-canary-paused", "nginx-stable-only", "nginx-canary-paused-at-50",
        "blue-green-active"])
def test_adoption_of_argo_replica_sets_without_restart(tmp_path: Path, mid_release: bool, kind: str) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    _load(store, mid_release=mid_release, kind=kind)
    before = _snapshot(store)
    controller = Controller(store=store)
    _pass(controller, store)
    assert _snapshot(store) == before  # no ReplicaSet created or scaled, no pod replaced, selectors kept
    status = store.get("Rollout", NS, "web")["status"]
    assert status["stableRS"] == STABLE_HASH
    assert status["currentPodHash"] == (CANARY_HASH if mid_release else STABLE_HASH)
    if kind == "blue-green":
        assert status["blueGreen"]["activeSelector"] == STABLE_HASH
    else:
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


@pytest.mark.parametrize("kind", ["basic", "nginx"])
def test_adoption_mid_release_then_promote_completes(tmp_path: Path, kind: str) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    _load(store, mid_release=True, kind=kind)
    controller = Controller(store=store)
    _pass(controller, store)
    rollout = Rollout.model_validate(store.get("Rollout", NS, "web"))
    for subresource, body in intents.promote(rollout).bodies():
        store.patch("Rollout", NS, "web", body, subresource="status" if subresource else None)
    _pass(controller, store, times=6)
    status = store.get("Rollout", NS, "web")["status"]
    assert (status["phase"], status["stableRS"], status["currentPodHash"]) == ("Healthy", CANARY_HASH, CANARY_HASH)
    replicas = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in store.list("ReplicaSet", NS)}
    # No ReplicaSet of ours. Behind an Ingress the old stable waits out scaleDownDelaySeconds (30 s).
    assert replicas == {f"web-{CANARY_HASH}": 2, f"web-{STABLE_HASH}": 2 if kind == "nginx" else 0}
    if kind == "nginx":
        old = store.get("ReplicaSet", NS, f"web-{STABLE_HASH}")["metadata"]["annotations"]
        assert "scale-down-deadline" in old
    selectors = _snapshot(store)["selectors"]
    assert selectors["web-stable"][HASH] == CANARY_HASH


@pytest.mark.parametrize("mid_release", [False, True], ids=["stable-only", "stable-and-canary-paused"])
def test_adoption_steps_edit_restarts_steps(tmp_path: Path, mid_release: bool) -> None:
    """Argo's steps hash is taken as "unchanged" only for the steps it was computed from: an edit made
    before or after the takeover still restarts the steps."""
    store = SQLiteStore(tmp_path / "state.db")
    _load(store, mid_release=mid_release)
    controller = Controller(store=store)
    if mid_release:  # edited while Argo's status is still the last one written
        rollout = store.get("Rollout", NS, "web")
        rollout["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 50}, {"pause": {"duration": 3600}}]
        store.update(rollout)
        _pass(controller, store)
        status = store.get("Rollout", NS, "web")["status"]
        # The steps restarted: back through setWeight 50 into the new timed pause, started by us.
        assert status["currentStepIndex"] == 1
        assert status["currentStepHash"] == steps_hash(Rollout.model_validate(rollout).spec.strategy.canary.steps)
        assert [p["startTime"] for p in status["pauseConditions"]] != ["2026-11-02T10:01:00Z"]
        return
    _pass(controller, store)
    rollout = store.get("Rollout", NS, "web")
    rollout["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 50}, {"pause": {}}, {"setWeight": 80}]
    store.update(rollout)
    _pass(controller, store)
    status = store.get("Rollout", NS, "web")["status"]
    assert status["currentStepIndex"] == 3  # a stable rollout skips to the end, as Argo does
    assert status["currentStepHash"] == steps_hash(Rollout.model_validate(rollout).spec.strategy.canary.steps)


# (steps, status.currentStepHash) as Argo's controller wrote them, from Argo's own testdata
# (pkg/kubectl-argo-rollouts/info/testdata: rollout-aborted/rollout.yaml, canary/canary-rollout.yaml,
# whose hash dates from when pause durations were integers).
@pytest.mark.parametrize(("steps", "argo_hash"), [
    ([{"setWeight": 10}, {"pause": {}}], "849b756fd4"),
    ([{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}, {"pause": {"duration": 10}}, {"setWeight": 60},
      {"pause": {"duration": 10}}, {"setWeight": 80}, {"pause": {"duration": 10}}], "f64cdc9d"),
], ids=["rollout-aborted", "canary-demo"])
def test_adoption_argo_steps_hash_matches_argo(steps: list[dict[str, Any]], argo_hash: str) -> None:
    assert argo_steps_hash([CanaryStep.model_validate(s) for s in steps]) == argo_hash


def test_adoption_undo_to_argo_current_revision_is_skipped(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    _load(store, mid_release=True)
    rollout = Rollout.model_validate(store.get("Rollout", NS, "web"))
    observed = observe_rollout(store, rollout)
    current = intents.undo(rollout, observed.replica_sets, to_revision=2)
    assert current.template is None and current.message.startswith("skipped rollback")
    back = intents.undo(rollout, observed.replica_sets, to_revision=1)
    assert back.template is not None and back.template.spec.containers[0].image == "web:1"


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
    (_with(_defaulted("web:1", STABLE_HASH), ("spec", "containers", 0, "resources"),
           {"requests": {"cpu": "0.5", "memory": "64Mi"}}), True),
    (_with(_defaulted("web:1", STABLE_HASH), ("spec", "containers", 0, "resources"),
           {"requests": {"cpu": "600m", "memory": "64Mi"}}), False),
], ids=["argo-defaulted", "undefaulted", "other-image", "other-pull-policy", "other-label", "other-grace",
        "empty-list-is-unset", "quantity-canonical-form", "other-quantity"])
def test_adoption_template_equality_ignores_hash_after_defaults(live: dict[str, Any], equal: bool) -> None:
    desired = _template("web:1")
    if live["spec"]["containers"][0].get("resources"):
        # The Rollout as written (500m, bytes) against the stored canonical forms (0.5, 64Mi).
        desired = _with(desired, ("spec", "containers", 0, "resources"),
                        {"requests": {"cpu": "500m", "memory": "67108864"}})
    assert equal_ignore_hash(_spec(live), _spec(desired)) is equal
