"""The local object store: Kubernetes-shaped JSON objects in one SQLite file, shared by several processes.

Owns the schema (objects, owner references, change feed, release history), resourceVersion and generation
bookkeeping, optimistic concurrency, the status subresource, patches, cascade deletion, the change feed
that watchers poll, Events with aggregation, and the revision history used by `history` and `undo`.
Nothing here logs object contents (Secrets are stored as given).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import random
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from rollouts.store import history
from rollouts.store.patch import json_patch, merge_patch
from rollouts.store.protocol import (
    CLUSTER_SCOPED_KINDS,
    AlreadyExists,
    Change,
    ChangeType,
    Conflict,
    Expired,
    Invalid,
    JSONObject,
    NotFound,
    Outcome,
    PatchType,
    Revision,
    iter_owner_uids,
)
from rollouts.store.selectors import parse_field_selector, parse_label_selector

Clock = Callable[[], datetime]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('resource_version', 0), ('compacted_through', 0);
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    uid TEXT NOT NULL, rv INTEGER NOT NULL, ref_name TEXT, body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX IF NOT EXISTS objects_by_uid ON objects (uid);
CREATE INDEX IF NOT EXISTS objects_by_ref ON objects (kind, namespace, ref_name) WHERE ref_name IS NOT NULL;
CREATE TABLE IF NOT EXISTS owners (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, owner_uid TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name, owner_uid)
);
CREATE INDEX IF NOT EXISTS owners_by_owner ON owners (owner_uid);
CREATE TABLE IF NOT EXISTS changes (
    rv INTEGER PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    type TEXT NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revisions (
    namespace TEXT NOT NULL, rollout TEXT NOT NULL, revision INTEGER NOT NULL,
    pod_hash TEXT NOT NULL, images TEXT NOT NULL, template TEXT NOT NULL,
    created_at TEXT NOT NULL, outcome TEXT NOT NULL, cause TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, rollout, revision)
);
"""

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Kubernetes' alphabet for generateName suffixes: no vowels (no accidental words), no look-alikes.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Fields a writer may not change through update or patch.
_SERVER_OWNED = ("uid", "resourceVersion", "generation", "creationTimestamp", "name", "namespace")
# Waiting for another process's write lock: SQLite's own busy handler waits at most this long per attempt
# (it blocks the calling thread, holding this process's connection), then the write backs off and retries,
# letting this process's other threads use the connection meanwhile, until `busy_timeout` has passed.
ATTEMPT_BUSY_SECONDS = 0.05
_EVENT_GC_EVERY, _EVENT_GC_BATCH = 64, 1000
_BACKOFF_FIRST, _BACKOFF_CAP = 0.005, 0.25


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _json_copy(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise Invalid(f"{what} is not a JSON document: {exc}") from None


def _dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What generation tracks: everything but identity, metadata and status (for most kinds: spec)."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


class SQLiteStore:
    """`ObjectStore` over a SQLite file in WAL mode. One connection per process, shared by its threads."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        feed_limit: int = 10_000,
        events_per_object: int = 200,
        event_ttl: float = 3600.0,
        poll_interval: float = 0.05,
        durable: bool = False,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or _utcnow
        self._busy_timeout = busy_timeout
        self._feed_limit = feed_limit
        self._events_per_object = events_per_object
        # Events about objects that no longer exist (old pods, pruned runs) go after event_ttl seconds, as
        # Kubernetes' --event-ttl (1h) does; looked for once every _EVENT_GC_EVERY new events.
        self._event_ttl = event_ttl
        self._events_since_gc = 0
        self._poll_interval = poll_interval
        self._durable = durable
        self._lock = threading.RLock()
        # Kinds without a namespace besides CLUSTER_SCOPED_KINDS, added by whoever serves them (the local
        # API server: RBAC's cluster kinds, CustomResourceDefinitions and cluster-scoped custom resources).
        self.cluster_scoped: set[str] = set()
        self._depth = 0
        self._dirty = False
        self._changed = threading.Condition(threading.Lock())
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        # Connections inherited over fork() must never be touched (not even closed) by the child.
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = self._connect()
        if str(self.path) != ":memory:":
            self._migrate_revisions()

    # ---- connection and transactions -------------------------------------------------------------

    def _private_files(self) -> None:
        """The store holds Secrets: its file, and the -wal/-shm files SQLite gives the same mode, are 0600
        whatever the umask or the home folder's mode (a store made 0644 by an older version is narrowed)."""
        if str(self.path) == ":memory:":
            return
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)

    def _connect(self) -> sqlite3.Connection:
        self._private_files()
        conn = sqlite3.connect(
            self.path, timeout=ATTEMPT_BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(ATTEMPT_BUSY_SECONDS * 1000)}")
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError:
                # Switching a fresh file to WAL needs a moment of exclusive access; another opener may
                # hold it.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        # NORMAL in WAL mode: COMMIT returns after the transaction is appended to the WAL file, so a
        # committed write survives the process crashing (SIGKILL included); only a power loss or kernel
        # crash can drop the last commits, and never corrupts the file. durable=True selects FULL, which
        # also fsyncs the WAL on every commit to survive power loss, at a cost of a few ms per write.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
        backoff = _BACKOFF_FIRST
        while True:
            try:
                # One script so that concurrent first openers create the schema exactly once.
                conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
                return conn
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            time.sleep(backoff * (1 + random.random()))
            backoff = min(backoff * 2, _BACKOFF_CAP)

    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            if self._conn is not None:
                self._inherited.append(self._conn)
            self._pid, self._depth = os.getpid(), 0
            self._lock = threading.RLock()
            self._conn = self._connect()
        if self._conn is None:
            raise Invalid(f"the store at {self.path} is closed")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes atomically; nested use is a savepoint. Holds the write lock until the end."""
        with self._locked():
            conn = self._db()
            if self._depth:
                name = f"sp{self._depth}"
                conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield
                except BaseException:
                    if conn.in_transaction:  # SQLite may have rolled everything back itself (disk full)
                        conn.execute(f"ROLLBACK TO {name}")
                        conn.execute(f"RELEASE {name}")
                    raise
                else:
                    conn.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1
                return
            # IMMEDIATE takes the write lock up front, so a read-modify-write inside cannot be overtaken.
            self._begin_immediate(conn)
            self._depth, self._dirty = 1, False
            try:
                yield
            except BaseException:
                self._depth = 0
                # On some errors (SQLITE_FULL, SQLITE_IOERR, ...) SQLite has rolled the transaction back
                # itself: a second ROLLBACK would fail and hide the cause behind "no transaction is active".
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                conn.execute("COMMIT")
            except BaseException:
                # A COMMIT that fails (the disk filled while the WAL grew) leaves the transaction open:
                # without a rollback every later BEGIN on this shared connection would fail.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if self._dirty:
                self._notify()

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, retried with backoff while another process holds the write lock. Called with
        self._lock held once by this thread; it is let go while backing off, so the process's other threads
        (the proxy's readers) are not stalled behind a writer that waits."""
        deadline = time.monotonic() + self._busy_timeout
        backoff = _BACKOFF_FIRST
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError(
                        f"the store {self.path} is locked by another writer: gave up after "
                        f"{self._busy_timeout:g}s (busy_timeout)") from exc
            self._lock.release()
            try:
                time.sleep(min(backoff * (1 + random.random()), max(0.0, deadline - time.monotonic())))
            finally:
                self._lock.acquire()
            backoff = min(backoff * 2, _BACKOFF_CAP)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
        for loop, event in builtins.list(self._async_waiters):
            with contextlib.suppress(RuntimeError):  # the waiter's loop is already closed
                loop.call_soon_threadsafe(event.set)

    def _locked(self) -> threading.RLock:
        self._db()  # after a fork this replaces the lock inherited from the parent
        return self._lock

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> builtins.list[tuple[Any, ...]]:
        with self._locked():
            return self._db().execute(sql, params).fetchall()

    # ---- helpers -------------------------------------------------------------------------------

    def _now(self) -> str:
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _namespace(self, kind: str, namespace: str | None) -> str:
        if kind in CLUSTER_SCOPED_KINDS or kind in self.cluster_scoped:
            return ""
        return namespace or "default"

    def _next_version(self) -> int:
        row = (
            self._db()
            .execute("UPDATE meta SET value = value + 1 WHERE key = 'resource_version' RETURNING value")
            .fetchone()
        )
        return int(row[0])

    def _load(self, kind: str, namespace: str, name: str) -> JSONObject | None:
        row = (
            self._db()
            .execute(
                "SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
            .fetchone()
        )
        return json.loads(row[0]) if row else None

    def _require(self, kind: str, namespace: str, name: str) -> JSONObject:
        found = self._load(kind, namespace, name)
        if found is None:
            raise NotFound(kind, namespace, name)
        return found

    def _write(self, obj: JSONObject, change: ChangeType) -> JSONObject:
        """Stamp a new resourceVersion on `obj`, store it and append it to the feed (inside a transaction)."""
        conn = self._db()
        meta = obj["metadata"]
        kind, namespace, name = obj["kind"], meta.get("namespace", ""), meta["name"]
        rv = self._next_version()
        meta["resourceVersion"] = str(rv)
        body = _dump(obj)
        if change == "DELETED":
            conn.execute(
                "DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
            )
        else:
            involved = obj.get("involvedObject") if kind == "Event" else None
            ref_name = involved.get("name") if isinstance(involved, Mapping) else None
            conn.execute(
                "INSERT OR REPLACE INTO objects (kind, namespace, name, uid, rv, ref_name, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, namespace, name, meta["uid"], rv, ref_name, body),
            )
        conn.execute(
            "DELETE FROM owners WHERE kind = ? AND namespace = ? AND name = ?", (kind, namespace, name)
        )
        if change != "DELETED":
            conn.executemany(
                "INSERT OR IGNORE INTO owners (kind, namespace, name, owner_uid) VALUES (?, ?, ?, ?)",
                [(kind, namespace, name, uid) for uid in iter_owner_uids(obj)],
            )
        conn.execute(
            "INSERT INTO changes (rv, kind, namespace, name, type, body) VALUES (?, ?, ?, ?, ?, ?)",
            (rv, kind, namespace, name, change, body),
        )
        self._compact(rv)
        self._dirty = True
        return obj

    def _compact(self, rv: int) -> None:
        through = rv - self._feed_limit
        if through <= 0:
            return
        conn = self._db()
        if conn.execute("DELETE FROM changes WHERE rv <= ?", (through,)).rowcount:
            conn.execute("UPDATE meta SET value = max(value, ?) WHERE key = 'compacted_through'", (through,))

    def _write_if_changed(self, stored: JSONObject, new: JSONObject) -> JSONObject:
        new["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
        if new == stored:
            return stored  # a no-op write leaves resourceVersion and the feed alone, as in Kubernetes
        return self._write(new, "MODIFIED")

    @staticmethod
    def _check_version(stored: JSONObject, given: Any) -> None:
        current = str(stored["metadata"]["resourceVersion"])
        if str(given) != current:
            meta = stored["metadata"]
            raise Conflict(stored["kind"], meta.get("namespace", ""), meta["name"], str(given), current)

    def _incoming(self, obj: Mapping[str, Any], *, for_update: bool) -> JSONObject:
        if not isinstance(obj, Mapping):
            raise Invalid("an object must be a mapping with apiVersion, kind and metadata")
        body: JSONObject = _json_copy(obj, "the object")
        kind = body.get("kind")
        if not isinstance(kind, str) or not kind:
            raise Invalid("kind: required (e.g. Rollout)")
        if not isinstance(body.get("apiVersion"), str) or not body["apiVersion"]:
            raise Invalid(f"{kind}.apiVersion: required (e.g. argoproj.io/v1alpha1)")
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise Invalid(f"{kind}.metadata: required, a mapping with at least name")
        namespace = self._namespace(kind, meta.get("namespace"))
        if namespace:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        name = meta.get("name")
        if name is None and not for_update and isinstance(meta.get("generateName"), str):
            return body
        if not isinstance(name, str) or len(name) > 253 or not _NAME_RE.match(name):
            raise Invalid(
                f"{kind}.metadata.name: {name!r} is not a valid name (lowercase letters, digits, '-' "
                f"and '.', starting and ending with a letter or digit, at most 253 characters)"
            )
        if for_update and meta.get("resourceVersion") in (None, ""):
            raise Invalid(f'{kind} "{name}": metadata.resourceVersion must be set for an update')
        return body

    @staticmethod
    def _merge_for_update(stored: JSONObject, incoming: JSONObject) -> JSONObject:
        """`incoming` as it may be applied over `stored`: server-owned metadata and status kept."""
        meta = dict(incoming.get("metadata") or {})
        for key in _SERVER_OWNED:
            meta.pop(key, None)
            if key in stored["metadata"]:
                meta[key] = stored["metadata"][key]
        new: JSONObject = {
            "apiVersion": incoming.get("apiVersion", stored["apiVersion"]),
            "kind": stored["kind"],
        }
        new["metadata"] = meta
        new.update(_content(incoming))
        if "status" in stored:
            new["status"] = stored["status"]
        for key, empty in (("labels", {}), ("annotations", {}), ("ownerReferences", [])):
            meta.setdefault(key, empty)
        if _content(new) != _content(stored):
            meta["generation"] = int(stored["metadata"].get("generation", 1)) + 1
        return new

    @staticmethod
    def _with_status(stored: JSONObject, status: Any) -> JSONObject:
        new = dict(stored)
        new["metadata"] = dict(stored["metadata"])
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
        return new

    # ---- reads ---------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        with self._locked():
            return self._require(kind, self._namespace(kind, namespace), name)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[JSONObject]:
        return self.list_with_version(kind, namespace, label_selector, field_selector)[0]

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[JSONObject], int]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        sql = "SELECT body FROM objects WHERE kind = ?"
        params: builtins.list[Any] = [kind]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(self._namespace(kind, namespace))
        pinned_name = fields.equals("metadata.name")
        if pinned_name is not None:
            sql += " AND name = ?"
            params.append(pinned_name)
        pinned_ref = fields.equals("involvedObject.name")
        if kind == "Event" and pinned_ref is not None:
            sql += " AND ref_name = ?"
            params.append(pinned_ref)
        sql += " ORDER BY namespace, name"
        with self._locked():
            conn = self._db()
            # One read transaction so the list and the version come from the same snapshot.
            own = self._depth == 0
            if own:
                conn.execute("BEGIN")
            try:
                rows = conn.execute(sql, params).fetchall()
                version = self._version_now()
            finally:
                if own:
                    conn.execute("COMMIT")
        found = []
        for (text,) in rows:
            obj = json.loads(text)
            if labels.matches((obj.get("metadata") or {}).get("labels")) and fields.matches(obj):
                found.append(obj)
        return found, version

    def _version_now(self) -> int:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'resource_version'").fetchone()
        return int(row[0])

    def current_version(self) -> int:
        with self._locked():
            return self._version_now()

    # ---- writes --------------------------------------------------------------------------------

    def create(self, obj: Mapping[str, Any]) -> JSONObject:
        body = self._incoming(obj, for_update=False)
        kind, meta = body["kind"], body["metadata"]
        namespace = meta.get("namespace", "")
        for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp"):
            meta.pop(key, None)
        with self.transaction():
            if meta.get("name") is None:
                meta["name"] = self._generate_name(kind, namespace, meta["generateName"])
            elif self._load(kind, namespace, meta["name"]) is not None:
                raise AlreadyExists(kind, namespace, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["generation"] = 1
            meta["creationTimestamp"] = self._now()
            meta.setdefault("labels", {})
            meta.setdefault("annotations", {})
            meta.setdefault("ownerReferences", [])
            return self._write(body, "ADDED")

    def _generate_name(self, kind: str, namespace: str, prefix: str) -> str:
        for _ in range(100):
            name = prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            if not _NAME_RE.match(name) or len(name) > 253:
                raise Invalid(f'{kind}.metadata.generateName: "{prefix}" does not make a valid name')
            if self._load(kind, namespace, name) is None:
                return name
        raise AlreadyExists(kind, namespace, prefix + "*")

    def update(self, obj: Mapping[str, Any]) -> JSONObject:
        """Replace metadata and spec; status in `obj` is ignored; generation moves when spec changes."""
        body = self._incoming(obj, for_update=True)
        meta = body["metadata"]
        with self.transaction():
            stored = self._require(body["kind"], meta.get("namespace", ""), meta["name"])
            self._check_version(stored, meta["resourceVersion"])
            return self._write_if_changed(stored, self._merge_for_update(stored, body))

    def update_status(self, obj: Mapping[str, Any]) -> JSONObject:
        """Replace only status; everything else in `obj` is ignored."""
        body = self._incoming(obj, for_update=True)
        meta = body["metadata"]
        with self.transaction():
            stored = self._require(body["kind"], meta.get("namespace", ""), meta["name"])
            self._check_version(stored, meta["resourceVersion"])
            return self._write_if_changed(stored, self._with_status(stored, body.get("status")))

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        patch_type: PatchType = "merge",
        subresource: Literal["status"] | None = None,
    ) -> JSONObject:
        """Apply a merge or JSON patch atomically; a resourceVersion inside the patch is a precondition."""
        if isinstance(patch, str | bytes):
            try:
                patch = json.loads(patch)
            except ValueError as exc:
                raise Invalid(f"the {patch_type} patch is not valid JSON: {exc}") from None
        if patch_type not in ("merge", "json"):
            raise Invalid(f'patch type "{patch_type}" is not one of merge, json')
        if subresource not in (None, "status"):
            raise Invalid(f'subresource "{subresource}" is not one of status or none')
        namespace = self._namespace(kind, namespace)
        with self.transaction():
            stored = self._require(kind, namespace, name)
            patched = merge_patch(stored, patch) if patch_type == "merge" else json_patch(stored, patch)
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise Invalid(f'patching {kind} "{name}" must leave an object with metadata')
            p_meta = patched["metadata"]
            if patched.get("kind") != kind or p_meta.get("name") != name:
                raise Invalid(f'patching {kind} "{name}" may not change kind or metadata.name')
            if p_meta.get("resourceVersion") != stored["metadata"]["resourceVersion"]:
                self._check_version(stored, p_meta.get("resourceVersion"))
            if subresource == "status":
                new = self._with_status(stored, patched.get("status"))
            else:
                new = self._merge_for_update(stored, patched)
            return self._write_if_changed(stored, new)

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> JSONObject:
        """Delete an object and, transitively, every object it alone owns; returns the deleted object."""
        namespace = self._namespace(kind, namespace)
        with self.transaction():
            root = self._require(kind, namespace, name)
            if resource_version is not None:
                self._check_version(root, resource_version)
            pending = [root]
            while pending:
                obj = pending.pop()
                uid = obj["metadata"]["uid"]
                self._write(obj, "DELETED")
                if obj["kind"] == "Rollout":
                    self._db().execute(
                        "DELETE FROM revisions WHERE namespace = ? AND rollout = ?",
                        (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]),
                    )
                pending.extend(self._orphans_of(uid))
            return root

    def _orphans_of(self, uid: str) -> builtins.list[JSONObject]:
        """Dependents of `uid` that have no other live owner left (Kubernetes' background GC rule)."""
        conn = self._db()
        rows = conn.execute("SELECT kind, namespace, name FROM owners WHERE owner_uid = ?", (uid,)).fetchall()
        orphans = []
        for kind, namespace, name in rows:
            dependent = self._load(kind, namespace, name)
            if dependent is None:
                continue
            others = [u for u in iter_owner_uids(dependent) if u != uid]
            alive = any(conn.execute("SELECT 1 FROM objects WHERE uid = ?", (u,)).fetchone() for u in others)
            if not alive:
                orphans.append(dependent)
        return orphans

    # ---- watch ---------------------------------------------------------------------------------

    def _changes_since(self, since: int, kinds: set[str] | None, limit: int) -> builtins.list[Change]:
        sql = "SELECT rv, kind, namespace, name, type, body FROM changes WHERE rv > ?"
        params: builtins.list[Any] = [since]
        if kinds is not None:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(sorted(kinds))
        sql += " ORDER BY rv LIMIT ?"
        params.append(limit)
        with self._locked():
            conn = self._db()
            compacted = conn.execute("SELECT value FROM meta WHERE key = 'compacted_through'").fetchone()[0]
            if since < compacted:
                raise Expired(since, int(compacted))
            rows = conn.execute(sql, params).fetchall()
        return [
            Change(rv, kind, ns, name, ctype, json.loads(body)) for rv, kind, ns, name, ctype, body in rows
        ]

    def watch(
        self, since: int, kinds: set[str] | None = None, timeout: float = 10.0, limit: int = 1000
    ) -> builtins.list[Change]:
        """Changes after resourceVersion `since`, oldest first; waits up to `timeout` s for the first one.

        Writes from this process wake the watcher at once; other processes' writes are seen within
        `poll_interval`. Raises `Expired` when `since` predates the compacted part of the feed.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self._changes_since(since, kinds, limit)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            with self._changed:
                self._changed.wait(min(self._poll_interval, remaining))

    async def watch_async(
        self, since: int, kinds: set[str] | None = None, timeout: float = 10.0, limit: int = 1000
    ) -> builtins.list[Change]:
        """`watch` for asyncio code: waits without blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter = (loop, asyncio.Event())
            self._async_waiters.add(waiter)
            try:
                found = self._changes_since(since, kinds, limit)
                remaining = deadline - loop.time()
                if found or remaining <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter[1].wait(), min(self._poll_interval, remaining))
            finally:
                self._async_waiters.discard(waiter)

    # ---- events --------------------------------------------------------------------------------

    def record_event(
        self,
        involved: Mapping[str, Any],
        type: str,
        reason: str,
        message: str,
        source: str = "rollouts-controller",
    ) -> JSONObject:
        """Record a v1 Event; an event identical to the involved object's latest one bumps its count."""
        if type not in ("Normal", "Warning"):
            raise Invalid(f'event type "{type}" is not one of Normal, Warning')
        kind, name = involved.get("kind"), involved.get("name")
        if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
            raise Invalid("an event's involved object needs kind and name")
        ref_ns = "" if kind in CLUSTER_SCOPED_KINDS else (involved.get("namespace") or "default")
        namespace = ref_ns or "default"  # events about cluster-scoped objects live in "default"
        ref: JSONObject = {k: involved[k] for k in ("apiVersion", "kind", "name", "uid") if involved.get(k)}
        if ref_ns:
            ref["namespace"] = ref_ns
        now = self._now()
        with self.transaction():
            latest = (
                self._db()
                .execute(
                    "SELECT body FROM objects WHERE kind = 'Event' AND namespace = ? AND ref_name = ? "
                    "ORDER BY rv DESC LIMIT 20",
                    (namespace, name),
                )
                .fetchall()
            )
            for (text,) in latest:
                event = json.loads(text)
                if event.get("involvedObject", {}).get("kind") != kind:
                    continue
                if (
                    event.get("involvedObject") == ref
                    and event.get("type") == type
                    and event.get("reason") == reason
                    and event.get("message") == message
                    and event.get("source", {}).get("component") == source
                ):
                    event["count"] = int(event.get("count", 1)) + 1
                    event["lastTimestamp"] = now
                    return self._write(event, "MODIFIED")
                break
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{name}.{uuid.uuid4().hex[:16]}",
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "generation": 1,
                    "creationTimestamp": now,
                    "labels": {},
                    "annotations": {},
                    "ownerReferences": [],
                },
                "involvedObject": ref,
                "type": type,
                "reason": reason,
                "message": message,
                "source": {"component": source},
                "reportingComponent": source,
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
            }
            written = self._write(event, "ADDED")
            self._prune_events(namespace, name)
            self._events_since_gc += 1
            if self._events_since_gc >= _EVENT_GC_EVERY:
                self._events_since_gc = 0
                self._expire_orphan_events()
            return written

    def _expire_orphan_events(self) -> None:
        """Delete (a bounded batch of) events older than the TTL whose involved object is gone."""
        cutoff = (self._clock() - timedelta(seconds=self._event_ttl)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = self._db().execute(
            "SELECT e.body FROM objects e WHERE e.kind = 'Event' "
            "AND coalesce(json_extract(e.body, '$.lastTimestamp'), '') < ? "
            "AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.kind = json_extract(e.body, '$.involvedObject.kind') "
            "AND o.name = e.ref_name AND o.namespace IN (e.namespace, '')) LIMIT ?",
            (cutoff, _EVENT_GC_BATCH),
        ).fetchall()
        for (text,) in rows:
            self._write(json.loads(text), "DELETED")

    def _prune_events(self, namespace: str, ref_name: str) -> None:
        rows = (
            self._db()
            .execute(
                "SELECT body FROM objects WHERE kind = 'Event' AND namespace = ? AND ref_name = ? "
                "ORDER BY rv DESC LIMIT -1 OFFSET ?",
                (namespace, ref_name, self._events_per_object),
            )
            .fetchall()
        )
        for (text,) in rows:
            self._write(json.loads(text), "DELETED")

    # ---- release history -----------------------------------------------------------------------
    # Kept in the `<rollout>.rollout-history` ConfigMap (rollouts.store.history), as KubeStore keeps it, so
    # history written through the API server and through this store is the same. The old `revisions`
    # table is folded into those ConfigMaps once, the first time a store opens it (_migrate_revisions).

    def record_revision(
        self,
        namespace: str,
        rollout: str,
        revision: int,
        pod_hash: str,
        images: Mapping[str, str],
        template: Mapping[str, Any],
        outcome: Outcome = "current",
        cause: str = "",
    ) -> Revision:
        """Remember (or refresh) one revision of a Rollout; created_at is kept on refresh."""
        _json_copy(dict(images), "images")
        _json_copy(template, "template")
        with self.transaction():
            return history.record(self, namespace, rollout, revision, pod_hash, images, template, outcome,
                                  cause, self._now())

    def set_revision_outcome(
        self, namespace: str, rollout: str, revision: int, outcome: Outcome, cause: str = ""
    ) -> Revision:
        with self.transaction():
            return history.set_outcome(self, namespace, rollout, revision, outcome, cause, self._now())

    def list_revisions(self, namespace: str, rollout: str) -> builtins.list[Revision]:
        """Every remembered revision of a Rollout, oldest first."""
        return history.list_all(self, namespace, rollout)

    def _migrate_revisions(self) -> None:
        """Move rows of the old `revisions` table into the history ConfigMaps (once: the rows are deleted)."""
        if not self._query("SELECT 1 FROM revisions LIMIT 1"):
            return
        with self.transaction():
            rows = self._db().execute(f"SELECT {_REVISION_COLUMNS} FROM revisions ORDER BY revision").fetchall()
            grouped: dict[tuple[str, str], builtins.list[JSONObject]] = {}
            for row in rows:
                old = _to_revision(row)
                grouped.setdefault((old.namespace, old.rollout), []).append({
                    "revision": old.revision, "pod_hash": old.pod_hash, "images": dict(old.images),
                    "template": old.template, "created_at": old.created_at, "outcome": old.outcome,
                    "cause": old.cause, "updated_at": old.updated_at})
            for (namespace, rollout), entries in grouped.items():
                history.merge_legacy(self, namespace, rollout, entries)
            self._db().execute("DELETE FROM revisions")


_REVISION_COLUMNS = (
    "namespace, rollout, revision, pod_hash, images, template, created_at, outcome, cause, updated_at"
)


def _to_revision(row: tuple[Any, ...]) -> Revision:
    namespace, rollout, revision, pod_hash, images, template, created_at, outcome, cause, updated_at = row
    return Revision(
        namespace=namespace,
        rollout=rollout,
        revision=int(revision),
        pod_hash=pod_hash,
        images=json.loads(images),
        template=json.loads(template),
        created_at=created_at,
        outcome=outcome,
        cause=cause,
        updated_at=updated_at,
    )
