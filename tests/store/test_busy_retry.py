"""Locked writes: a short SQLite busy timeout per attempt and a retry with backoff, so a writer waiting
for another process's lock neither fails early, nor holds up this process's readers, nor waits forever."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from rollouts.cluster.store import SQLiteStore

CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
          "data": {"a": "1"}}


class ForeignWriter:
    """Another process's connection holding the write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


@pytest.mark.parametrize("hold", [0.3, 1.0], ids=["short-hold", "long-hold"])
def test_sqlite_busy_write_retries_until_lock_released(tmp_path: Path, hold: float) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path, busy_timeout=10.0)
    store.create(CONFIG)
    writer = ForeignWriter(path)
    timer = threading.Timer(hold, writer.release)
    timer.start()
    started = time.monotonic()
    try:
        store.patch("ConfigMap", "default", "cfg", {"data": {"a": "2"}})
        waited = time.monotonic() - started
        assert store.get("ConfigMap", "default", "cfg")["data"] == {"a": "2"}
    finally:
        timer.join()
        store.close()
    assert hold * 0.8 <= waited < hold + 2.0


def test_sqlite_busy_waiting_writer_does_not_stall_readers_in_process(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path, busy_timeout=10.0)
    store.create(CONFIG)
    writer = ForeignWriter(path)
    blocked = threading.Thread(target=store.patch, args=("ConfigMap", "default", "cfg", {"data": {"a": "3"}}))
    blocked.start()
    try:
        time.sleep(0.1)  # let the writer start waiting for the lock
        read_times = []
        for _ in range(5):
            started = time.monotonic()
            store.get("ConfigMap", "default", "cfg")
            read_times.append(time.monotonic() - started)
        assert max(read_times) < 0.5, read_times
    finally:
        writer.release()
        blocked.join(timeout=10)
        store.close()
    assert not blocked.is_alive()


def test_sqlite_busy_gives_up_after_busy_timeout_naming_the_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path, busy_timeout=0.5)
    store.create(CONFIG)
    writer = ForeignWriter(path)
    started = time.monotonic()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked by another writer") as raised:
            store.patch("ConfigMap", "default", "cfg", {"data": {"a": "4"}})
    finally:
        writer.release()
        store.close()
    assert str(path) in str(raised.value)
    assert time.monotonic() - started < 3.0
