"""CachedStore's cache of release-history ConfigMaps, against the real local API server: recording a
revision reads the ConfigMap from memory (one write per record), a ConfigMap changed behind the cache's
back costs one re-read on the 409 and the change is kept, one made without the history label is found on
AlreadyExists and labelled, and ConfigMaps that are not history are still read through the API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rollouts.kube.cache import CachedStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.store import history
from rollouts.store.protocol import NotFound
from tests.kube.conftest import Cluster, rollout, until


def _run(cluster: Cluster, body: Callable[[CachedStore, KubeStore, list[str]], Awaitable[Any]]) -> Any:
    """body(cache, other, calls): `calls` lists "METHOD resource" of every API call the cache's store makes."""
    async def main() -> Any:
        config = load_config(kubeconfig=cluster.kubeconfig)
        cache = CachedStore.connect(KubeStore(config))
        other = KubeStore(config)
        calls: list[str] = []
        real = cache.store.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            parts = path.strip("/").split("/")
            resource = parts[parts.index("namespaces") + 2] if "namespaces" in parts else parts[-1]
            calls.append(f"{method} {resource}")
            return real(method, path, *args, **kwargs)

        cache.store.request = request  # type: ignore[method-assign]
        try:
            await cache.start()
            await cache.wait_synced(10)
            return await asyncio.wait_for(body(cache, other, calls), 30)
        finally:
            await cache.aclose()
            other.close()
    return asyncio.run(main())



def _ns(namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"]["namespace"] = namespace
    return obj


TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "web:1"}]}}


def test_recording_history_reads_the_config_map_from_the_cache(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore, calls: list[str]) -> None:
        other.create(_ns("hist-cached", rollout("web")))
        await until(lambda: cache.peek("Rollout", "hist-cached", "web") is not None)
        calls.clear()
        cache.record_revision("hist-cached", "web", 1, "abc", {"app": "web:1"}, TEMPLATE)
        cache.set_revision_outcome("hist-cached", "web", 1, "promoted", "done")
        cache.record_revision("hist-cached", "web", 2, "def", {"app": "web:2"}, TEMPLATE)
        # One create, then one update each: no read of the ConfigMap, no read of its owner.
        assert calls == ["POST configmaps", "PUT configmaps", "PUT configmaps"], calls
        stored = other.get("ConfigMap", "hist-cached", history.config_map_name("web"))
        assert stored["metadata"]["labels"] == {history.HISTORY_LABEL: "web"}
        assert stored["metadata"]["ownerReferences"][0]["name"] == "web"
        assert [(r.revision, r.outcome) for r in other.list_revisions("hist-cached", "web")] == [
            (1, "promoted"), (2, "current")]
    _run(cluster, body)


def test_a_history_change_behind_the_cache_costs_one_reread_and_is_kept(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore, calls: list[str]) -> None:
        other.create(_ns("hist-stale", rollout("web")))
        await until(lambda: cache.peek("Rollout", "hist-stale", "web") is not None)
        cache.record_revision("hist-stale", "web", 1, "abc", {"app": "web:1"}, TEMPLATE)
        await cache.stop()  # the cache no longer hears of changes: the next write works on a stale copy
        history.set_outcome(other, "hist-stale", "web", 1, "aborted", "by hand", "2026-01-01T00:00:00Z")
        calls.clear()
        cache.record_revision("hist-stale", "web", 2, "def", {"app": "web:2"}, TEMPLATE)
        assert calls == ["PUT configmaps", "GET configmaps", "PUT configmaps"], calls
        assert [(r.revision, r.outcome, r.cause) for r in other.list_revisions("hist-stale", "web")] == [
            (1, "aborted", "by hand"), (2, "current", "")]
    _run(cluster, body)


def test_an_unlabelled_history_config_map_is_found_and_labelled(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore, calls: list[str]) -> None:
        name = history.config_map_name("web")
        other.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "hist-bare"},
                      "data": history.encode({1: {"revision": 1, "pod_hash": "old", "outcome": "promoted"}})})
        calls.clear()
        cache.record_revision("hist-bare", "web", 2, "def", {"app": "web:2"}, TEMPLATE)
        assert calls[:2] == ["POST configmaps", "GET configmaps"], calls
        stored = other.get("ConfigMap", "hist-bare", name)
        assert stored["metadata"]["labels"] == {history.HISTORY_LABEL: "web"}
        assert [r.revision for r in other.list_revisions("hist-bare", "web")] == [1, 2]
        # Labelled now: the cache hears of it, and the next record is one write.
        await until(lambda: cache.history_informer is not None
                    and cache.history_informer.get("hist-bare", name) is not None)
        calls.clear()
        cache.set_revision_outcome("hist-bare", "web", 2, "promoted", "")
        assert calls == ["PUT configmaps"], calls
    _run(cluster, body)


def test_other_config_maps_are_read_through_the_api(cluster: Cluster) -> None:
    async def body(cache: CachedStore, other: KubeStore, calls: list[str]) -> None:
        other.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "argo-rollouts-notification-configmap", "namespace": "hist-other"},
                      "data": {"service.webhook.x": "url: http://127.0.0.1:1"}})
        calls.clear()
        found = cache.get("ConfigMap", "hist-other", "argo-rollouts-notification-configmap")
        assert found["data"] == {"service.webhook.x": "url: http://127.0.0.1:1"}
        assert calls == ["GET configmaps"]
        with pytest.raises(NotFound):
            cache.get("ConfigMap", "hist-other", "absent")
    _run(cluster, body)
