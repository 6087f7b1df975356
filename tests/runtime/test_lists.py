"""An idle local cluster's passes read and write nothing: lists are re-read only after the change feed
reports their kind, and PodSync skips a pass whose lists and pods are those of the last one."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.lists import KindLists
from rollouts.runtime.local.pods import PodSync
from tests.runtime.test_max_pods import FakeSupervisor, _replica_set


class CountingStore(SQLiteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    def list(self, kind: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append(f"list {kind}")
        return super().list(kind, *args, **kwargs)

    def patch(self, kind: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append(f"patch {kind}")
        return super().patch(kind, *args, **kwargs)

    def create(self, obj: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append(f"create {obj['kind']}")
        return super().create(obj, *args, **kwargs)


def test_kind_lists_reread_only_after_their_kind_changed(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.db")
    lists = KindLists(store)
    lists.list("Pod")
    lists.list("Pod")
    assert store.calls == ["list Pod", "list Pod"]  # not following a feed: always read
    store.calls.clear()
    lists.follow()
    first = lists.list("Pod")
    assert lists.list("Pod") is first and lists.list("Service") == []
    lists.changed({"Service"})
    assert lists.list("Pod") is first
    lists.list("Service")
    assert store.calls == ["list Pod", "list Service", "list Service"]
    lists.changed(None)  # the feed was compacted away: everything is read again
    second = lists.list("Pod")
    assert second is not first
    lists.changed({"Pod"})
    failing = store.list
    store.list = lambda kind, *a, **k: (_ for _ in ()).throw(RuntimeError("database is locked"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        lists.list("Pod")
    store.list = failing  # type: ignore[method-assign]
    assert lists.list("Pod") is not second  # the failed read is tried again, not served from the cache


def test_pod_sync_idle_pass_reads_and_writes_nothing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.db")
    for name, replicas in (("a", 2), ("b", 0)):
        store.create(_replica_set(name, replicas))
    supervisor = FakeSupervisor()
    lists = KindLists(store)
    lists.follow()
    sync = PodSync(store, supervisor, lists=lists)  # type: ignore[arg-type]

    async def settle() -> list[str]:
        """Passes as the cluster runs them (its own writes reported back) until one changes nothing."""
        for _ in range(5):
            since = store.current_version()
            store.calls.clear()
            await sync.sync()
            lists.changed({c.kind for c in store.watch(since, timeout=0)})
            if not store.calls:
                return []
        return store.calls

    async def scenario() -> tuple[list[str], list[str]]:
        assert await settle() == []
        idle: list[str] = []
        for _ in range(3):
            store.calls.clear()
            await sync.sync()
            idle += store.calls
        # A pod turning unready is a change the pass acts on: the ReplicaSet's status is written.
        name = next(iter(supervisor.states))
        supervisor.states[name] = dataclasses.replace(supervisor.states[name], ready=False)
        store.calls.clear()
        await sync.sync()
        return idle, store.calls

    idle, after_change = asyncio.run(scenario())
    assert supervisor.started == 2
    assert idle == []
    assert "patch ReplicaSet" in after_change
    assert store.get("ReplicaSet", "default", "a")["status"]["readyReplicas"] == 1
