"""CRUD, optimistic concurrency, generation and status-subresource semantics of the SQLite store."""

from __future__ import annotations

import statistics
import time
import uuid

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.store.protocol import AlreadyExists, Conflict, Invalid, NotFound, ObjectStore


def test_store_satisfies_protocol(store: SQLiteStore) -> None:
    assert isinstance(store, ObjectStore)


def test_create_assigns_server_fields(store: SQLiteStore, make_rollout) -> None:
    before = store.current_version()
    created = store.create(make_rollout("web"))
    meta = created["metadata"]
    assert uuid.UUID(meta["uid"]).version == 4
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] == "2024-05-01T12:00:00Z"
    assert int(meta["resourceVersion"]) == before + 1 == store.current_version()
    assert meta["namespace"] == "default"
    assert store.get("Rollout", "default", "web") == created


def test_create_ignores_client_supplied_server_fields(store: SQLiteStore, make_rollout) -> None:
    obj = make_rollout("web")
    obj["metadata"].update(
        uid="mine", resourceVersion="999", generation=7, creationTimestamp="1999-01-01T00:00:00Z"
    )
    created = store.create(obj)
    assert created["metadata"]["uid"] != "mine"
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["resourceVersion"] == "1"


def test_resource_versions_increase_across_kinds(store: SQLiteStore, make_rollout) -> None:
    versions = [int(store.create(make_rollout(f"r{i}"))["metadata"]["resourceVersion"]) for i in range(3)]
    cm = store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}})
    assert versions == [1, 2, 3]
    assert cm["metadata"]["resourceVersion"] == "4"


def test_create_twice_is_already_exists(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    with pytest.raises(AlreadyExists, match='rollouts "web" in namespace "default" already exists'):
        store.create(make_rollout("web"))
    store.create(make_rollout("web", namespace="other"))  # same name, other namespace: fine


def test_generate_name(store: SQLiteStore, make_rollout) -> None:
    obj = make_rollout()
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "web-"
    first, second = store.create(obj), store.create(obj)
    assert first["metadata"]["name"].startswith("web-") and len(first["metadata"]["name"]) == 9
    assert first["metadata"]["name"] != second["metadata"]["name"]


def test_cluster_scoped_kind_uses_empty_namespace(store: SQLiteStore) -> None:
    tpl = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": "success-rate", "namespace": "ignored"},
        "spec": {"metrics": []},
    }
    created = store.create(tpl)
    assert "namespace" not in created["metadata"]
    assert store.get("ClusterAnalysisTemplate", "", "success-rate") == created
    assert store.get("ClusterAnalysisTemplate", "whatever", "success-rate") == created
    assert [o["metadata"]["name"] for o in store.list("ClusterAnalysisTemplate", "")] == ["success-rate"]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"apiVersion": "v1", "metadata": {"name": "x"}}, "kind: required"),
        ({"kind": "Rollout", "metadata": {"name": "x"}}, "Rollout.apiVersion: required"),
        ({"kind": "Rollout", "apiVersion": "v1"}, "Rollout.metadata: required"),
        (
            {"kind": "Rollout", "apiVersion": "v1", "metadata": {"name": "Bad_Name"}},
            "'Bad_Name' is not a valid name",
        ),
        (
            {"kind": "Rollout", "apiVersion": "v1", "metadata": {"name": "x"}, "spec": {"f": {1, 2}}},
            "not a JSON document",
        ),
    ],
    ids=["no-kind", "no-apiversion", "no-metadata", "bad-name", "not-json"],
)
def test_create_rejects_invalid(store: SQLiteStore, obj: dict, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        store.create(obj)


def test_get_missing_is_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match='rollouts "nope" in namespace "default" not found'):
        store.get("Rollout", "default", "nope")


def test_returned_objects_are_copies(store: SQLiteStore, make_rollout) -> None:
    created = store.create(make_rollout("web"))
    created["spec"]["replicas"] = 99
    fetched = store.get("Rollout", "default", "web")
    fetched["spec"]["replicas"] = 42
    assert store.get("Rollout", "default", "web")["spec"]["replicas"] == 3


