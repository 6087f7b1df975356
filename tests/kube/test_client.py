"""`KubeStore`, the object-store contract over the Kubernetes API, against a real local API server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from rollouts.kube.client import HISTORY_SUFFIX, ApiError, KubeStore, Unreachable
from rollouts.kube.config import load_config
from rollouts.store.protocol import AlreadyExists, Conflict, Expired, Invalid, NotFound, ObjectStore
from tests.kube.conftest import FEED_LIMIT, Cluster, rollout


def _cm(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


def test_kube_store_satisfies_the_store_protocol(kube: KubeStore) -> None:
    assert isinstance(kube, ObjectStore)


def test_create_get_and_server_fields(kube: KubeStore) -> None:
    made = kube.create(rollout("c-get"))
    meta = made["metadata"]
    assert meta["namespace"] == "default" and meta["uid"] and int(meta["resourceVersion"]) > 0
    got = kube.get("Rollout", "default", "c-get")
    assert got["metadata"]["uid"] == meta["uid"] and got["kind"] == "Rollout"


@pytest.mark.parametrize("call, error, message", [
    (lambda s: s.get("Rollout", "default", "nope"), NotFound, 'rollouts "nope" in namespace "default" not found'),
    (lambda s: s.delete("ConfigMap", "default", "nope"), NotFound, 'configmaps "nope" in namespace "default"'),
    (lambda s: s.patch("Rollout", "default", "nope", {"spec": {}}), NotFound, "not found"),
    (lambda s: s.list("Pod", label_selector="a in (b"), Invalid, ""),
    (lambda s: s.create({**rollout("bad"), "spec": {**rollout("bad")["spec"], "strategy": {
        "canary": {"steps": [{"setWeight": 140}]}}}}), Invalid, "setWeight"),
    (lambda s: s.get("Widget", "default", "x"), KeyError, "known kinds"),
], ids=["get-missing", "delete-missing", "patch-missing", "bad-selector", "invalid-422", "unknown-kind"])
def test_status_errors_map_to_store_errors(kube: KubeStore, call: Any, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        call(kube)
    assert message in str(caught.value)


def test_create_twice_is_already_exists(kube: KubeStore) -> None:
    kube.create(_cm("c-twice"))
    with pytest.raises(AlreadyExists, match='configmaps "c-twice" in namespace "default" already exists'):
        kube.create(_cm("c-twice"))


def test_update_with_stale_version_conflicts(kube: KubeStore) -> None:
    first = kube.create(_cm("c-stale"))
    fresh = kube.update({**first, "data": {"k": "2"}})
    assert int(fresh["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(Conflict) as caught:
        kube.update({**first, "data": {"k": "3"}})
    assert caught.value.given == first["metadata"]["resourceVersion"]
    assert kube.get("ConfigMap", "default", "c-stale")["data"] == {"k": "2"}


def test_update_requires_resource_version(kube: KubeStore) -> None:
    kube.create(_cm("c-norv"))
    with pytest.raises(Invalid, match="metadata.resourceVersion must be set"):
        kube.update(_cm("c-norv"))


def test_update_status_and_status_patch_write_only_status(kube: KubeStore) -> None:
    made = kube.create(rollout("c-status"))
    spec_changed = {**made, "spec": {**made["spec"], "replicas": 5}, "status": {"phase": "Healthy"}}
    after = kube.update_status(spec_changed)
    assert after["status"] == {"phase": "Healthy"} and after["spec"]["replicas"] == 2
    patched = kube.patch("Rollout", "default", "c-status", {"status": {"message": "m"}}, subresource="status")
    assert patched["status"] == {"phase": "Healthy", "message": "m"}
    ignored = kube.patch("Rollout", "default", "c-status", {"status": {"phase": "Degraded"}})
    assert ignored["status"]["phase"] == "Healthy"  # status only through /status
    with pytest.raises(Conflict):
        kube.update_status({**made, "status": {"phase": "x"}})


@pytest.mark.parametrize("patch_type, patch, expected", [
    ("merge", {"metadata": {"labels": {"a": "1"}}, "data": {"k": None, "n": "2"}}, {"n": "2"}),
    ("json", [{"op": "replace", "path": "/data/k", "value": "j"}], {"k": "j"}),
], ids=["merge", "json"])
def test_patch_types(kube: KubeStore, patch_type: Any, patch: Any, expected: dict[str, str]) -> None:
    name = f"c-patch-{patch_type}"
    kube.create(_cm(name))
    assert kube.patch("ConfigMap", "default", name, patch, patch_type)["data"] == expected


def test_failed_json_patch_test_is_invalid(kube: KubeStore) -> None:
    kube.create(_cm("c-ptest"))
    with pytest.raises(Invalid):
        kube.patch("ConfigMap", "default", "c-ptest", [{"op": "test", "path": "/data/k", "value": "other"}], "json")


def test_delete_with_precondition_and_cascade(kube: KubeStore) -> None:
    owner = kube.create(rollout("c-owner"))
    ref = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "c-owner",
           "uid": owner["metadata"]["uid"], "controller": True}
    child = _cm("c-owned")
    child["metadata"]["ownerReferences"] = [ref]
    kube.create(child)
    with pytest.raises(Conflict):
        kube.delete("Rollout", "default", "c-owner", resource_version="1")
    kube.delete("Rollout", "default", "c-owner", resource_version=owner["metadata"]["resourceVersion"])
    for kind, name in (("Rollout", "c-owner"), ("ConfigMap", "c-owned")):
        with pytest.raises(NotFound):
            kube.get(kind, "default", name)


def test_list_selectors_namespaces_and_paging(kube: KubeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(7):
        kube.create(_cm(f"c-list-{n}", "ns-a" if n % 2 else "ns-b", tier="web" if n < 4 else "db"))
    monkeypatch.setattr("rollouts.kube.client.PAGE", 2)  # force several pages
    everywhere = {o["metadata"]["name"] for o in kube.list("ConfigMap", label_selector="tier")}
    assert everywhere == {f"c-list-{n}" for n in range(7)}
    in_a = kube.list("ConfigMap", "ns-a", label_selector="tier=web")
    assert sorted(o["metadata"]["name"] for o in in_a) == ["c-list-1", "c-list-3"]
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for o in in_a)
    named = kube.list("ConfigMap", "ns-b", field_selector="metadata.name=c-list-6")
    assert [o["metadata"]["name"] for o in named] == ["c-list-6"]
    items, version = kube.list_with_version("ConfigMap", "ns-a")
    assert version >= max(int(o["metadata"]["resourceVersion"]) for o in items)


def test_cluster_scoped_kind(kube: KubeStore) -> None:
    cat = {"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate",
           "metadata": {"name": "c-cat"}, "spec": {"metrics": [{"name": "m", "provider": {"job": {"spec": {
               "template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}}}}]}}
    made = kube.create(cat)
    assert "namespace" not in made["metadata"] or not made["metadata"]["namespace"]
    assert kube.get("ClusterAnalysisTemplate", "", "c-cat")["metadata"]["uid"] == made["metadata"]["uid"]


def test_watch_returns_changes_after_since_across_kinds(kube: KubeStore) -> None:
    since = kube.current_version()
    kube.create(_cm("c-w1"))
    kube.create(rollout("c-w2"))
    kube.patch("ConfigMap", "default", "c-w1", {"data": {"k": "w"}})
    changes = kube.watch(since, kinds={"ConfigMap", "Rollout"}, timeout=3)
    assert [(c.kind, c.name, c.type) for c in changes] == [
        ("ConfigMap", "c-w1", "ADDED"), ("Rollout", "c-w2", "ADDED"), ("ConfigMap", "c-w1", "MODIFIED")]
    assert [c.resource_version for c in changes] == sorted(c.resource_version for c in changes)
    assert kube.watch(changes[-1].resource_version, kinds={"ConfigMap", "Rollout"}, timeout=0.3) == []


def test_watch_waits_for_a_write_from_another_thread(kube: KubeStore, cluster: Cluster) -> None:
    since = kube.current_version()
    writer = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    timer = threading.Timer(0.3, lambda: writer.create(_cm("c-wait")))
    timer.start()
    started = time.monotonic()
    changes = kube.watch(since, kinds={"ConfigMap"}, timeout=5)
    timer.join()
    writer.close()
    assert [c.name for c in changes] == ["c-wait"] and time.monotonic() - started < 4


def test_watch_async_wakes_on_write(kube: KubeStore) -> None:
    async def run() -> list[Any]:
        since = kube.current_version()
        task = asyncio.create_task(kube.watch_async(since, {"ConfigMap"}, timeout=5))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(kube.create, _cm("c-async"))
        return await task
    assert [c.name for c in asyncio.run(run())] == ["c-async"]


def test_watch_after_compaction_is_expired(kube: KubeStore) -> None:
    since = kube.current_version()
    for n in range(FEED_LIMIT + 5):
        kube.create(_cm(f"c-compact-{n}"))
    with pytest.raises(Expired):
        kube.watch(since, kinds={"ConfigMap"}, timeout=2)


def test_events_are_recorded_and_aggregated(kube: KubeStore) -> None:
    involved = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "c-ev", "namespace": "default"}
    first = kube.record_event(involved, "Normal", "RolloutUpdated", "hello")
    again = kube.record_event(involved, "Normal", "RolloutUpdated", "hello")
    assert again["metadata"]["name"] == first["metadata"]["name"] and again["count"] == 2
    other = kube.record_event(involved, "Warning", "RolloutAborted", "bye")
    assert other["metadata"]["name"] != first["metadata"]["name"]
    listed = kube.list("Event", "default", field_selector="involvedObject.name=c-ev")
    assert sorted(e["reason"] for e in listed) == ["RolloutAborted", "RolloutUpdated"]
    with pytest.raises(Invalid, match="Normal, Warning"):
        kube.record_event(involved, "Bad", "r", "m")


def test_revision_history_lives_in_a_configmap_owned_by_the_rollout(kube: KubeStore) -> None:
    made = kube.create(rollout("c-hist"))
    kube.record_revision("default", "c-hist", 1, "aaa", {"app": "demo:1"}, {"spec": {}})
    kube.record_revision("default", "c-hist", 2, "bbb", {"app": "demo:2"}, {"spec": {}})
    kube.set_revision_outcome("default", "c-hist", 1, "superseded", "replaced")
    revisions = kube.list_revisions("default", "c-hist")
    assert [(r.revision, r.pod_hash, r.outcome, r.cause) for r in revisions] == [
        (1, "aaa", "superseded", "replaced"), (2, "bbb", "current", "")]
    assert revisions[1].images == {"app": "demo:2"}
    cm = kube.get("ConfigMap", "default", "c-hist" + HISTORY_SUFFIX)
    assert cm["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
    with pytest.raises(NotFound):
        kube.set_revision_outcome("default", "c-hist", 9, "aborted")
    with pytest.raises(Invalid, match="not one of"):
        kube.record_revision("default", "c-hist", 3, "c", {}, {}, outcome="weird")  # type: ignore[arg-type]
    kube.delete("Rollout", "default", "c-hist")
    assert kube.list_revisions("default", "c-hist") == []  # garbage-collected with the rollout


def test_revision_history_is_bounded(kube: KubeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rollouts.store.history.HISTORY_LIMIT", 3)
    for n in range(1, 6):
        kube.record_revision("default", "c-bounded", n, f"h{n}", {}, {})
    assert [r.revision for r in kube.list_revisions("default", "c-bounded")] == [3, 4, 5]


@pytest.mark.parametrize("writer", ["sqlite", "kube"])
def test_history_written_by_either_store_is_read_by_the_other(kube: KubeStore, cluster: Cluster,
                                                              writer: str) -> None:
    name = f"c-shared-{writer}"
    kube.create(rollout(name))
    first, second = (cluster.store, kube) if writer == "sqlite" else (kube, cluster.store)
    first.record_revision("default", name, 1, "aaa", {"app": "demo:1"}, {"spec": {"x": 1}})
    first.set_revision_outcome("default", name, 1, "promoted", "RolloutCompleted")
    second.record_revision("default", name, 2, "bbb", {"app": "demo:2"}, {"spec": {"x": 2}})
    for reader in (kube, cluster.store):
        listed = reader.list_revisions("default", name)
        assert [(r.revision, r.pod_hash, r.outcome, r.cause) for r in listed] == [
            (1, "aaa", "promoted", "RolloutCompleted"), (2, "bbb", "current", "")]
        assert listed[0].template == {"spec": {"x": 1}}


def test_wrong_token_is_unauthorized(cluster: Cluster) -> None:
    config = load_config(kubeconfig=cluster.kubeconfig)
    config.token = "wrong"
    with KubeStore(config) as store, pytest.raises(ApiError, match="rejected the credentials") as caught:
        store.get("Namespace", "", "default")
    assert caught.value.code == 401


def test_unreachable_server_names_it(cluster: Cluster) -> None:
    config = load_config(kubeconfig=cluster.kubeconfig)
    config.server = "https://127.0.0.1:9"  # discard port: nothing listens
    with KubeStore(config) as store, pytest.raises(Unreachable, match="cannot reach the Kubernetes API at "
                                                                       "https://127.0.0.1:9"):
        store.get("Namespace", "", "default")


def test_keep_alive_connection_survives_a_server_side_close(kube: KubeStore) -> None:
    kube.get("Namespace", "", "default")
    conn = kube._local.conn
    assert conn.sock is not None
    conn.sock.close()  # as if the server dropped the idle connection
    conn.sock = None
    assert kube.get("Namespace", "", "default")["metadata"]["name"] == "default"


def test_fresh_process_get_is_fast_and_does_not_import_lightkube(cluster: Cluster) -> None:
    code = ("import sys, time; t = time.perf_counter()\n"
            "from rollouts.kube.client import connect\n"
            "s = connect(); s.get('Namespace', '', 'default')\n"
            "print(time.perf_counter() - t, *(m in sys.modules for m in ('lightkube', 'httpx')))")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seconds, *heavy = out.stdout.split()
    assert heavy == ["False", "False"]  # lightkube and httpx stay out of the hot path
    assert float(seconds) < 1.0  # generous under load; bench/ measures the real figure


def test_generate_name_and_delete_returns_the_object(kube: KubeStore) -> None:
    made = kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"generateName": "c-gen-", "namespace": "default"}, "data": {}})
    name = made["metadata"]["name"]
    assert name.startswith("c-gen-") and len(name) > len("c-gen-")
    gone = kube.delete("ConfigMap", "default", name)
    assert gone["metadata"]["name"] == name and gone["kind"] == "ConfigMap"


def test_namespace_defaults_to_the_contexts(cluster: Cluster) -> None:
    config = load_config(kubeconfig=cluster.kubeconfig, namespace="ctx-ns")
    with KubeStore(config) as store:
        made = store.create(_cm("c-ctx", namespace=""))
        assert made["metadata"]["namespace"] == "ctx-ns"
        assert store.get("ConfigMap", "", "c-ctx")["metadata"]["uid"] == made["metadata"]["uid"]


def test_one_store_is_safe_from_several_threads(kube: KubeStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(10):
                made = kube.create(_cm(f"c-thread-{worker}-{n}"))
                assert kube.get("ConfigMap", "default", made["metadata"]["name"])["metadata"]["uid"] == \
                    made["metadata"]["uid"]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(kube.list("ConfigMap", "default", field_selector="")) >= 40


def test_watch_streams_stay_open_between_polls(kube: KubeStore) -> None:
    since = kube.current_version()
    for n in range(3):
        kube.create(_cm(f"c-poll-{n}"))
        changes = kube.watch(since, kinds={"ConfigMap", "Rollout"}, timeout=3)
        assert [c.name for c in changes] == [f"c-poll-{n}"]
        since = changes[-1].resource_version
    assert kube._feed is not None
    assert {k: s.opened for k, s in kube._feed.streams().items()} == {"ConfigMap": 1, "Rollout": 1}


def test_watch_from_before_the_feed_opens_watches_for_that_call(kube: KubeStore) -> None:
    old = kube.current_version()
    kube.create(_cm("c-older"))
    newer = kube.current_version()
    assert kube.watch(newer, kinds={"ConfigMap"}, timeout=0.2) == []  # the feed starts at `newer`
    assert [c.name for c in kube.watch(old, kinds={"ConfigMap"}, timeout=2)] == ["c-older"]


def test_watch_expired_stream_is_replaced_after_the_caller_relists(kube: KubeStore) -> None:
    since = kube.current_version()
    for n in range(FEED_LIMIT + 5):
        kube.create(_cm(f"c-exp-{n}"))
    with pytest.raises(Expired):
        kube.watch(since, kinds={"ConfigMap"}, timeout=2)
    fresh = kube.current_version()
    kube.create(_cm("c-exp-after"))
    assert [c.name for c in kube.watch(fresh, kinds={"ConfigMap"}, timeout=2)] == ["c-exp-after"]
