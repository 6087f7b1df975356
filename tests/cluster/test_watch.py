"""Watch streams over real HTTP: initial ADDED events, resume from a resourceVersion, BOOKMARK events,
timeoutSeconds, selectors, Table watches, and 410 Gone once the store has compacted the history."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import ConfigMap

from tests.cluster.conftest import Cluster, start_cluster

FEED_LIMIT = 40
CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module", params=[4096, 3], ids=["shared-feed", "small-memory"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # A short retained history, so that compaction (and 410) is cheap to reach; with a tiny shared
    # memory, watches also take the path that reads the store directly.
    found, stop = start_cluster(tmp_path_factory.mktemp("watch-home"), watch_memory=request.param,
                                feed_limit=FEED_LIMIT)
    yield found
    stop()


def _events(cluster: Cluster, params: dict[str, str], *, count: int, path: str = CM,
            headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The first `count` events of a watch (or all of them if the server ends it first)."""
    seen: list[dict[str, Any]] = []
    with cluster.http() as http, http.stream("GET", path, params={"watch": "1", **params},
                                             headers=headers or {}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line:
                seen.append(json.loads(line))
            if len(seen) >= count:
                break
    return seen


def _create(cluster: Cluster, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    with cluster.http() as http:
        answer = http.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": name, "labels": labels or {}}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_watch_without_version_starts_with_added_events(cluster: Cluster) -> None:
    _create(cluster, "w-initial", {"w": "initial"})
    events = _events(cluster, {"labelSelector": "w=initial", "timeoutSeconds": "1"}, count=5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w-initial")]


def test_watch_timeout_seconds_ends_the_stream(cluster: Cluster) -> None:
    started = time.monotonic()
    events = _events(cluster, {"labelSelector": "w=none", "timeoutSeconds": "1"}, count=100)
    assert events == [] and time.monotonic() - started < 5


def test_watch_bookmarks_carry_the_current_version(cluster: Cluster) -> None:
    created = _create(cluster, "w-bookmark", {"w": "bookmark"})
    _create(cluster, "w-other")  # moves the version without matching the watch
    events = _events(cluster, {"labelSelector": "w=bookmark", "allowWatchBookmarks": "true",
                               "resourceVersion": created["metadata"]["resourceVersion"], "timeoutSeconds": "5"},
                     count=1)
    assert events[0]["type"] == "BOOKMARK"
    assert events[0]["object"]["kind"] == "ConfigMap"
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_watch_as_table_for_kubectl_get_w(cluster: Cluster) -> None:
    created = _create(cluster, "w-table-0")
    _create(cluster, "w-table-1")
    events = _events(cluster, {"resourceVersion": created["metadata"]["resourceVersion"], "timeoutSeconds": "2"},
                     count=1, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["kind"] == "Table"
    assert events[0]["object"]["rows"][0]["cells"][0] == "w-table-1"


def test_watch_410_gone_after_compaction(cluster: Cluster) -> None:
    first = _create(cluster, "w-old")
    for n in range(FEED_LIMIT + 5):
        _create(cluster, f"w-compact-{n}")
    events = _events(cluster, {"resourceVersion": first["metadata"]["resourceVersion"]}, count=1)
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    client = Client(config=KubeConfig.from_file(cluster.kubeconfig))
    with pytest.raises(ApiError) as caught:
        next(iter(client.watch(ConfigMap, namespace="default",
                               resource_version=first["metadata"]["resourceVersion"])))
    assert caught.value.status.code == 410
    client.close()


def test_watch_rejects_a_malformed_version(cluster: Cluster) -> None:
    with cluster.http() as http:
        answer = http.get(CM, params={"watch": "1", "resourceVersion": "abc"})
    assert (answer.status_code, answer.json()["reason"]) == (400, "BadRequest")


def test_selective_watch_reports_objects_entering_and_leaving_the_selection(cluster: Cluster) -> None:
    start = _create(cluster, "w-moving", {"w": "in"})["metadata"]["resourceVersion"]
    merge = {"Content-Type": "application/merge-patch+json"}
    with cluster.http() as http:
        for patch in ({"metadata": {"labels": {"w": "out"}}},  # leaves: DELETED
                      {"data": {"a": "1"}},                    # stays out: nothing
                      {"metadata": {"labels": {"w": "in"}}},   # enters: ADDED
                      {"data": {"a": "2"}}):                   # stays in: MODIFIED
            assert http.patch(f"{CM}/w-moving", json=patch, headers=merge).status_code == 200
    events = _events(cluster, {"labelSelector": "w=in", "resourceVersion": start, "timeoutSeconds": "2"}, count=3)
    assert [e["type"] for e in events] == ["DELETED", "ADDED", "MODIFIED"]
    assert events[0]["object"]["metadata"]["labels"] == {"w": "out"}


def test_watch_fan_out_delivers_every_change_to_every_watcher(cluster: Cluster) -> None:
    import threading

    start = _create(cluster, "w-fan-start")["metadata"]["resourceVersion"]
    results: list[list[str]] = []

    def watch() -> None:
        events = _events(cluster, {"labelSelector": "w=fan", "resourceVersion": start, "timeoutSeconds": "10"},
                         count=8)
        results.append([e["object"]["metadata"]["name"] for e in events])

    watchers = [threading.Thread(target=watch) for _ in range(10)]
    for thread in watchers:
        thread.start()
    for n in range(8):
        _create(cluster, f"w-fan-{n}", {"w": "fan"})
    for thread in watchers:
        thread.join(30)
    assert results == [[f"w-fan-{n}" for n in range(8)]] * 10


def test_watch_sees_writes_of_another_store_connection(cluster: Cluster) -> None:
    """The controller and runtime still write the SQLite file directly: their changes reach watchers too."""
    from rollouts.cluster.store import SQLiteStore
    from rollouts.store.home import database_path

    start = _create(cluster, "w-foreign-start")["metadata"]["resourceVersion"]
    other = SQLiteStore(database_path(cluster.home))  # its own connection, no in-process wake-up
    try:
        other.create({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "w-foreign", "labels": {"w": "foreign"}}})
    finally:
        other.close()
    events = _events(cluster, {"labelSelector": "w=foreign", "resourceVersion": start, "timeoutSeconds": "5"},
                     count=1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w-foreign")]
