"""state.db and its -wal/-shm files are private (0600), even in a home folder that is 0755 and under a
permissive umask: the store holds Secrets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rollouts.cluster.store import SQLiteStore

CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"}}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("existing_mode", [None, 0o644], ids=["new-file", "old-0644-file"])
def test_state_db_created_0600_in_existing_0755_home(tmp_path: Path, permissive_umask: None,
                                                     existing_mode: int | None) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    path = home / "state.db"
    if existing_mode is not None:
        SQLiteStore(path).close()
        os.chmod(path, existing_mode)
    with SQLiteStore(path) as store:
        store.create(CONFIG)  # a write, so the -wal and -shm files exist
        files = [path, home / "state.db-wal", home / "state.db-shm"]
        assert all(f.exists() for f in files)
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}
