"""`rollouts history` through real release flows: the controller's reconcile passes (in process, pods
replaced by ReplicaSet statuses marked ready) record the history, the runbook's verbs drive it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.controller.loop import Controller
from tests.cli.verbs_support import run

MANIFEST = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "shop", "namespace": "default"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "shop"}},
             "template": {"metadata": {"labels": {"app": "shop"}},
                          "spec": {"containers": [{"name": "shop", "image": "shop:1"}]}},
             "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}},
}


def _sync_pods(store: SQLiteStore, rs: dict[str, Any], want: int) -> None:
    """The ReplicaSet's pods as a kubelet would report them: `want` of them, all Ready."""
    name = rs["metadata"]["name"]
    labels = rs["spec"]["template"]["metadata"]["labels"]
    pods = [p for p in store.list("Pod", "default")
            if any(ref.get("name") == name for ref in p["metadata"].get("ownerReferences") or [])]
    for pod in pods[want:]:
        store.delete("Pod", "default", pod["metadata"]["name"])
    for index in range(len(pods), want):
        store.create({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": f"{name}-{index}", "namespace": "default", "labels": dict(labels),
                                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                        "name": name, "uid": rs["metadata"].get("uid", ""),
                                                        "controller": True}]},
                      "spec": rs["spec"]["template"]["spec"],
                      "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})


def _settle(home: Path, passes: int = 8) -> dict[str, Any]:
    """Reconcile passes with every ReplicaSet's pods ready at once (what the kubelet would report)."""
    with SQLiteStore(home / "state.db") as store:
        controller = Controller(store=store)
        for _ in range(passes):
            asyncio.run(controller.run_once())
            for rs in store.list("ReplicaSet", "default"):
                want = int(rs["spec"].get("replicas") or 0)
                _sync_pods(store, rs, want)
                ready = {"replicas": want, "readyReplicas": want, "availableReplicas": want,
                         "fullyLabeledReplicas": want, "observedGeneration": rs["metadata"].get("generation")}
                if {k: (rs.get("status") or {}).get(k) for k in ready} != ready:
                    store.patch("ReplicaSet", "default", rs["metadata"]["name"], {"status": ready},
                                subresource="status")
        return dict(store.get("Rollout", "default", "shop").get("status") or {})


def _history(home: Path) -> dict[int, dict[str, Any]]:
    result = run(home, "history", "shop", "-o", "json")
    assert result.exit_code == 0, result.stderr
    return {e["revision"]: e for e in json.loads(result.output)}


def _verb(home: Path, *args: str) -> str:
    result = run(home, *args)
    assert result.exit_code == 0, result.output + result.stderr
    return result.output


@pytest.fixture
def paused_release(tmp_path: Path) -> Path:
    """shop:1 promoted (revision 1), then shop:2 paused on its pause step (revision 2)."""
    home = tmp_path / "home"
    home.mkdir()
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(json.dumps(MANIFEST))
    _verb(home, "apply", "-f", str(manifest))
    assert _settle(home)["phase"] == "Healthy"
    _verb(home, "set", "image", "shop", "shop=shop:2")
    status = _settle(home)
    assert (status["phase"], status["currentStepIndex"]) == ("Paused", 1), status
    assert {n: e["outcome"] for n, e in _history(home).items()} == {1: "promoted", 2: "current"}
    return home


def test_history_retried_revision_is_not_left_aborted(paused_release: Path) -> None:
    home = paused_release
    _verb(home, "abort", "shop")
    assert _settle(home)["phase"] == "Degraded"
    assert _history(home)[2]["outcome"] == "aborted"
    assert _verb(home, "retry", "rollout", "shop") == "rollout 'shop' retried\n"
    status = _settle(home)
    assert status["phase"] == "Paused" and not status.get("abort"), status
    entry = _history(home)[2]
    assert entry["outcome"] == "current" and entry["live"], entry
    assert entry["cause"].startswith("retried after an abort")
    _verb(home, "promote", "shop")
    assert _settle(home)["phase"] == "Healthy"
    assert _history(home)[2]["outcome"] == "promoted"


def test_history_fast_rollback_revision_is_promoted_not_superseded(paused_release: Path) -> None:
    home = paused_release
    _verb(home, "undo", "shop")  # back to shop:1, which is still the stable version: a fast rollback
    status = _settle(home)
    assert status["phase"] == "Healthy" and status["stableRS"] == status["currentPodHash"], status
    after_undo = _history(home)
    assert (after_undo[3]["outcome"], after_undo[3]["images"]) == ("promoted", {"shop": "shop:1"}), after_undo
    assert after_undo[2]["outcome"] == "rolled back"
    _verb(home, "set", "image", "shop", "shop=shop:4")
    _settle(home)
    later = _history(home)
    assert later[3]["outcome"] == "promoted", later[3]
    assert "before it was promoted" not in later[3]["cause"]
    assert later[4]["outcome"] == "current"


def test_history_text_and_json_in_the_same_order(paused_release: Path) -> None:
    home = paused_release
    json_order = [e["revision"] for e in json.loads(_verb(home, "history", "shop", "-o", "json"))]
    text_order = [int(line.split()[0]) for line in _verb(home, "history", "shop").splitlines()[1:]]
    assert json_order == text_order == [1, 2]
    assert "oldest revision first" in " ".join(_verb(home, "history", "--help").split())
