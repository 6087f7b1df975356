"""An object's state before a change, read from the store's change feed, so that a watch with a
selector can report an object that stops matching as DELETED and one that starts matching as ADDED,
as kube-apiserver's watch cache does.

Reads the feed through its own read-only SQLite connection (the store has no call for it); when the
earlier change has been compacted away, or the feed cannot be read, the answer is "unknown" (None).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


class PreviousStates:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False, timeout=5)
            self._local.conn = conn
        return conn

    def before(self, kind: str, namespace: str, name: str, rv: int) -> dict[str, Any] | None:
        """The object as the change just before `rv` left it; None when unknown or it did not exist."""
        try:
            row = self._conn().execute(
                "SELECT type, body FROM changes WHERE kind = ? AND namespace = ? AND name = ? AND rv < ? "
                "ORDER BY rv DESC LIMIT 1",
                (kind, namespace, name, rv),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None or row[0] == "DELETED":
            return None
        found: dict[str, Any] = json.loads(row[1])
        return found
