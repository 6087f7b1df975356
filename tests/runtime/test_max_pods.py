"""The local runtime's per-host pod limit (the kubelet's maxPods): pods beyond it are not started, stay
Pending with a Warning event, and a ReplicaSet asking for a billion replicas costs no more than the limit."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.pods import DEFAULT_MAX_PODS, UNSCHEDULABLE_REASON, PodSync
from rollouts.runtime.local.supervisor import PodPhase, PodState


class FakeSupervisor:
    """Pods as records: what PodSync asks for, without processes."""

    def __init__(self) -> None:
        self.states: dict[str, PodState] = {}
        self.started = 0

    def pods(self) -> list[PodState]:
        return list(self.states.values())

    async def ensure_pod(self, name: str, labels: Any, container: Any, namespace: str, **_: Any) -> PodState:
        self.started += 1
        state = PodState(name=name, namespace=namespace, labels=dict(labels), container=container.name,
                         image=container.image, port=10000 + self.started, phase=PodPhase.RUNNING, ready=True,
                         restarts=0, created_at=datetime.now(UTC), log_path=Path("/dev/null"))
        self.states[name] = state
        return state

    async def delete_pod(self, name: str, grace_seconds: float | None = None) -> bool:
        return self.states.pop(name, None) is not None


def _replica_set(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "labels": {"rollouts-pod-template-hash": name},
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                              "name": "shop", "uid": "u-1", "controller": True}]},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "shop"}},
                                                        "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}


@pytest.mark.parametrize(("max_pods", "sets", "running", "pending"), [
    (3, {"a": 1_000_000_000}, {"a": 3}, {"a": 999_999_997}),
    (5, {"a": 3, "b": 4}, {"a": 3, "b": 2}, {"b": 2}),
    (DEFAULT_MAX_PODS, {"a": 2}, {"a": 2}, {}),
], ids=["billion-replicas", "two-sets-share-the-limit", "under-the-limit"])
def test_max_pods_limit_pods_beyond_stay_pending_with_event(
        tmp_path: Path, max_pods: int, sets: dict[str, int], running: dict[str, int], pending: dict[str, int]) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    supervisor = FakeSupervisor()
    sync = PodSync(store, supervisor, max_pods=max_pods)  # type: ignore[arg-type]
    for name, replicas in sets.items():
        store.create(_replica_set(name, replicas))
    started = time.monotonic()
    try:
        for _ in range(3):
            asyncio.run(sync.sync())
        assert time.monotonic() - started < 5
        assert supervisor.started == sum(running.values())
        for name, count in running.items():
            assert store.get("ReplicaSet", "default", name)["status"]["replicas"] == count
        warnings = [e for e in store.list("Event") if e["reason"] == UNSCHEDULABLE_REASON]
        for name, count in pending.items():
            rs_events = [e for e in warnings
                         if (e["involvedObject"]["kind"], e["involvedObject"]["name"]) == ("ReplicaSet", name)]
            assert len(rs_events) == 1 and rs_events[0]["type"] == "Warning"
            assert f"{count} of {sets[name]} pods" in rs_events[0]["message"]
            assert f"at most {max_pods} pods" in rs_events[0]["message"]
            assert any(e["involvedObject"]["kind"] == "Rollout" for e in warnings)
        if not pending:
            assert warnings == []
    finally:
        store.close()


def test_max_pods_limit_must_be_positive(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "state.db") as store, pytest.raises(ValueError, match="max_pods"):
        PodSync(store, FakeSupervisor(), max_pods=0)  # type: ignore[arg-type]
