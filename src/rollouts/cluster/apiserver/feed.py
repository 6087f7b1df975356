"""One reader of the store's change feed shared by every watch of the server.

A single task follows the feed and keeps its recent changes in memory; each watch reads from there, so a
hundred idle watchers cost one store poll, not a hundred, and each change is encoded to JSON once. A
watch waits for its own kind only: a change wakes the watches of its kind, not every watch of the server
(an operator's informers watch a dozen kinds; a wake-up of each on every change was most of the server's
work under a busy operator). A watch whose position is older than the memory falls back to reading the
store itself (which also decides 410 Gone).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
from dataclasses import dataclass, field

from rollouts.cluster.store import SQLiteStore
from rollouts.store.protocol import Change, Expired

log = logging.getLogger(__name__)


@dataclass
class Entry:
    change: Change
    _line: bytes | None = field(default=None, repr=False)

    def line(self) -> bytes:
        """The watch event line, encoded on first use and shared by every watcher."""
        if self._line is None:
            self._line = json.dumps({"type": self.change.type, "object": self.change.object}).encode() + b"\n"
        return self._line


class Feed:
    def __init__(self, store: SQLiteStore, retain: int = 4096, idle_timeout: float = 5.0) -> None:
        self._store = store
        self._retain = retain
        self._idle = idle_timeout
        # Plain lists, trimmed in batches, so that bisect and slicing stay cheap.
        self._entries: list[Entry] = []
        self._versions: list[int] = []
        self._floor = 0  # every change after the floor up to the head is in memory
        self._head = 0
        # kind -> the futures of the watches waiting for a change of it (one event loop: no lock needed,
        # a watch registers between its check and its wait with no await in between)
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._floor = self._head = self._store.current_version()
            self._entries.clear()
            self._versions.clear()
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def _wake(self, kinds: set[str] | None) -> None:
        for kind in list(self._waiting) if kinds is None else kinds:
            for waiter in self._waiting.get(kind, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            before = self._store.current_version()
            try:
                changes = await self._store.watch_async(self._head, None, timeout=self._idle)
            except Expired:
                # This reader fell behind the compacted feed: start over from now; watches older than
                # the new floor read the store and get their 410 there.
                self._entries.clear()
                self._versions.clear()
                self._floor = self._head = self._store.current_version()
                changes = []
                before = self._head
                self._wake(None)  # each watch finds itself behind the new floor and reads the store
            except Exception:
                log.exception("reading the change feed failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if changes:
                for change in changes:
                    self._entries.append(Entry(change))
                    self._versions.append(change.resource_version)
                self._head = changes[-1].resource_version
                if len(self._entries) > 2 * self._retain:
                    cut = len(self._entries) - self._retain
                    self._floor = self._versions[cut - 1]
                    del self._entries[:cut], self._versions[:cut]
                self._wake({change.kind for change in changes})
            else:
                self._head = max(self._head, before)

    async def after(self, since: int, kind: str, timeout: float) -> tuple[list[Entry], int] | None:
        """Changes of `kind` after `since` and the position they bring the watch to, waiting up to
        `timeout` for one; None when `since` is older than the memory (read the store instead)."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if since < self._floor:
                return None
            start = bisect.bisect_right(self._versions, since)
            found = [e for e in self._entries[start:] if e.change.kind == kind]
            if found:
                return found, found[-1].change.resource_version
            if self._versions:
                # Nothing of this kind up to the newest change in memory: the next wake-up scans only
                # what arrives after it (a watch of a quiet kind rescanned the whole memory on every
                # change of any other kind, the server's main cost under a busy operator).
                since = max(since, self._versions[-1])
            remaining = deadline - loop.time()
            if remaining <= 0:
                return [], max(since, self._head)
            waiter: asyncio.Future[None] = loop.create_future()
            waiting = self._waiting.setdefault(kind, set())
            waiting.add(waiter)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter, remaining)
            finally:
                waiting.discard(waiter)
                if not waiting and self._waiting.get(kind) is waiting:
                    del self._waiting[kind]
