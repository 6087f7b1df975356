"""The local API server driven by lightkube, sync and async, as the operator and CLI will use it:
every verb, every patch type, watch resume and bookmarks, cascading delete, finalizers, collections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, EnvVar, PodSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Pod
from lightkube.types import CascadeType, PatchType

from tests.cluster.conftest import Cluster, rollout

Rollout = create_namespaced_resource("argoproj.io", "v1alpha1", "Rollout", "rollouts")
AnalysisRun = create_namespaced_resource("argoproj.io", "v1alpha1", "AnalysisRun", "analysisruns")
ReplicaSet = create_namespaced_resource("apps", "v1", "ReplicaSet", "replicasets")


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Iterator[Client]:
    found = Client(config=KubeConfig.from_file(cluster.kubeconfig))
    yield found
    found.close()


def _pod(name: str, owner: dict[str, Any] | None = None) -> Pod:
    refs = [owner] if owner else None
    return Pod(metadata=ObjectMeta(name=name, ownerReferences=refs),  # type: ignore[arg-type]
               spec=PodSpec(containers=[Container(name="app", image="demo:1", env=[EnvVar(name="A", value="1")])]))


def _owner(obj: Any, kind: str, api_version: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": obj.metadata.name, "uid": obj.metadata.uid,
            "controller": True}


def test_lightkube_create_get_list_update_delete(client: Client) -> None:
    created = client.create(ConfigMap(metadata=ObjectMeta(name="lk-crud", labels={"t": "crud"}), data={"a": "1"}))
    assert client.get(ConfigMap, "lk-crud").data == {"a": "1"}
    created.data = {"a": "2"}
    updated = client.replace(created)
    assert updated.data == {"a": "2"}
    assert [c.metadata.name for c in client.list(ConfigMap, labels={"t": "crud"})] == ["lk-crud"]
    with pytest.raises(ApiError) as stale:
        client.replace(created)  # still carries the old resourceVersion
    assert (stale.value.status.code, stale.value.status.reason) == (409, "Conflict")
    client.delete(ConfigMap, "lk-crud")
    with pytest.raises(ApiError) as gone:
        client.get(ConfigMap, "lk-crud")
    assert gone.value.status.code == 404


def test_lightkube_invalid_rollout_is_422_with_causes(client: Client) -> None:
    bad = rollout("lk-invalid")
    bad["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": 101}]
    with pytest.raises(ApiError) as caught:
        client.create(Rollout(bad))
    status = caught.value.status
    assert (status.code, status.reason) == (422, "Invalid")
    assert status.details is not None and status.details.causes is not None
    assert [c.field for c in status.details.causes] == ["spec.strategy.canary.steps[0].setWeight"]


@pytest.mark.parametrize(
    ("patch_type", "patch", "expected_env", "expected_image"),
    [
        (PatchType.MERGE, {"metadata": {"labels": {"p": "merge"}}}, [{"name": "A", "value": "1"}], "demo:1"),
        (PatchType.JSON, [{"op": "replace", "path": "/spec/containers/0/image", "value": "demo:2"}],
         [{"name": "A", "value": "1"}], "demo:2"),
        # Strategic: env merges by name (A kept, B added), containers by name (image changed, env kept).
        (PatchType.STRATEGIC,
         {"spec": {"containers": [{"name": "app", "image": "demo:3", "env": [{"name": "B", "value": "2"}]}]}},
         [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "demo:3"),
        (PatchType.STRATEGIC,
         {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]}}, [], "demo:1"),
    ],
    ids=["merge", "json", "strategic-keyed-lists", "strategic-delete-directive"],
)
def test_lightkube_patch_types(client: Client, patch_type: PatchType, patch: Any,
                               expected_env: list[dict[str, str]], expected_image: str) -> None:
    name = f"lk-patch-{patch_type.name.lower()}-{len(str(patch))}"
    client.create(_pod(name))
    patched = client.patch(Pod, name, patch, patch_type=patch_type)
    container = patched.spec.containers[0]
    assert container.image == expected_image
    assert [{"name": e.name, "value": e.value} for e in container.env or []] == expected_env


def test_lightkube_strategic_patch_on_a_rollout_is_415(client: Client) -> None:
    client.create(Rollout(rollout("lk-smp")))
    with pytest.raises(ApiError) as caught:
        client.patch(Rollout, "lk-smp", {"spec": {"replicas": 3}}, patch_type=PatchType.STRATEGIC)
    assert caught.value.status.code == 415


def test_lightkube_server_side_apply_creates_then_merges(client: Client) -> None:
    first = client.apply(Rollout(rollout("lk-apply", replicas=1)), field_manager="tests")
    second = client.apply(Rollout(rollout("lk-apply", replicas=3, labels={"a": "b"})), field_manager="tests")
    assert first.metadata.generation == 1
    assert second.spec["replicas"] == 3 and second.metadata.labels == {"a": "b"}
    assert second.metadata.generation == 2
    assert [m.manager for m in second.metadata.managedFields or []] == ["tests"]


def test_lightkube_status_subresource(client: Client) -> None:
    client.create(Rollout(rollout("lk-status")))
    patched = client.patch(Rollout.Status, "lk-status", {"status": {"phase": "Progressing"}},
                           patch_type=PatchType.MERGE)
    main = client.patch(Rollout, "lk-status", {"status": {"phase": "Healthy"}}, patch_type=PatchType.MERGE)
    assert patched.status == {"phase": "Progressing"}
    assert main.status == {"phase": "Progressing"}  # the main resource ignores status


def test_cascading_delete_removes_replicasets_pods_and_analysisruns(client: Client, cluster: Cluster) -> None:
    ro = client.create(Rollout(rollout("lk-cascade")))
    rs = client.create(ReplicaSet({"metadata": {"name": "lk-cascade-abc",
                                                "ownerReferences": [_owner(ro, "Rollout", "argoproj.io/v1alpha1")]},
                                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}}}}))
    client.create(_pod("lk-cascade-abc-1", _owner(rs, "ReplicaSet", "apps/v1")))
    client.create(AnalysisRun({"metadata": {"name": "lk-cascade-run",
                                            "ownerReferences": [_owner(ro, "Rollout", "argoproj.io/v1alpha1")]},
                               "spec": {"metrics": [{"name": "m", "provider": {"job": {"spec": {"template": {
                                   "spec": {"containers": [{"name": "c", "image": "i"}],
                                            "restartPolicy": "Never"}}}}}}]}}))
    client.delete(Rollout, "lk-cascade", cascade=CascadeType.BACKGROUND)
    for kind, name in (("ReplicaSet", "lk-cascade-abc"), ("Pod", "lk-cascade-abc-1"), ("AnalysisRun", "lk-cascade-run")):
        assert not cluster.store.list(kind, "default", field_selector=f"metadata.name={name}"), kind


def test_orphan_delete_keeps_dependents_without_the_owner_reference(client: Client) -> None:
    cm = client.create(ConfigMap(metadata=ObjectMeta(name="lk-owner")))
    client.create(_pod("lk-orphan", _owner(cm, "ConfigMap", "v1")))
    client.delete(ConfigMap, "lk-owner", cascade=CascadeType.ORPHAN)
    assert not client.get(Pod, "lk-orphan").metadata.ownerReferences


def test_finalizers_hold_deletion_until_removed(client: Client) -> None:
    client.create(ConfigMap(metadata=ObjectMeta(name="lk-final", finalizers=["example.com/hold"])))
    client.delete(ConfigMap, "lk-final")
    held = client.get(ConfigMap, "lk-final")
    assert held.metadata.deletionTimestamp is not None
    # A writer cannot take deletionTimestamp away.
    unmarked = client.patch(ConfigMap, "lk-final", {"metadata": {"deletionTimestamp": None, "labels": {"x": "y"}}},
                            patch_type=PatchType.MERGE)
    assert unmarked.metadata.deletionTimestamp is not None
    client.patch(ConfigMap, "lk-final", {"metadata": {"finalizers": None}}, patch_type=PatchType.MERGE)
    with pytest.raises(ApiError) as gone:
        client.get(ConfigMap, "lk-final")
    assert gone.value.status.code == 404


def test_deletecollection_of_a_namespace_and_by_label(client: Client, cluster: Cluster) -> None:
    for n in range(3):
        client.create(ConfigMap(metadata=ObjectMeta(name=f"lk-coll-{n}", namespace="lk-coll",
                                                    labels={"coll": "yes" if n < 2 else "no"})))
    client.create(ConfigMap(metadata=ObjectMeta(name="lk-coll-elsewhere", labels={"coll": "yes"})))
    with cluster.http() as http:  # lightkube's deletecollection takes no selector: kubectl's way
        answer = http.delete("/api/v1/namespaces/lk-coll/configmaps", params={"labelSelector": "coll=yes"})
    assert [i["metadata"]["name"] for i in answer.json()["items"]] == ["lk-coll-0", "lk-coll-1"]
    assert [c.metadata.name for c in client.list(ConfigMap, namespace="lk-coll")] == ["lk-coll-2"]
    client.deletecollection(ConfigMap, namespace="lk-coll")
    assert not list(client.list(ConfigMap, namespace="lk-coll"))
    assert client.get(ConfigMap, "lk-coll-elsewhere").metadata.labels == {"coll": "yes"}


def test_watch_resumes_from_a_resource_version(client: Client) -> None:
    first = client.create(ConfigMap(metadata=ObjectMeta(name="lk-watch-1", labels={"w": "resume"})))
    client.create(ConfigMap(metadata=ObjectMeta(name="lk-watch-2", labels={"w": "resume"})))
    client.patch(ConfigMap, "lk-watch-1", {"data": {"k": "v"}}, patch_type=PatchType.MERGE)
    client.delete(ConfigMap, "lk-watch-2")
    seen = []
    for event, obj in client.watch(ConfigMap, namespace="default", labels={"w": "resume"},
                                   resource_version=first.metadata.resourceVersion, server_timeout=5):
        seen.append((event, obj.metadata.name))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "lk-watch-2"), ("MODIFIED", "lk-watch-1"), ("DELETED", "lk-watch-2")]


def test_async_client_lists_and_watches(cluster: Cluster) -> None:
    async def scenario() -> list[tuple[str, str]]:
        client = AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig))
        try:
            await client.create(ConfigMap(metadata=ObjectMeta(name="lk-async-0", labels={"w": "async"})))
            seen = []
            async for event, obj in client.watch(ConfigMap, namespace="default", labels={"w": "async"},
                                                 server_timeout=5):
                seen.append((event, obj.metadata.name))
                if len(seen) == 1:
                    await client.create(ConfigMap(metadata=ObjectMeta(name="lk-async-1", labels={"w": "async"})))
                if len(seen) == 2:
                    break
            listed = [c.metadata.name async for c in client.list(ConfigMap, labels={"w": "async"})]
            assert listed == ["lk-async-0", "lk-async-1"]
            return seen
        finally:
            await client.close()

    deadline = time.monotonic() + 30
    assert asyncio.run(asyncio.wait_for(scenario(), deadline - time.monotonic())) == [
        ("ADDED", "lk-async-0"), ("ADDED", "lk-async-1")]


def test_deleting_a_namespace_deletes_its_contents(client: Client) -> None:
    from lightkube.resources.core_v1 import Namespace

    client.create(Namespace(metadata=ObjectMeta(name="lk-doomed")))
    client.create(ConfigMap(metadata=ObjectMeta(name="lk-doomed-cm", namespace="lk-doomed")))
    client.delete(Namespace, "lk-doomed")
    assert not list(client.list(ConfigMap, namespace="lk-doomed"))
    assert "lk-doomed" not in [n.metadata.name for n in client.list(Namespace)]


def test_concurrent_read_modify_write_loses_no_update(cluster: Cluster) -> None:
    """Eight writers increment one counter with get + replace, retrying on 409: no increment is lost."""
    import threading

    seed = Client(config=KubeConfig.from_file(cluster.kubeconfig))
    seed.create(ConfigMap(metadata=ObjectMeta(name="lk-counter"), data={"n": "0"}))
    conflicts: list[int] = []

    def writer() -> None:
        own = Client(config=KubeConfig.from_file(cluster.kubeconfig))
        for _ in range(5):
            while True:
                current = own.get(ConfigMap, "lk-counter")
                current.data = {"n": str(int((current.data or {})["n"]) + 1)}
                try:
                    own.replace(current)
                    break
                except ApiError as exc:
                    assert exc.status.code == 409
                    conflicts.append(1)
        own.close()

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert (seed.get(ConfigMap, "lk-counter").data or {})["n"] == "40"
    seed.close()


def test_server_side_apply_drops_removed_fields_and_is_idempotent(client: Client) -> None:
    with_labels = rollout("lk-apply-drop", labels={"keep": "1", "drop": "2"})
    client.apply(Rollout(with_labels), field_manager="tests")
    client.patch(Rollout, "lk-apply-drop", {"metadata": {"labels": {"other": "3"}}}, patch_type=PatchType.MERGE)
    first = client.apply(Rollout(rollout("lk-apply-drop", labels={"keep": "1"})), field_manager="tests")
    again = client.apply(Rollout(rollout("lk-apply-drop", labels={"keep": "1"})), field_manager="tests")
    assert first.metadata.labels == {"keep": "1", "other": "3"}
    assert again.metadata.resourceVersion == first.metadata.resourceVersion
