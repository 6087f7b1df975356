"""Release history in SQLiteStore lives in the `<rollout>.rollout-history` ConfigMap (shared with KubeStore);
rows of the old `revisions` table are folded into it once, when a store opens the file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from rollouts.cluster.store import SQLiteStore
from rollouts.store.history import HISTORY_LABEL, config_map_name

ROLLOUT = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
           "metadata": {"name": "web", "namespace": "default"}, "spec": {}}


def test_sqlite_history_is_a_configmap_owned_by_the_rollout(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "state.db") as store:
        made = store.create(ROLLOUT)
        store.record_revision("default", "web", 1, "aaa", {"app": "a:1"}, {"spec": {}})
        cm = store.get("ConfigMap", "default", config_map_name("web"))
        assert cm["metadata"]["labels"] == {HISTORY_LABEL: "web"}
        assert cm["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
        assert json.loads(cm["data"]["revision-1"])["pod_hash"] == "aaa"
        store.delete("Rollout", "default", "web")
        assert store.list_revisions("default", "web") == []


def test_old_revisions_table_is_migrated_once_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SQLiteStore(path) as store:
        store.create(ROLLOUT)
        store.record_revision("default", "web", 2, "bbb", {"app": "a:2"}, {"spec": {"v": 2}})
    with sqlite3.connect(path) as conn:  # what an older version left: history rows in their own table
        conn.execute("INSERT INTO revisions VALUES ('default', 'web', 1, 'aaa', '{\"app\": \"a:1\"}', "
                     "'{\"spec\": {\"v\": 1}}', '2024-01-01T00:00:00Z', 'promoted', 'done', "
                     "'2024-01-01T00:00:01Z')")
        conn.execute("INSERT INTO revisions VALUES ('default', 'web', 2, 'old', '{}', '{}', "
                     "'2024-01-01T00:00:00Z', 'aborted', '', '2024-01-01T00:00:01Z')")
    with SQLiteStore(path) as store:
        listed = store.list_revisions("default", "web")
        assert [(r.revision, r.pod_hash, r.outcome, r.created_at) for r in listed] == [
            (1, "aaa", "promoted", "2024-01-01T00:00:00Z"), (2, "bbb", "current", listed[1].created_at)]
        assert listed[0].template == {"spec": {"v": 1}} and listed[0].images == {"app": "a:1"}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM revisions").fetchone() == (0,)
