"""One watcher of the store's change feed shared by every open event stream of the dashboard.

Each server-sent event stream used to poll the store's feed itself. Over the Kubernetes API
(`rollouts.kube.client.KubeStore`) a poll is a blocking call that waits up to its timeout in a
worker thread, so 64 open streams would hold 64 threads (and starve the small default pool). Here one
thread follows the feed (`ObjectStore.watch`, which on a `KubeStore` reads long-lived watch streams)
and wakes every subscribed stream on its own event loop with the namespaces that changed. A stream
then recomputes its view; it never touches the feed.

Failure rules: a compacted feed (`Expired`) restarts from the current version and tells every
subscriber that anything may have changed (namespaces None); an unreachable store is retried with a
growing pause, and the streams keep sending heartbeats meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rollouts.store.protocol import Expired, ObjectStore, StoreError

log = logging.getLogger("rollouts.dashboard")

POLL_SECONDS = 0.5  # one feed call waits this long: how soon an idle hub notices it has no subscriber left
MAX_BACKOFF = 5.0


@dataclass(eq=False)
class Subscription:
    """What one event stream has been told since it last looked: the newest version and the namespaces
    (None: any namespace, after the feed restarted)."""

    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    version: int = 0
    namespaces: set[str] | None = field(default_factory=set)

    async def next(self, timeout: float) -> tuple[int, set[str] | None] | None:
        """The changes since the last call, waiting up to `timeout` s; None when nothing changed."""
        try:
            await asyncio.wait_for(self.wake.wait(), timeout)
        except TimeoutError:
            return None
        self.wake.clear()
        found, self.namespaces = self.namespaces, set()
        return self.version, found

    def _deliver(self, version: int, namespaces: set[str] | None) -> None:
        # Runs on the subscriber's own loop.
        self.version = max(self.version, version)
        if namespaces is None or self.namespaces is None:
            self.namespaces = None
        else:
            self.namespaces |= namespaces
        self.wake.set()


class ChangeHub:
    """Follows `store()`'s change feed for `kinds` while at least one stream is subscribed."""

    def __init__(self, store: Callable[[], ObjectStore], kinds: Iterable[str],
                 poll: float = POLL_SECONDS) -> None:
        self._store = store
        self._kinds = set(kinds)
        self._poll = poll
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._version = 0
        self._closed = threading.Event()

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        """Registers a stream. Blocking (it may read the feed's current version): call it from a worker
        thread. Every change after this call returns is delivered to the subscription."""
        sub = Subscription(loop)
        with self._lock:
            self._subscribers.add(sub)
            if self._thread is None or not self._thread.is_alive():
                # The starting version is read before the thread starts, so nothing between this
                # subscription and the thread's first poll is missed.
                self._version = self._store().current_version()
                self._thread = threading.Thread(target=self._run, daemon=True, name="dashboard-changes")
                self._thread.start()
            sub.version = self._version
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def close(self) -> None:
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._poll + 5)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def following(self) -> bool:
        """Whether the feed is being read (only while some stream is subscribed)."""
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            with self._lock:
                if not self._subscribers:
                    self._thread = None
                    return
                since = self._version
            try:
                changes = self._store().watch(since, self._kinds, timeout=self._poll)
            except Expired:
                with self._lock:
                    self._version = self._current_or(since)
                self._publish(self._version, None)
                continue
            except StoreError as exc:
                failures += 1
                pause = min(0.2 * 2 ** failures, MAX_BACKOFF)
                if failures in (1, 5) or failures % 50 == 0:
                    log.warning("dashboard: cannot follow the store's changes (%s); retrying", exc)
                self._closed.wait(pause)
                continue
            failures = 0
            if not changes:
                continue
            version = changes[-1].resource_version
            with self._lock:
                self._version = max(self._version, version)
            self._publish(version, {c.namespace for c in changes})

    def _current_or(self, fallback: int) -> int:
        try:
            return self._store().current_version()
        except StoreError:
            return fallback

    def _publish(self, version: int, namespaces: set[str] | None) -> None:
        with self._lock:
            targets = list(self._subscribers)
        for sub in targets:
            try:
                sub.loop.call_soon_threadsafe(sub._deliver, version, None if namespaces is None else set(namespaces))
            except RuntimeError:
                self.unsubscribe(sub)  # its loop is closed: the stream is gone
