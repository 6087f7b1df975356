"""Several processes on one store: concurrent increments, SIGKILL mid-write, and the controller lock."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.store.home import database_path, rollouts_home
from rollouts.store.lock import HomeLock, LockHeld

WORKER = str(Path(__file__).with_name("store_worker.py"))


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stderr = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"worker exited early (rc={proc.wait()}): {stderr}")
    if time.monotonic() > deadline:
        pytest.fail("worker too slow")
    return line.strip()


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.integration
def test_two_processes_increment_without_lost_updates(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with SQLiteStore(db) as store:
        store.create(
            {"apiVersion": "test/v1", "kind": "Counter", "metadata": {"name": "c"}, "spec": {"n": 0}}
        )
    go = tmp_path / "go"
    workers = [_spawn("increment", str(db), "200", str(go)) for _ in range(2)]
    go.touch()
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.startswith("conflicts ")
    with SQLiteStore(db) as store:
        counter = store.get("Counter", "default", "c")
        assert counter["spec"]["n"] == 400
        assert counter["metadata"]["generation"] == 401
        assert len(store.watch(0, kinds={"Counter"}, timeout=0, limit=1000)) == 401


@pytest.mark.integration
def test_sigkill_mid_write_loses_no_committed_object(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStore(db).close()
    writer = _spawn("write", str(db))
    deadline = time.monotonic() + 60
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < 150:
            acknowledged.append(int(_read_line(writer, deadline)))
    finally:
        _kill(writer)
    # The writer may have committed a few more before dying; it must not have lost any it announced.
    with SQLiteStore(db) as store:
        names = {o["metadata"]["name"] for o in store.list("ConfigMap")}
        assert {f"cm-{i}" for i in acknowledged} <= names
        for i in (0, acknowledged[-1]):
            assert store.get("ConfigMap", "default", f"cm-{i}")["data"]["i"] == str(i)
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}, "data": {}})
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


@pytest.mark.integration
def test_home_lock_names_holder_and_frees_after_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    holder = _spawn("lock", str(home))
    try:
        assert _read_line(holder, time.monotonic() + 30) == "locked"
        with pytest.raises(LockHeld) as info:
            HomeLock(home).acquire()
        assert info.value.pid == holder.pid
        assert str(info.value) == f"another controller (pid {holder.pid}) is running on {home}; stop it first"
    finally:
        _kill(holder)
    with HomeLock(home) as lock:
        assert lock.held
        assert (home / "controller.lock").read_text().strip() == str(os.getpid())
    assert not lock.held


def test_home_lock_release_and_reacquire(tmp_path: Path) -> None:
    lock = HomeLock(tmp_path).acquire()
    with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
        HomeLock(tmp_path).acquire()
    lock.release()
    lock.release()  # idempotent
    with HomeLock(tmp_path):
        pass


def test_rollouts_home_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("ROLLOUTS_HOME", raising=False)
    default = rollouts_home(None)
    assert default == tmp_path / "user" / ".rollouts"
    assert stat.S_IMODE(default.stat().st_mode) == 0o700

    monkeypatch.setenv("ROLLOUTS_HOME", str(tmp_path / "env"))
    assert rollouts_home(None) == tmp_path / "env"
    assert rollouts_home(str(tmp_path / "flag")) == tmp_path / "flag"
    assert stat.S_IMODE((tmp_path / "flag").stat().st_mode) == 0o700
    assert database_path(tmp_path / "flag") == tmp_path / "flag" / "state.db"

    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        rollouts_home(str(tmp_path / "file"))


def _create_in_child(store: SQLiteStore) -> None:
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-child"}, "data": {}})


def test_store_inherited_over_fork_reconnects(tmp_path: Path) -> None:
    import multiprocessing

    store = SQLiteStore(tmp_path / "state.db")
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-parent"}, "data": {}})
    child = multiprocessing.get_context("fork").Process(target=_create_in_child, args=(store,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert [o["metadata"]["name"] for o in store.list("ConfigMap")] == ["from-child", "from-parent"]
    store.close()