def test_update_with_stale_version_conflicts(store: SQLiteStore, make_rollout) -> None:
    first = store.create(make_rollout("web"))
    stale = store.get("Rollout", "default", "web")
    first["spec"]["replicas"] = 5
    fresh = store.update(first)
    stale["spec"]["replicas"] = 7
    with pytest.raises(Conflict) as info:
        store.update(stale)
    message = str(info.value)
    assert message.startswith(
        'Operation cannot be fulfilled on rollouts "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert f"resourceVersion {stale['metadata']['resourceVersion']} was given" in message
    assert f"the stored one is {fresh['metadata']['resourceVersion']}" in message
    assert store.get("Rollout", "default", "web")["spec"]["replicas"] == 5


def test_update_requires_resource_version(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    with pytest.raises(Invalid, match="metadata.resourceVersion must be set"):
        store.update(make_rollout("web"))


def test_update_missing_is_not_found(store: SQLiteStore, make_rollout) -> None:
    obj = make_rollout("ghost")
    obj["metadata"]["resourceVersion"] = "1"
    with pytest.raises(NotFound):
        store.update(obj)


def test_generation_moves_only_with_spec(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web"))
    obj["metadata"]["labels"]["tier"] = "frontend"
    obj = store.update(obj)
    assert obj["metadata"]["generation"] == 1
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    obj["spec"]["replicas"] = 4
    obj = store.update(obj)
    assert obj["metadata"]["generation"] == 2
    obj["status"] = {"phase": "Healthy"}
    obj = store.update_status(obj)
    assert obj["metadata"]["generation"] == 2


def test_update_ignores_status_and_server_fields(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web", status={"phase": "Progressing"}))
    uid = obj["metadata"]["uid"]
    obj["status"] = {"phase": "Degraded"}
    obj["metadata"]["uid"] = "forged"
    obj["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    obj["spec"]["replicas"] = 1
    updated = store.update(obj)
    assert updated["status"] == {"phase": "Progressing"}
    assert updated["metadata"]["uid"] == uid
    assert updated["metadata"]["creationTimestamp"] == "2024-05-01T12:00:00Z"
    assert updated["spec"]["replicas"] == 1


def test_update_status_writes_only_status(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web"))
    obj["spec"]["replicas"] = 10
    obj["metadata"]["labels"] = {"changed": "yes"}
    obj["status"] = {"phase": "Healthy", "replicas": 3}
    updated = store.update_status(obj)
    assert updated["status"] == {"phase": "Healthy", "replicas": 3}
    assert updated["spec"]["replicas"] == 3
    assert updated["metadata"]["labels"] == {"app": "web"}
    assert int(updated["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])


def test_update_status_with_stale_version_conflicts(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web"))
    store.update_status({**obj, "status": {"phase": "Healthy"}})
    with pytest.raises(Conflict):
        store.update_status({**obj, "status": {"phase": "Degraded"}})


def test_noop_update_keeps_version_and_feed(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web"))
    version = store.current_version()
    assert store.update(obj) == obj
    assert store.update_status(obj) == obj
    assert store.current_version() == version
    assert store.watch(version, timeout=0) == []


def test_delete(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    deleted = store.delete("Rollout", "default", "web")
    assert deleted["metadata"]["name"] == "web"
    with pytest.raises(NotFound):
        store.get("Rollout", "default", "web")
    with pytest.raises(NotFound):
        store.delete("Rollout", "default", "web")


def test_delete_with_stale_precondition_conflicts(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web"))
    store.update_status({**obj, "status": {"phase": "Healthy"}})
    with pytest.raises(Conflict):
        store.delete("Rollout", "default", "web", resource_version=obj["metadata"]["resourceVersion"])
    assert store.get("Rollout", "default", "web")


def test_transaction_is_all_or_nothing(store: SQLiteStore, make_rollout) -> None:
    version = store.current_version()
    with pytest.raises(RuntimeError), store.transaction():
        store.create(make_rollout("a"))
        store.create(make_rollout("b"))
        raise RuntimeError("boom")
    assert store.list("Rollout") == []
    assert store.current_version() == version
    with store.transaction():
        store.create(make_rollout("a"))
        store.create(make_rollout("b"))
    assert [o["metadata"]["name"] for o in store.list("Rollout")] == ["a", "b"]


def test_failed_write_inside_transaction_keeps_earlier_writes(store: SQLiteStore, make_rollout) -> None:
    with store.transaction():
        store.create(make_rollout("a"))
        with pytest.raises(AlreadyExists):
            store.create(make_rollout("a"))
        store.create(make_rollout("b"))
    assert len(store.list("Rollout")) == 2


def test_reopen_sees_data_and_continues_versions(tmp_path, make_rollout) -> None:
    with SQLiteStore(tmp_path / "s.db") as first:
        first.create(make_rollout("web"))
    with SQLiteStore(tmp_path / "s.db") as second:
        assert second.get("Rollout", "default", "web")["metadata"]["resourceVersion"] == "1"
        assert second.create(make_rollout("api"))["metadata"]["resourceVersion"] == "2"
        mode = second._db().execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_get_and_update_are_fast(store: SQLiteStore, make_rollout) -> None:
    for i in range(300):
        store.create(make_rollout(f"r{i}"))
    obj = store.get("Rollout", "default", "r150")
    gets, updates = [], []
    for i in range(200):
        start = time.perf_counter()
        obj = store.get("Rollout", "default", "r150")
        gets.append(time.perf_counter() - start)
        obj["spec"]["replicas"] = i
        start = time.perf_counter()
        obj = store.update(obj)
        updates.append(time.perf_counter() - start)
    # Medians, because WAL checkpoints (an fsync every few hundred writes) make the mean noisy.
    # Typically ~30us and ~250us; the bounds leave room for slow shared machines.
    assert statistics.median(gets) < 0.001, statistics.median(gets)
    assert statistics.median(updates) < 0.003, statistics.median(updates)
