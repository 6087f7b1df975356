"""Cascade deletion, the change feed (watch), Events with aggregation, and the revision history."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.store.protocol import Expired, Invalid, NotFound


def _owned(kind: str, name: str, owner: dict, *more_owners: dict) -> dict:
    refs = [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
            "controller": i == 0,
        }
        for i, o in enumerate((owner, *more_owners))
    ]
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "default", "ownerReferences": refs},
        "spec": {},
    }


def _exists(store: SQLiteStore, kind: str, name: str) -> bool:
    try:
        store.get(kind, "default", name)
    except NotFound:
        return False
    return True


# ---- cascade delete -----------------------------------------------------------------------------


def test_delete_cascades_through_owner_references(store: SQLiteStore, make_rollout) -> None:
    ro = store.create(make_rollout("web"))
    other = store.create(make_rollout("api"))
    rs = store.create(_owned("ReplicaSet", "web-abc", ro))
    store.create(_owned("Pod", "web-abc-1", rs))
    store.create(_owned("AnalysisRun", "web-abc-1-run", ro))
    store.create(_owned("ReplicaSet", "api-def", other))
    shared = store.create(_owned("ConfigMap", "shared", ro, other))
    since = store.current_version()

    store.delete("Rollout", "default", "web")

    assert not _exists(store, "ReplicaSet", "web-abc")
    assert not _exists(store, "Pod", "web-abc-1")
    assert not _exists(store, "AnalysisRun", "web-abc-1-run")
    assert _exists(store, "ReplicaSet", "api-def")
    assert store.get("ConfigMap", "default", "shared")["metadata"]["uid"] == shared["metadata"]["uid"]
    deleted = [(c.kind, c.name) for c in store.watch(since, timeout=0) if c.type == "DELETED"]
    assert sorted(deleted) == sorted(
        [
            ("Rollout", "web"),
            ("ReplicaSet", "web-abc"),
            ("Pod", "web-abc-1"),
            ("AnalysisRun", "web-abc-1-run"),
        ]
    )
    # The last owner going takes the shared dependent with it.
    store.delete("Rollout", "default", "api")
    assert not _exists(store, "ConfigMap", "shared")
    assert not _exists(store, "ReplicaSet", "api-def")


def test_cluster_scoped_owner_cascades_into_namespaces(store: SQLiteStore) -> None:
    tpl = store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ClusterAnalysisTemplate",
            "metadata": {"name": "t"},
            "spec": {},
        }
    )
    store.create(_owned("AnalysisRun", "run", tpl))
    store.delete("ClusterAnalysisTemplate", "", "t")
    assert store.list("AnalysisRun") == []


# ---- watch --------------------------------------------------------------------------------------


def test_watch_feed_is_ordered_and_filtered(store: SQLiteStore, make_rollout) -> None:
    start = store.current_version()
    obj = store.create(make_rollout("web"))
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}})
    obj["spec"]["replicas"] = 7
    store.update(obj)
    store.delete("Rollout", "default", "web")

    changes = store.watch(start, timeout=0)
    assert [(c.type, c.kind, c.name) for c in changes] == [
        ("ADDED", "Rollout", "web"),
        ("ADDED", "ConfigMap", "c"),
        ("MODIFIED", "Rollout", "web"),
        ("DELETED", "Rollout", "web"),
    ]
    assert [c.resource_version for c in changes] == [start + 1, start + 2, start + 3, start + 4]
    assert changes[2].object["spec"]["replicas"] == 7
    assert changes[3].object["metadata"]["resourceVersion"] == str(start + 4)

    rollouts_only = store.watch(start, kinds={"Rollout"}, timeout=0)
    assert [c.type for c in rollouts_only] == ["ADDED", "MODIFIED", "DELETED"]
    assert [c.resource_version for c in store.watch(start + 2, timeout=0)] == [start + 3, start + 4]
    assert store.watch(start + 4, timeout=0) == []
    assert [c.resource_version for c in store.watch(start, timeout=0, limit=2)] == [start + 1, start + 2]


def test_watch_waits_for_a_write_from_another_thread(store: SQLiteStore, make_rollout) -> None:
    since = store.current_version()
    writer = threading.Timer(0.2, lambda: store.create(make_rollout("late")))
    writer.start()
    started = time.monotonic()
    changes = store.watch(since, timeout=10)
    writer.join()
    assert [c.name for c in changes] == ["late"]
    assert time.monotonic() - started < 5


def test_watch_times_out_empty(store: SQLiteStore) -> None:
    started = time.monotonic()
    assert store.watch(store.current_version(), timeout=0.1) == []
    assert time.monotonic() - started >= 0.1


def test_watch_async_wakes_on_write(store: SQLiteStore, make_rollout) -> None:
    async def scenario() -> list[str]:
        since = store.current_version()
        waiter = asyncio.create_task(store.watch_async(since, kinds={"Rollout"}, timeout=10))
        await asyncio.sleep(0)
        await asyncio.to_thread(store.create, make_rollout("async"))
        return [c.name for c in await waiter]

    assert asyncio.run(scenario()) == ["async"]


def test_feed_is_compacted_and_old_versions_expire(tmp_path, make_rollout) -> None:
    with SQLiteStore(tmp_path / "s.db", feed_limit=5) as store:
        for i in range(12):
            store.create(make_rollout(f"r{i}"))
        kept = store.watch(7, timeout=0)
        assert [c.resource_version for c in kept] == [8, 9, 10, 11, 12]
        assert store._query("SELECT count(*) FROM changes")[0][0] == 5
        with pytest.raises(Expired, match="too old resource version: 3"):
            store.watch(3, timeout=0)


# ---- events -------------------------------------------------------------------------------------


def test_identical_consecutive_events_aggregate(store: SQLiteStore, make_rollout, clock) -> None:
    ro = store.create(make_rollout("web"))
    involved = {"kind": "Rollout", "namespace": "default", "name": "web", "uid": ro["metadata"]["uid"]}
    first = store.record_event(involved, "Normal", "RolloutPaused", "Rollout is paused (CanaryPauseStep)")
    clock.advance(30)
    again = store.record_event(involved, "Normal", "RolloutPaused", "Rollout is paused (CanaryPauseStep)")
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["count"] == 2
    assert again["firstTimestamp"] == "2024-05-01T12:00:00Z"
    assert again["lastTimestamp"] == "2024-05-01T12:00:30Z"

    store.record_event(involved, "Warning", "RolloutAborted", "Rollout aborted update to revision 2")
    store.record_event(involved, "Normal", "RolloutPaused", "Rollout is paused (CanaryPauseStep)")
    store.record_event({"kind": "AnalysisRun", "namespace": "default", "name": "web"}, "Normal", "X", "y")

    events = store.list(
        "Event", "default", field_selector="involvedObject.name=web,involvedObject.kind=Rollout"
    )
    events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    assert [(e["reason"], e["count"]) for e in events] == [
        ("RolloutPaused", 2),
        ("RolloutAborted", 1),
        ("RolloutPaused", 1),
    ]
    event = events[1]
    assert event["apiVersion"] == "v1" and event["kind"] == "Event" and event["type"] == "Warning"
    assert event["involvedObject"] == involved
    assert event["source"] == {"component": "rollouts-controller"}
    assert store.list("Event", "default", field_selector="involvedObject.name=other") == []


def test_events_are_pruned_per_object(tmp_path, make_rollout) -> None:
    with SQLiteStore(tmp_path / "s.db", events_per_object=3) as store:
        involved = {"kind": "Rollout", "namespace": "default", "name": "web"}
        for i in range(6):
            store.record_event(involved, "Normal", "Step", f"step {i}")
        messages = sorted(e["message"] for e in store.list("Event", field_selector="involvedObject.name=web"))
        assert messages == ["step 3", "step 4", "step 5"]


def test_event_type_is_validated(store: SQLiteStore) -> None:
    with pytest.raises(Invalid, match='event type "Info" is not one of Normal, Warning'):
        store.record_event({"kind": "Rollout", "name": "web"}, "Info", "R", "m")


# ---- revision history ---------------------------------------------------------------------------


def test_revision_history(store: SQLiteStore, make_rollout, clock) -> None:
    template = {"spec": {"containers": [{"name": "app", "image": "web:1"}]}}
    first = store.record_revision("default", "web", 1, "abc123", {"app": "web:1"}, template)
    assert (first.outcome, first.created_at, first.images) == (
        "current",
        "2024-05-01T12:00:00Z",
        {"app": "web:1"},
    )
    clock.advance(60)
    store.set_revision_outcome("default", "web", 1, "promoted")
    store.record_revision("default", "web", 2, "def456", {"app": "web:2"}, template, cause="set image")
    clock.advance(60)
    store.set_revision_outcome("default", "web", 2, "aborted", cause="analysis failed")
    store.record_revision("default", "other", 1, "zzz", {}, {})

    history = store.list_revisions("default", "web")
    assert [(r.revision, r.outcome, r.cause) for r in history] == [
        (1, "promoted", ""),
        (2, "aborted", "analysis failed"),
    ]
    assert history[1].template == template
    assert history[1].created_at == "2024-05-01T12:01:00Z"
    assert history[1].updated_at == "2024-05-01T12:02:00Z"

    refreshed = store.record_revision(
        "default", "web", 2, "def456", {"app": "web:2"}, template, "rolled-back"
    )
    assert refreshed.created_at == "2024-05-01T12:01:00Z" and refreshed.outcome == "rolled-back"


def test_revision_history_errors(store: SQLiteStore) -> None:
    with pytest.raises(Invalid, match='revision outcome "done" is not one of current, promoted'):
        store.record_revision("default", "web", 1, "h", {}, {}, outcome="done")  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="with revision 4 in history"):
        store.set_revision_outcome("default", "web", 4, "aborted")


def test_history_outlives_replica_sets_but_not_the_rollout(store: SQLiteStore, make_rollout) -> None:
    ro = store.create(make_rollout("web"))
    store.create(_owned("ReplicaSet", "web-1", ro))
    store.record_revision("default", "web", 1, "h1", {"app": "web:1"}, {})
    store.delete("ReplicaSet", "default", "web-1")
    assert [r.revision for r in store.list_revisions("default", "web")] == [1]
    store.delete("Rollout", "default", "web")
    assert store.list_revisions("default", "web") == []
