"""An informer: list+watch of one kind into an in-memory cache, with event handlers (client-go's
SharedInformer, reduced to what the operator needs), on lightkube's async client.

- First a list (paged), which fills the cache and calls `on_add` for each object; `has_synced` is then
  true. Then a watch from the list's resourceVersion with bookmarks; every event and bookmark moves
  the resume point.
- A watch that ends (server timeout), drops or fails to connect (server restart) is reopened from the
  last resourceVersion, after a capped backoff when it failed: no relist, nothing missed or repeated.
- A `410 Expired` (the resume point was compacted away) relists, and the cache is replaced the way
  client-go's Replace does it: new objects are added, changed ones updated, vanished ones deleted, each
  with its handler, so handlers see every difference once.
- Handlers are plain callables (typically enqueueing a key in a `WorkQueue`); one that raises is
  reported to `on_error` and does not stop the informer.
- Objects in the cache are JSON dicts, shaped as the object store's.
- `fold(obj)` / `fold_delete(obj)` put a write's answer into the cache at once (the writer then reads its own
  write); the watch event of that write arrives later and is dropped as not newer. resourceVersions are
  compared as integers when both are (the local cluster and etcd-backed clusters), so an event older than
  what the cache holds never moves it back; handlers see each change once.

lightkube's public `watch` does not request bookmarks, so the watch request is prepared with its
request builder and the `allowWatchBookmarks` parameter added; its watch driver does the streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.core.generic_client import ALL_NS
from lightkube.core.selector import build_selector

from rollouts.kube.kinds import kind_of
from rollouts.kube.resources import raw_resource_for

JSONObject = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds


def key_of(obj: JSONObject) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _rv(obj: JSONObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _older(obj: JSONObject, than: JSONObject | None, *, or_equal: bool = True) -> bool:
    """True when `obj` is known to be older than (or, with `or_equal`, the same version as) `than`."""
    if than is None:
        return False
    new, old = _rv(obj), _rv(than)
    if not (new.isdigit() and old.isdigit()):
        return or_equal and new == old != ""
    return int(new) < int(old) or (or_equal and int(new) == int(old))


class Informer:
    def __init__(self, client: AsyncClient, kind: str, *, namespace: str | None = None,
                 labels: dict[str, Any] | None = None,
                 on_add: Callable[[JSONObject], None] | None = None,
                 on_update: Callable[[JSONObject, JSONObject], None] | None = None,
                 on_delete: Callable[[JSONObject], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 server_timeout: int = 300, page_size: int = 500, max_backoff: float = 5.0) -> None:
        self.kind = kind_of(kind)
        # Untyped: the cache holds the objects' JSON exactly (lightkube's typed models drop unknown fields).
        self.resource: Any = raw_resource_for(kind)
        self.client = client
        self.namespace = namespace if self.kind.namespaced else None
        self.labels = labels
        self.on_add, self.on_update, self.on_delete, self.on_error = on_add, on_update, on_delete, on_error
        self.server_timeout, self.page_size, self.max_backoff = server_timeout, page_size, max_backoff
        self.cache: dict[Key, JSONObject] = {}
        # The same objects by namespace: a namespaced list costs what that namespace holds, not the cluster.
        self._by_namespace: dict[str, dict[str, JSONObject]] = {}
        self.resource_version: str | None = None
        self.lists = 0  # how many times it listed (1 + relists after 410)
        self.watches = 0  # how many watch requests it opened
        self.bookmarks = 0
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- reading the cache -------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    def get(self, namespace: str, name: str) -> JSONObject | None:
        return self.cache.get((namespace if self.kind.namespaced else "", name))

    def list(self, namespace: str | None = None) -> list[JSONObject]:
        if namespace is None:
            return list(self.cache.values())
        return list(self._by_namespace.get(namespace if self.kind.namespaced else "", {}).values())

    def _put(self, key: Key, obj: JSONObject) -> None:
        self.cache[key] = obj
        self._by_namespace.setdefault(key[0], {})[key[1]] = obj

    def _drop(self, key: Key) -> None:
        self.cache.pop(key, None)
        names = self._by_namespace.get(key[0])
        if names is not None:
            names.pop(key[1], None)
            if not names:
                del self._by_namespace[key[0]]

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self) -> None:
        """Stop listing and watching; the cache and resume point stay, so `start` resumes."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status.code == 410:
                    self.resource_version = None  # compacted: relist
                    continue
                failures = await self._failed(exc, failures)
            except Exception as exc:  # noqa: BLE001 - dropped connections, a restarting server
                failures = await self._failed(exc, failures)

    async def _failed(self, exc: BaseException, failures: int) -> int:
        if self.on_error:
            self.on_error(exc)
        await asyncio.sleep(min(0.1 * 2**failures, self.max_backoff))
        return failures + 1

    def _ns(self) -> str | None:
        if not self.kind.namespaced:
            return None
        return self.namespace or ALL_NS

    async def _list(self) -> None:
        listing = self.client.list(self.resource, namespace=self._ns(), chunk_size=self.page_size,
                                   labels=self.labels)
        fresh: dict[Key, JSONObject] = {}
        async for item in listing:
            obj = self._typed(item.to_dict())
            fresh[key_of(obj)] = obj
        try:
            version = listing.resourceVersion
        except Exception:  # noqa: BLE001 - an empty answer without a version: watch from "now"
            version = ""
        self.lists += 1
        self._replace(fresh)
        self.resource_version = version
        self._synced.set()

    def _replace(self, fresh: dict[Key, JSONObject]) -> None:
        old = self.cache
        self.cache, self._by_namespace = {}, {}
        for key, obj in fresh.items():
            self._put(key, obj)
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._call(self.on_add, obj)
            elif _older(obj, before, or_equal=False):
                self._put(key, before)  # a write folded in while the list ran is newer than the list
            elif _rv(before) != _rv(obj):
                self._call(self.on_update, before, obj)
        for key, obj in old.items():
            if key not in fresh:
                self._call(self.on_delete, obj)

    async def _watch(self) -> None:
        params: dict[str, Any] = {"timeoutSeconds": self.server_timeout, "allowWatchBookmarks": "true",
                                  "resourceVersion": self.resource_version or None}
        if self.labels:
            params["labelSelector"] = build_selector(self.labels)
        inner = self.client._client  # lightkube's request builder; see the module docstring
        request = inner.prepare_request("list", res=self.resource, namespace=self._ns(), watch=True,
                                        params=params)
        self.watches += 1
        async for change, item in inner.watch(request):
            obj = self._typed(item.to_dict())
            version = _rv(obj)
            if change == "BOOKMARK":
                self.bookmarks += 1
            elif change in ("ADDED", "MODIFIED"):
                self.fold(obj)
            elif change == "DELETED":
                self.fold_delete(obj)
            if version:
                self.resource_version = version

    # -- a writer's own answers ----------------------------------------------------------------------

    def fold(self, obj: JSONObject) -> bool:
        """Put `obj` (a watch event's or a write's answer) in the cache unless the cache already holds it or a
        newer version; calls on_add/on_update when it changed the cache."""
        key = key_of(obj)
        before = self.cache.get(key)
        if _older(obj, before):
            return False
        self._put(key, obj)
        if before is None:
            self._call(self.on_add, obj)
        else:
            self._call(self.on_update, before, obj)
        return True

    def fold_delete(self, obj: JSONObject) -> bool:
        """Remove `obj` from the cache unless what the cache holds under its key is newer (a re-created object
        with the same name); calls on_delete when it removed something."""
        key = key_of(obj)
        before = self.cache.get(key)
        if before is None or _older(obj, before, or_equal=False):
            return False
        self._drop(key)
        self._call(self.on_delete, before)
        return True

    def _typed(self, obj: JSONObject) -> JSONObject:
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        return obj

    def _call(self, handler: Callable[..., None] | None, *args: JSONObject) -> None:
        if handler is None:
            return
        try:
            handler(*args)
        except Exception as exc:  # noqa: BLE001 - a failing handler must not stop the informer
            if self.on_error:
                self.on_error(exc)
