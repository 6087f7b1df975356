"""The store full (SQLite's max_page_count on the store's own connection: unprivileged and deterministic)
and the store locked (a second connection holding BEGIN EXCLUSIVE): the store reports the cause, the API
answers a Kubernetes Status naming it (500 InternalError / 504 Timeout, as kube-apiserver answers etcd
failures), nothing is half-written, and writes succeed again once space or the lock returns."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.store.home import database_path
from tests.cluster.conftest import Cluster, start_cluster

UNLIMITED_PAGES = 1073741823


def config_map(name: str, size: int = 3000) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"payload": "x" * size}}


def fill(conn: sqlite3.Connection, spare_pages: int = 12) -> None:
    """Leave the database `spare_pages` pages to grow into (max_page_count is per connection)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def check_intact(path: Path) -> list[int]:
    """integrity_check ok, every stored object and feed entry parses, resourceVersions unique and in feed
    order; returns the stored objects' resourceVersions."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rvs = []
        for rv, body in conn.execute("SELECT rv, body FROM objects"):
            obj = json.loads(body)
            assert obj["metadata"]["resourceVersion"] == str(rv), obj["metadata"]
            rvs.append(rv)
        feed = [rv for (rv,) in conn.execute("SELECT rv FROM changes ORDER BY rowid")]
        assert feed == sorted(set(feed)), "feed resourceVersions not strictly increasing"
        for (body,) in conn.execute("SELECT body FROM changes"):
            json.loads(body)
    finally:
        conn.close()
    assert len(rvs) == len(set(rvs))
    return rvs


def test_store_full_reports_the_cause_and_recovers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    conn = store._db()
    fill(conn)
    written, error = 0, None
    for i in range(1000):
        try:
            store.create(config_map(f"c{i}"))
            written += 1
        except sqlite3.OperationalError as exc:
            error = exc
            break
    # Before the fix the cause was hidden: "cannot rollback - no transaction is active".
    assert error is not None and "full" in str(error), error
    assert not conn.in_transaction
    with pytest.raises(Exception, match="not found"):
        store.get("ConfigMap", "default", f"c{written}")  # the refused write left nothing behind
    conn.execute(f"PRAGMA max_page_count = {UNLIMITED_PAGES}")
    store.create(config_map("after-space-returns"))
    assert len(store.list("ConfigMap", "default")) == written + 1
    store.close()
    check_intact(tmp_path / "state.db")


def test_store_commit_failing_leaves_no_transaction_open(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    conn = store._db()
    fill(conn, spare_pages=2)
    with pytest.raises(sqlite3.OperationalError, match="full"), store.transaction():
        for i in range(50):
            store.create(config_map(f"t{i}"))
    assert not conn.in_transaction
    assert store.list("ConfigMap", "default") == []  # all or nothing
    conn.execute(f"PRAGMA max_page_count = {UNLIMITED_PAGES}")
    store.create(config_map("next"))
    store.close()


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path, busy_timeout=0.5)
    yield found
    stop()


CM_PATH = "/api/v1/namespaces/default/configmaps"


def test_store_full_api_answers_internal_error_naming_the_cause(small_cluster: Cluster) -> None:
    conn = small_cluster.store._db()
    with small_cluster.http() as http:
        fill(conn)
        answers = []
        for i in range(40):
            answers.append(http.post(CM_PATH, json=config_map(f"api{i}")))
            if answers[-1].status_code != 201:
                answers.append(http.post(CM_PATH, json=config_map(f"api{i + 1}")))  # still refused
                break
        codes = [a.status_code for a in answers]
        assert codes[-2:] == [500, 500], codes
        assert 500 in codes, codes
        refused = answers[codes.index(500)].json()
        assert refused["kind"] == "Status" and refused["reason"] == "InternalError"
        assert "is full" in refused["message"] and "not applied" in refused["message"], refused
        assert refused["details"]["retryAfterSeconds"] >= 1
        # Reads still work while full.
        listed = http.get(CM_PATH)
        assert listed.status_code == 200
        stored = {item["metadata"]["name"] for item in listed.json()["items"]}
        accepted = {f"api{i}" for i, code in enumerate(codes) if code == 201}
        assert stored == accepted  # every 201 stored, every 500 not
        conn.execute(f"PRAGMA max_page_count = {UNLIMITED_PAGES}")
        assert http.post(CM_PATH, json=config_map("after")).status_code == 201
    check_intact(database_path(small_cluster.home))


def test_store_locked_api_answers_timeout_then_recovers(small_cluster: Cluster) -> None:
    holder = sqlite3.connect(database_path(small_cluster.home), isolation_level=None)
    with small_cluster.http() as http:
        assert http.post(CM_PATH, json=config_map("before")).status_code == 201
        holder.execute("BEGIN EXCLUSIVE")
        try:
            refused = http.post(CM_PATH, json=config_map("while-locked"))
            assert refused.status_code == 504, refused.text
            body = refused.json()
            assert body["reason"] == "Timeout" and "locked by another writer" in body["message"], body
            assert http.get(f"{CM_PATH}/before").status_code == 200  # WAL: readers are not blocked
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert http.get(f"{CM_PATH}/while-locked").status_code == 404
        assert http.post(CM_PATH, json=config_map("after-lock")).status_code == 201
    check_intact(database_path(small_cluster.home))
