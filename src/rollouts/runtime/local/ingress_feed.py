"""Ingress changes into the ingress proxy as they happen: a thread of its own follows the store's change feed
for kind Ingress alone and, on each change, reads the Ingresses and hands them to the proxy.

Why not in the runtime's sync pass: that pass starts and stops pods, writes their status and the Services'
endpoints first; with many pods to reconcile on a loaded machine it took seconds, and a canary-weight change
waited behind all of it (and behind the next pass when it arrived mid-pass), so a short step could pass in the
data plane unseen. Here a weight change costs one feed read, one list of the Ingresses and one table swap on
the data-plane loop, whatever the pods are doing.

One writer: while a feed runs, the runtime's sync pass leaves the proxy's routes alone, so an older list read
by a slow pass can never overwrite a newer one. The list is read again every `resync_seconds` even without a
change (an unchanged list is not applied again), which repairs anything a failed apply left behind.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rollouts.store.protocol import Expired, ObjectStore

log = logging.getLogger(__name__)

KIND = "Ingress"
# How long one feed read waits for a change: also how soon `stop()` is noticed.
WAIT_SECONDS = 1.0
RESYNC_SECONDS = 5.0
RETRY_SECONDS = 1.0

Apply = Callable[[list[dict[str, Any]]], object]  # what it returns is not used


def digest(ingresses: list[dict[str, Any]]) -> str:
    """What identifies one list of Ingresses: each one's name and resourceVersion."""
    return json.dumps([[i["metadata"].get("namespace"), i["metadata"]["name"], i["metadata"].get("resourceVersion")]
                       for i in ingresses])


class IngressFeed:
    """Follows the store's Ingresses and calls `apply(ingresses)` with the whole list after each change."""

    def __init__(self, store: ObjectStore, apply: Apply, *, resync_seconds: float = RESYNC_SECONDS,
                 wait_seconds: float = WAIT_SECONDS) -> None:
        self.store = store
        self._apply = apply
        self._resync = resync_seconds
        self._wait = wait_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._digest: str | None = None
        self.reads = 0  # lists read from the store
        self.applied = 0  # lists handed to the proxy
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="rollouts-ingress-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _main(self) -> None:
        since: int | None = None
        listed = 0.0
        while not self._stop.is_set():
            try:
                if since is None:
                    since = self.store.current_version()
                    self._apply_current()
                    listed = time.monotonic()
                    continue
                before = self.store.current_version()
                changes = self.store.watch(since, {KIND}, timeout=self._wait)
                if changes:
                    since = changes[-1].resource_version
                else:
                    # Nothing of ours up to `before`: later reads need not scan the other kinds' changes again.
                    since = max(since, before)
                    if time.monotonic() - listed < self._resync:
                        continue
                self._apply_current()
                listed = time.monotonic()
            except Expired:
                since = None  # the feed was compacted past us: read the list afresh
            except Exception:
                self.failures += 1
                log.exception("ingress feed: reading or applying the Ingresses failed; retrying")
                since = None
                self._digest = None
                self._stop.wait(RETRY_SECONDS)

    def _apply_current(self) -> None:
        ingresses = self.store.list(KIND)
        self.reads += 1
        current = digest(ingresses)
        if current == self._digest:
            return
        self._apply(ingresses)
        self._digest = current
        self.applied += 1
