"""Events are bounded over time: besides the per-object cap, events about objects that no longer exist
(old pods, pruned analysis runs) expire after the event TTL (1 h, Kubernetes' --event-ttl default), so a
store used for weeks of releases does not grow with every pod that ever ran."""

from __future__ import annotations

from typing import Any

import pytest
from tests.store.conftest import FakeClock

from rollouts.cluster import store as sqlite
from rollouts.cluster.store import SQLiteStore


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {}}


def _ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": obj["kind"], "name": obj["metadata"]["name"], "namespace": "default",
            "uid": obj["metadata"]["uid"]}


def _events(store: SQLiteStore) -> set[str]:
    return {e["involvedObject"]["name"] for e in store.list("Event")}


@pytest.mark.parametrize(("age_hours", "deleted", "expired"), [
    (2, True, True), (0.5, True, False), (2, False, False),
], ids=["old-and-orphaned", "recent-and-orphaned", "old-but-object-exists"])
def test_event_ttl_orphan_events_expire(store: SQLiteStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
                                        age_hours: float, deleted: bool, expired: bool) -> None:
    monkeypatch.setattr(sqlite, "_EVENT_GC_EVERY", 1)
    pod = store.create(_pod("old-pod"))
    store.record_event(_ref(pod), "Normal", "Started", "started")
    if deleted:
        store.delete("Pod", "default", "old-pod")
    clock.advance(age_hours * 3600)
    store.record_event(_ref(store.create(_pod("new-pod"))), "Normal", "Started", "started")
    assert _events(store) == ({"new-pod"} if expired else {"old-pod", "new-pod"})


def test_event_ttl_store_bounded_after_many_pods(store: SQLiteStore, clock: FakeClock) -> None:
    for i in range(300):
        pod = store.create(_pod(f"pod-{i}"))
        store.record_event(_ref(pod), "Normal", "Started", "started")
        store.delete("Pod", "default", f"pod-{i}")
        clock.advance(60)
    # 300 minutes of pods, each gone: only about the last hour's events (plus one GC period) remain.
    assert len(store.list("Event")) <= 60 + sqlite._EVENT_GC_EVERY
