"""A real controller process started on a store holding what Argo's controller left (a Rollout with Argo's
status, its Argo-named ReplicaSet, the Services selecting Argo's hash) takes it over: no ReplicaSet of
its own, the Services untouched, the pods it runs for Argo's ReplicaSet never replaced over many passes;
then a new release proceeds as usual.

The local runtime's pod processes live with their controller, so the processes behind Argo's ReplicaSet
start with the controller (as after any controller restart); what is checked is that nothing replaces them
once it runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.engine.hashing import pod_template_hash
from rollouts.spec.pod import PodTemplateSpec
from tests.e2e.harness import ControllerProcess, wait_until

pytestmark = pytest.mark.integration

NS = "default"
UID = "3f1d2c9e-8a41-4c55-b0a7-6a0c2e9d7b21"
ARGO_HASH = "5d4c7f9b8b"  # as Argo's ComputeHash renders one: ours never looks like this
HASH = "rollouts-pod-template-hash"


def _template(image: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "shop"}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [{"name": "shop", "image": image}]}}


def _argo_objects() -> list[dict[str, Any]]:
    owner = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "shop", "uid": UID,
             "controller": True, "blockOwnerDeletion": True}
    stored = {"metadata": {"creationTimestamp": None, "labels": {"app": "shop", HASH: ARGO_HASH}},
              "spec": {"terminationGracePeriodSeconds": 2, "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                       "securityContext": {}, "schedulerName": "default-scheduler",
                       "containers": [{"name": "shop", "image": "rollouts-demo:blue", "resources": {},
                                       "imagePullPolicy": "IfNotPresent",
                                       "terminationMessagePath": "/dev/termination-log",
                                       "terminationMessagePolicy": "File"}]}}
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                 "spec": {"selector": {"app": "shop", HASH: ARGO_HASH}, "ports": [{"port": 80, "targetPort": 8080}]}}
                for name in ("shop-stable", "shop-canary")]
    return [
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
         "metadata": {"name": "shop", "namespace": NS, "uid": UID},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}}, "template": _template("rollouts-demo:blue"),
                  "strategy": {"canary": {"canaryService": "shop-canary", "stableService": "shop-stable",
                                          "steps": [{"setWeight": 50}, {"pause": {}}]}}}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": f"shop-{ARGO_HASH}", "namespace": NS, "labels": {"app": "shop", HASH: ARGO_HASH},
                      "annotations": {"rollout.argoproj.io/revision": "1"}, "ownerReferences": [owner]},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop", HASH: ARGO_HASH}}, "template": stored}},
        *services,
    ]


def _load(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with SQLiteStore(path) as store:
        objects = _argo_objects()
        for obj in objects:
            store.create(obj)
        rollout = store.get("Rollout", NS, "shop")
        store.update_status({**rollout, "status": {
            # currentStepHash: Argo's ComputeStepHash of these steps.
            "currentPodHash": ARGO_HASH, "stableRS": ARGO_HASH, "currentStepHash": "757f5f97b",
            "currentStepIndex": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
            "availableReplicas": 2, "observedGeneration": "1", "phase": "Healthy", "canary": {}}})


def _reconciles(ctl: ControllerProcess) -> int:
    text = httpx.get(f"http://{ctl.metrics_address}/metrics", timeout=5).text
    found = re.search(r'^rollout_reconcile_count\{[^}]*name="shop"[^}]*\} (\d+(?:\.\d+)?)', text, re.M)
    return int(float(found.group(1))) if found else 0


def _state(ctl: ControllerProcess) -> tuple[dict[str, int], list[str], dict[str, dict[str, str]]]:
    with ctl.store() as store:
        replicas = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in store.list("ReplicaSet", NS)}
        pods = sorted(p["metadata"]["name"] for p in store.list("Pod", NS))
        selectors = {s["metadata"]["name"]: s["spec"]["selector"] for s in store.list("Service", NS)}
    return replicas, pods, selectors


def test_adoption_by_a_controller_process_keeps_argo_replica_set(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _load(home / "state.db")
    ctl = ControllerProcess(home)
    ctl.start()
    try:
        def ready() -> bool:
            with ctl.store() as store:
                rs = store.get("ReplicaSet", NS, f"shop-{ARGO_HASH}")
            return (rs.get("status") or {}).get("readyReplicas") == 2
        wait_until(ready, 30, "Argo's ReplicaSet to run its 2 pods")
        replicas, pods, selectors = _state(ctl)
        pids = ctl.pod_pids()
        start = _reconciles(ctl)
        # The operator reconciles on changes: five metadata-only writes make five more passes over the
        # adopted rollout, none of which may touch Argo's ReplicaSet, its pods or the Services.
        for touch in range(5):
            ctl.cli("patch", "rollout", "shop", "-n", NS, "-p",
                    json.dumps({"metadata": {"annotations": {"example.com/touch": str(touch)}}}))
        wait_until(lambda: _reconciles(ctl) >= start + 5, 30, "five more passes over the rollout")
        assert _state(ctl) == (replicas, pods, selectors)
        assert ctl.pod_pids() == pids  # no pod process replaced
        assert replicas == {f"shop-{ARGO_HASH}": 2}
        assert all(p.startswith(f"shop-{ARGO_HASH}-") for p in pods) and len(pods) == 2
        assert {s[HASH] for s in selectors.values()} == {ARGO_HASH}
        status = ctl.rollout("shop")["status"]
        assert (status["phase"], status["stableRS"], status["currentPodHash"]) == ("Healthy", ARGO_HASH, ARGO_HASH)

        # A new release: our ReplicaSet next to Argo's stable, the canary at 50 % and paused.
        ctl.cli("set", "image", "shop", "shop=rollouts-demo:green")
        ours = pod_template_hash(PodTemplateSpec.model_validate(_template("rollouts-demo:green")))

        def paused() -> bool:
            status = ctl.rollout("shop").get("status") or {}
            return status.get("phase") == "Paused" and status.get("currentStepIndex") == 1
        wait_until(paused, 30, "the new release to pause at its second step")
        replicas, _, selectors = _state(ctl)
        assert replicas == {f"shop-{ARGO_HASH}": 1, f"shop-{ours}": 1}
        assert (selectors["shop-stable"][HASH], selectors["shop-canary"][HASH]) == (ARGO_HASH, ours)
    finally:
        ctl.stop_leaving_no_pods()
