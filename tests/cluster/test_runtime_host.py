"""The runtime inside the cluster process (RuntimeHost): a failing pass is logged and retried, never fatal;
a store change wakes a pass without waiting for the periodic one; close() ends its thread."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.host import SYNC_PERIOD, RuntimeHost
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.cluster.store import SQLiteStore
from rollouts.store.home import database_path
from tests.runtime.test_max_pods import _replica_set


class FlakyStore(SQLiteStore):
    """The first `failures` lists of ReplicaSets that hold `name` fail, as a store that is briefly unreadable
    would.

    Why only the lists holding `name`, not the next lists read: start() returns before the runtime's first
    pass, and on a loaded machine that pass may still be reading when the test arms the failures; its read
    then began before the arming, saw the new ReplicaSet and wrote its status, so the status came without
    any failed pass. Failing on what the read returns makes every pass that could write the status fail
    first, whatever the timing."""

    def __init__(self, path: Path, failures: int, name: str) -> None:
        super().__init__(path)
        self.failures = failures
        self.name = name

    def list(self, kind: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        items = super().list(kind, *args, **kwargs)
        if kind == "ReplicaSet" and self.failures > 0 and any(i["metadata"]["name"] == self.name for i in items):
            self.failures -= 1
            raise RuntimeError("database is locked")
        return items


def _status_written(store: SQLiteStore, name: str, deadline: float) -> dict[str, Any] | None:
    while time.monotonic() < deadline:
        status = store.get("ReplicaSet", "default", name).get("status") or {}
        if "replicas" in status:
            return status
        time.sleep(0.02)
    return None


def test_runtime_host_failing_pass_is_retried_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(database_path(tmp_path), failures=2, name="idle")
    host = RuntimeHost(store, tmp_path, RuntimeOptions())
    host.start()
    try:
        store.create(_replica_set("idle", 0))  # the first two passes that read it fail
        status = _status_written(store, "idle", time.monotonic() + 10)
        assert status is not None and status["replicas"] == 0
        assert host.failures == 2 and host.syncs >= 1
        assert "sync failed; retrying" in caplog.text
    finally:
        host.close()
    assert host._thread is not None and not host._thread.is_alive()


def test_runtime_host_store_change_wakes_a_pass_before_the_periodic_one(tmp_path: Path) -> None:
    store = SQLiteStore(database_path(tmp_path))
    host = RuntimeHost(store, tmp_path, RuntimeOptions())
    host.start()
    try:
        time.sleep(0.1)  # let the first passes run
        best = None
        for attempt in range(3):  # the minimum of a few tries: CPU contention only ever adds delay
            started = time.monotonic()
            store.create(_replica_set(f"new{attempt}", 0))
            assert _status_written(store, f"new{attempt}", started + 10) is not None
            took = time.monotonic() - started
            best = took if best is None else min(best, took)
        assert best is not None and best < SYNC_PERIOD
    finally:
        host.close()
