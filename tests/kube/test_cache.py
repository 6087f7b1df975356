"""CachedStore against the real local API server: reads from informer caches, own writes seen at once, a 409
re-read, relist after 410, scoping, and the routing of a change to the key of the rollout it concerns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rollouts.controller.operator import RolloutIndex, Router
from rollouts.kube.cache import INSTANCE_ID_LABEL, CachedStore, instance_selector
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.store.protocol import Conflict, NotFound
from tests.kube.conftest import FEED_LIMIT, Cluster, rollout, until


def _run(cluster: Cluster, body: Callable[[CachedStore, KubeStore], Awaitable[Any]], **options: Any) -> Any:
    """body(cache, other): `cache` is synced; `other` is a plain KubeStore (another writer, as the CLI is)."""
    async def main() -> Any:
        config = load_config(kubeconfig=cluster.kubeconfig)
        cache = CachedStore.connect(KubeStore(config), **options)
        other = KubeStore(config)
        try:
            await cache.start()
            await cache.wait_synced(10)
            return await asyncio.wait_for(body(cache, other), 30)
        finally:
            await cache.aclose()
            other.close()
    return asyncio.run(main())


def _in(namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["namespace"] = namespace
    return obj


def test_cache_sees_its_own_writes_before_the_watch_delivers_them(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> None:
        calls: list[str] = []
        real_get = cache.store.get
        cache.store.get = lambda *a: calls.append("get") or real_get(*a)  # type: ignore[method-assign]
        # No await between the write and the read: the informer cannot have seen the watch event yet.
        created = cache.create(_in("cache-own", rollout("own")))
        assert cache.get("Rollout", "cache-own", "own")["metadata"]["uid"] == created["metadata"]["uid"]
        cache.patch("Rollout", "cache-own", "own", {"status": {"phase": "Paused"}}, subresource="status")
        assert cache.get("Rollout", "cache-own", "own")["status"]["phase"] == "Paused"
        assert [o["metadata"]["name"] for o in cache.list("Rollout", "cache-own")] == ["own"]
        cache.delete("Rollout", "cache-own", "own")
        with pytest.raises(NotFound):
            cache.get("Rollout", "cache-own", "own")
        assert calls == []  # every read came from memory
        # The watch events of those writes arrive later and do not bring the object back.
        await asyncio.sleep(0.5)
        assert cache.list("Rollout", "cache-own") == []
    _run(cluster, body)


def test_cache_follows_another_writers_changes_and_notifies_once(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, str]]:
        seen: list[tuple[str, str, str]] = []
        cache.subscribe(lambda kind, event, obj: seen.append((kind, event, obj["metadata"]["name"]))
                        if obj["metadata"].get("namespace") == "cache-other" else None)
        await asyncio.to_thread(other.create, _in("cache-other", rollout("theirs")))
        await until(lambda: cache.peek("Rollout", "cache-other", "theirs") is not None)
        mine = cache.patch("Rollout", "cache-other", "theirs", {"metadata": {"labels": {"x": "1"}}})
        await asyncio.to_thread(other.delete, "Rollout", "cache-other", "theirs")
        await until(lambda: cache.peek("Rollout", "cache-other", "theirs") is None)
        await asyncio.sleep(0.3)
        assert mine["metadata"]["labels"] == {"x": "1"}
        return seen
    seen = _run(cluster, body)
    assert seen == [("Rollout", "ADDED", "theirs"), ("Rollout", "MODIFIED", "theirs"), ("Rollout", "DELETED", "theirs")]


def test_cache_rereads_an_object_after_a_409(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> None:
        created = cache.create(_in("cache-409", rollout("raced")))
        # Another writer moves it on; this cache has not heard yet (no await since).
        other.patch("Rollout", "cache-409", "raced", {"metadata": {"labels": {"by": "other"}}})
        stale = cache.get("Rollout", "cache-409", "raced")
        assert stale["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        with pytest.raises(Conflict):
            cache.update({**stale, "spec": {**stale["spec"], "replicas": 3}})
        fresh = cache.get("Rollout", "cache-409", "raced")
        assert fresh["metadata"]["labels"] == {"by": "other"}  # the retry works on what the API has
        cache.update({**fresh, "spec": {**fresh["spec"], "replicas": 3}})
        assert cache.get("Rollout", "cache-409", "raced")["spec"]["replicas"] == 3
    _run(cluster, body)


def test_cache_relists_on_410_and_reports_the_difference(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> tuple[list[tuple[str, str]], int]:
        for name in ("keep", "change", "gone"):
            other.create(_in("cache-410", rollout(name)))
        await until(lambda: len(cache.list("Rollout", "cache-410")) == 3)
        await cache.stop()  # cache and resume points kept
        other.patch("Rollout", "cache-410", "change", {"metadata": {"labels": {"v": "2"}}})
        other.delete("Rollout", "cache-410", "gone")
        for n in range(FEED_LIMIT + 5):  # compact the feed past the resume point
            other.create({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"filler-{n}", "namespace": "cache-filler"}, "data": {}})
        other.create(_in("cache-410", rollout("added")))
        seen: list[tuple[str, str]] = []
        cache.subscribe(lambda kind, event, obj: seen.append((event, obj["metadata"]["name"]))
                        if kind == "Rollout" else None)
        await cache.start()
        informer = cache.informers["Rollout"]
        await until(lambda: informer.lists == 2 and cache.peek("Rollout", "cache-410", "added") is not None)
        names = sorted(o["metadata"]["name"] for o in cache.list("Rollout", "cache-410"))
        assert names == ["added", "change", "keep"]
        assert cache.get("Rollout", "cache-410", "change")["metadata"]["labels"] == {"v": "2"}
        return seen, informer.lists
    seen, lists = _run(cluster, body)
    assert lists == 2
    assert sorted(seen) == [("ADDED", "added"), ("DELETED", "gone"), ("MODIFIED", "change")]


@pytest.mark.parametrize(("instance_id", "visible"), [
    (None, ["unlabelled"]),
    ("shard-a", ["shard-a"]),
], ids=["default-controller-skips-claimed", "instance-sees-only-its-own"])
def test_cache_scopes_to_namespace_and_instance_id(cluster: Cluster, instance_id: str | None,
                                                   visible: list[str]) -> None:
    namespace = f"cache-scope-{instance_id or 'none'}"

    async def body(cache: CachedStore, other: KubeStore) -> tuple[list[str], list[str]]:
        other.create(_in(namespace, rollout("unlabelled")))
        other.create(_in(namespace, rollout("shard-a", labels={INSTANCE_ID_LABEL: "shard-a"})))
        other.create(_in(f"{namespace}-elsewhere", rollout("elsewhere")))
        other.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": namespace},
                      "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
        await until(lambda: cache.peek("Service", namespace, "svc") is not None)
        await asyncio.sleep(0.3)
        names = sorted(o["metadata"]["name"] for o in cache.cached("Rollout"))
        # Outside the scope the cache answers nothing itself: the API is asked.
        far = [o["metadata"]["name"] for o in cache.list("Rollout", f"{namespace}-elsewhere")]
        return names, far
    names, far = _run(cluster, body, namespace=namespace, label_selector=instance_selector(instance_id))
    assert names == visible
    assert far == ["elsewhere"]


def _owned(kind: str, name: str, owner_kind: str, owner: str, namespace: str = "ns") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "ownerReferences": [
        {"kind": owner_kind, "name": owner, "uid": f"uid-{owner}", "controller": True}]}}


def _plain(kind: str, name: str, namespace: str = "ns") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace}}


WEB = {"kind": "Rollout", "metadata": {"name": "web", "namespace": "ns"}, "spec": {"strategy": {"canary": {
    "canaryService": "web-canary", "stableService": "web-stable",
    "trafficRouting": {"nginx": {"stableIngress": "web-ingress"}},
    "analysis": {"templates": [{"templateName": "success-rate"}]},
    "steps": [{"analysis": {"templates": [{"templateName": "global-check", "clusterScope": True}]}}]}}}}


@pytest.mark.parametrize(("kind", "obj", "rollouts", "runs"), [
    ("Rollout", _plain("Rollout", "web"), {("ns", "web")}, set()),
    ("ReplicaSet", _owned("ReplicaSet", "web-abc", "Rollout", "web"), {("ns", "web")}, set()),
    ("Pod", _owned("Pod", "web-abc-1", "ReplicaSet", "web-abc"), {("ns", "web")}, set()),
    ("AnalysisRun", _owned("AnalysisRun", "web-run", "Rollout", "web"), {("ns", "web")}, {("ns", "web-run")}),
    ("Job", _owned("Job", "web-run-job", "AnalysisRun", "web-run"), set(), {("ns", "web-run")}),
    ("Ingress", _owned("Ingress", "web-web-ingress-canary", "Rollout", "web"), {("ns", "web")}, set()),
    ("Ingress", _plain("Ingress", "web-ingress"), {("ns", "web")}, set()),
    ("Service", _plain("Service", "web-stable"), {("ns", "web")}, set()),
    ("Service", _plain("Service", "web-stable", namespace="other"), set(), set()),
    ("Service", _plain("Service", "unrelated"), set(), set()),
    ("AnalysisTemplate", _plain("AnalysisTemplate", "success-rate"), {("ns", "web")}, set()),
    ("ClusterAnalysisTemplate", _plain("ClusterAnalysisTemplate", "global-check", namespace=""),
     {("ns", "web")}, set()),
    ("AnalysisTemplate", _plain("AnalysisTemplate", "global-check"), set(), set()),
], ids=["rollout-itself", "owned-replicaset", "pod-via-replicaset", "analysisrun-rollout-and-run",
        "job-to-its-run", "canary-ingress-owned", "stable-ingress-named", "service-named",
        "same-name-other-namespace", "unrelated-service", "template-used", "cluster-template-used",
        "cluster-scoped-name-not-namespaced"])
def test_change_routes_to_the_owning_rollout_key(kind: str, obj: dict[str, Any], rollouts: set[Any],
                                                 runs: set[Any]) -> None:
    class Cache:
        def peek(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            return _owned("ReplicaSet", "web-abc", "Rollout", "web") if (kind, name) == ("ReplicaSet", "web-abc") \
                else None
    index = RolloutIndex()
    index.update(WEB)
    router = Router(Cache(), index)  # type: ignore[arg-type]
    assert router.keys(kind, obj) == (rollouts, runs)


def test_cache_routes_a_live_replicaset_change_to_its_rollout_key(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str]]:
        owner = other.create(_in("cache-route", rollout("routed")))
        index = RolloutIndex()
        router = Router(cache, index)
        keys: list[tuple[str, str]] = []
        cache.subscribe(lambda kind, event, obj: keys.extend(router.keys(kind, obj)[0])
                        if kind in ("ReplicaSet", "Pod") else None)
        other.create({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
            "name": "routed-abc", "namespace": "cache-route", "labels": {"app": "routed"},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "routed",
                                 "uid": owner["metadata"]["uid"], "controller": True}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "routed"}},
                     "template": {"metadata": {"labels": {"app": "routed"}},
                                  "spec": {"containers": [{"name": "app", "image": "demo:1"}]}}}})
        await until(lambda: bool(keys))
        return keys
    assert _run(cluster, body) == [("cache-route", "routed")]


def test_cache_correlates_repeated_events_in_memory_without_listing(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> tuple[list[str], list[tuple[str, int]]]:
        sent: list[str] = []
        real = cache.store.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(f"{method} {path.rsplit('/', 2)[-2] if method != 'POST' else path.rsplit('/', 1)[-1]}")
            return real(method, path, *args, **kwargs)
        cache.store.request = request  # type: ignore[method-assign]
        involved = {"kind": "Rollout", "namespace": "cache-events", "name": "web", "uid": "u-1",
                    "apiVersion": "argoproj.io/v1alpha1"}
        cache.record_event(involved, "Normal", "RolloutPaused", "paused at step 1")
        cache.record_event(involved, "Normal", "RolloutPaused", "paused at step 1")
        cache.record_event(involved, "Normal", "RolloutResumed", "resumed")
        events = other.list("Event", "cache-events")
        return sent, sorted((e["reason"], e["count"]) for e in events)
    sent, events = _run(cluster, body)
    assert events == [("RolloutPaused", 2), ("RolloutResumed", 1)]
    assert sent == ["POST events", "PATCH events", "POST events"]  # no list, no update


def test_cache_records_release_history_reading_the_owner_rollout_from_the_cache(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore) -> tuple[list[str], dict[str, Any]]:
        other.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cache-history"}})
        owner = other.create(_in("cache-history", rollout("web")))
        await until(lambda: cache.peek("Rollout", "cache-history", "web") is not None)
        sent: list[str] = []
        real = cache.store.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(f"{method} {path.split('/namespaces/cache-history/')[-1]}")
            return real(method, path, *args, **kwargs)
        cache.store.request = request  # type: ignore[method-assign]
        cache.record_revision("cache-history", "web", 1, "abc", {"app": "demo:1"}, {}, "current")
        cache.set_revision_outcome("cache-history", "web", 1, "promoted")
        history = other.get("ConfigMap", "cache-history", "web.rollout-history")
        return sent, {"owner": owner["metadata"]["uid"], "history": history}
    sent, found = _run(cluster, body)
    # The history ConfigMap is read and written through the API; its owner, the Rollout, comes from the cache.
    assert not any("rollouts/" in call for call in sent), sent
    assert [ref["uid"] for ref in found["history"]["metadata"]["ownerReferences"]] == [found["owner"]]


def test_an_event_of_one_decision_is_recorded_once_by_a_restarted_operator(cluster: Cluster) -> None:
    # The operator died after recording a decision's event and before storing its status: the decision is taken
    # again from the same Rollout version by a new operator (no memory of the first event).
    involved = {"kind": "Rollout", "namespace": "cache-decision", "name": "web", "uid": "u-2",
                "apiVersion": "argoproj.io/v1alpha1", "resourceVersion": "41"}

    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, int]]:
        cache.record_event(involved, "Normal", "RolloutCompleted", "Rollout completed update to revision 2")
        return []
    _run(cluster, body)
    _run(cluster, body)  # a second operator: a fresh cache and event memory

    async def later(cache: CachedStore, other: KubeStore) -> list[tuple[str, int]]:
        # The next decision (from the version its status write made) is a new event.
        cache.record_event({**involved, "resourceVersion": "43"}, "Normal", "RolloutPaused", "paused at step 1")
        return sorted((e["reason"], e["count"]) for e in other.list("Event", "cache-decision"))
    assert _run(cluster, later) == [("RolloutCompleted", 1), ("RolloutPaused", 1)]
