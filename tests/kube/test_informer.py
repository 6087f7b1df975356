"""Informers against the real local API server: sync, handlers, resume, relist after 410, server restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from lightkube import AsyncClient

from rollouts.cluster.store import SQLiteStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.kube.informer import Informer
from rollouts.store.home import database_path
from tests.cluster.conftest import start_cluster
from tests.kube.conftest import FEED_LIMIT, Cluster, serve_on, until


def _cm(name: str, namespace: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                 "labels": {"informer": "yes"}},
            "data": data or {"k": "v"}}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # (handler, name, data k)

    def add(self, obj: dict[str, Any]) -> None:
        self.seen.append(("add", obj["metadata"]["name"], (obj.get("data") or {}).get("k", "")))

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.seen.append(("update", new["metadata"]["name"], (new.get("data") or {}).get("k", "")))

    def delete(self, obj: dict[str, Any]) -> None:
        self.seen.append(("delete", obj["metadata"]["name"], ""))

    def handlers(self) -> dict[str, Any]:
        return {"on_add": self.add, "on_update": self.update, "on_delete": self.delete}



def _run(cluster: Cluster, body: Callable[[AsyncClient, KubeStore], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        config = load_config(kubeconfig=cluster.kubeconfig)
        client = AsyncClient(config=config.to_lightkube())
        store = KubeStore(config)
        try:
            return await asyncio.wait_for(body(client, store), 30)
        finally:
            await client.close()
            store.close()
    return asyncio.run(main())


def test_informer_lists_then_watches_with_handlers(cluster: Cluster) -> None:
    async def body(client: AsyncClient, store: KubeStore) -> tuple[Recorder, Informer]:
        await asyncio.to_thread(store.create, _cm("i-before", "inf-a"))
        seen = Recorder()
        informer = Informer(client, "ConfigMap", namespace="inf-a", **seen.handlers())
        informer.start()
        await informer.wait_synced(10)
        assert informer.has_synced and informer.get("inf-a", "i-before") is not None
        await asyncio.to_thread(store.create, _cm("i-new", "inf-a"))
        await asyncio.to_thread(store.patch, "ConfigMap", "inf-a", "i-new", {"data": {"k": "2"}})
        await asyncio.to_thread(store.delete, "ConfigMap", "inf-a", "i-before")
        await asyncio.to_thread(store.create, _cm("i-elsewhere", "inf-b"))  # another namespace: not seen
        await until(lambda: len(seen.seen) >= 4)
        await asyncio.sleep(0.2)
        await informer.stop()
        return seen, informer
    seen, informer = _run(cluster, body)
    assert seen.seen == [("add", "i-before", "v"), ("add", "i-new", "v"), ("update", "i-new", "2"),
                         ("delete", "i-before", "")]
    assert [o["metadata"]["name"] for o in informer.list()] == ["i-new"]
    assert informer.lists == 1 and informer.list()[0]["kind"] == "ConfigMap"


def test_informer_resumes_after_watch_timeout_without_relist(cluster: Cluster) -> None:
    async def body(client: AsyncClient, store: KubeStore) -> tuple[Recorder, Informer]:
        seen = Recorder()
        informer = Informer(client, "ConfigMap", namespace="inf-c", server_timeout=1, **seen.handlers())
        informer.start()
        await informer.wait_synced(10)
        for n in range(2):
            await asyncio.to_thread(store.create, _cm(f"i-r{n}", "inf-c"))
            watches = informer.watches
            # the server ends the watch (timeoutSeconds=1) between writes; lightkube's driver reopens it
            await asyncio.sleep(1.1)
            assert informer.watches == watches  # reopened from the last version, not by a new list+watch
        await until(lambda: len(seen.seen) >= 2)
        await informer.stop()
        return seen, informer
    seen, informer = _run(cluster, body)
    assert seen.seen == [("add", f"i-r{n}", "v") for n in range(2)]  # nothing missed or repeated
    assert informer.lists == 1


def test_informer_relists_after_410_and_reports_the_difference(cluster: Cluster) -> None:
    async def body(client: AsyncClient, store: KubeStore) -> tuple[Recorder, Informer]:
        for name in ("i-keep", "i-change", "i-gone"):
            await asyncio.to_thread(store.create, _cm(name, "inf-d"))
        seen = Recorder()
        informer = Informer(client, "ConfigMap", namespace="inf-d", **seen.handlers())
        informer.start()
        await informer.wait_synced(10)
        await informer.stop()  # cache and resume point kept
        await asyncio.to_thread(store.patch, "ConfigMap", "inf-d", "i-change", {"data": {"k": "2"}})
        await asyncio.to_thread(store.delete, "ConfigMap", "inf-d", "i-gone")
        for n in range(FEED_LIMIT + 5):  # compact the feed past the resume point
            await asyncio.to_thread(store.create, _cm(f"i-filler-{n}", "inf-other"))
        await asyncio.to_thread(store.create, _cm("i-added", "inf-d"))
        seen.seen.clear()
        informer.start()
        await until(lambda: informer.lists == 2 and informer.get("inf-d", "i-added") is not None)
        await informer.stop()
        return seen, informer
    seen, informer = _run(cluster, body)
    assert sorted(seen.seen) == [("add", "i-added", "v"), ("delete", "i-gone", ""), ("update", "i-change", "2")]
    assert sorted(n for _, n in informer.cache) == ["i-added", "i-change", "i-keep"]


def test_informer_receives_bookmarks(cluster: Cluster) -> None:
    async def body(client: AsyncClient, store: KubeStore) -> Informer:
        informer = Informer(client, "ConfigMap", namespace="inf-e")
        informer.start()
        await informer.wait_synced(10)
        await asyncio.to_thread(store.create, _cm("i-bm", "inf-other-2"))  # a change it does not see
        await until(lambda: informer.bookmarks > 0)  # the test server sends them every 0.3 s
        await informer.stop()
        return informer
    informer = _run(cluster, body)
    assert informer.resource_version and int(informer.resource_version) > 0


@pytest.fixture
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, list[Any]]]:
    found, stop = start_cluster(tmp_path_factory.mktemp("restart-home"), feed_limit=FEED_LIMIT)
    stops = [stop]
    yield found, stops
    stops[-1]()


def test_informer_resumes_after_the_server_restarts(restartable: tuple[Cluster, list[Any]]) -> None:
    cluster, stops = restartable
    port = urlsplit(cluster.url).port
    assert port is not None

    async def body(client: AsyncClient, store: KubeStore) -> tuple[Recorder, Informer, list[str]]:
        seen = Recorder()
        errors: list[str] = []
        informer = Informer(client, "ConfigMap", namespace="inf-f", max_backoff=0.3,
                            on_error=lambda e: errors.append(type(e).__name__), **seen.handlers())
        informer.start()
        await informer.wait_synced(10)
        await asyncio.to_thread(stops.pop())  # the API server goes away
        cluster.store = None  # type: ignore[assignment]
        await until(lambda: bool(errors))  # the informer noticed and is retrying
        offline = SQLiteStore(database_path(cluster.home))
        offline.create(_cm("i-during", "inf-f"))  # written while no server runs: seen on resume
        offline.close()
        stops.append(await asyncio.to_thread(serve_on, cluster.home, port))
        await asyncio.to_thread(store.create, _cm("i-after", "inf-f"))
        await until(lambda: len(seen.seen) >= 2)
        await informer.stop()
        return seen, informer, errors
    seen, informer, errors = _run(cluster, body)
    assert seen.seen == [("add", "i-during", "v"), ("add", "i-after", "v")]
    assert informer.lists == 1 and errors  # resumed from its resourceVersion, no relist


def test_informer_cache_keeps_fields_lightkube_models_do_not_know(cluster: Cluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "i-pod", "namespace": "inf-g",
                                                           "annotations": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "i:1"}], "futureField": {"x": 1}}}

    async def body(client: AsyncClient, store: KubeStore) -> dict[str, Any] | None:
        await asyncio.to_thread(store.create, pod)
        informer = Informer(client, "Pod", namespace="inf-g")
        informer.start()
        await informer.wait_synced(10)
        await informer.stop()
        return informer.get("inf-g", "i-pod")
    cached = _run(cluster, body)
    assert cached is not None and cached["spec"]["futureField"] == {"x": 1}


def test_raw_resources_do_not_change_how_lightkube_loads_builtin_kinds() -> None:
    from lightkube import codecs
    from lightkube.resources.core_v1 import Pod

    from rollouts.kube.resources import RAW, Rollout, resource_for

    assert RAW["Pod"] is not Pod and resource_for("Pod") is Pod
    assert type(codecs.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})) is Pod
    loaded = codecs.from_dict({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "x"}})
    assert type(loaded) is Rollout  # Argo's kinds load from YAML through lightkube's codecs
    with pytest.raises(KeyError, match="known kinds"):
        resource_for("Widget")
