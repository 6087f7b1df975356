"""`EventRecorder`: the operator's core/v1 Events, written through a `KubeStore`.

What it owns:
- correlation in memory, as client-go's recorder does: a repeat of the involved object's latest event bumps
  that event's `count` with a patch; no list of Events per call (the operator's RBAC grants events create
  and patch only);
- one decision, one event: an event whose involved object carries `decision` (a digest of what the
  decision started from, see controller/apply.py) is named after it, so the same decision taken again, by
  this process (a status write refused or unanswered) or by a restarted one (a create answered 409
  AlreadyExists), records nothing new. A decision key already recorded by this process is not written at all;
- delivery across an API outage: a write the API could not take for now (no answer, 429, 5xx) is kept
  in a bounded queue, in order, and retried with backoff until it lands, instead of failing the caller
  (a reconcile must not fail, nor an event be lost, because the API was away for a second). Retries are
  idempotent: names are fixed when the event is made, counts are absolute values, and AlreadyExists on a
  create means it landed. Past the bound the oldest pending write is dropped, with a log line. Pending
  writes are tried again before each write of the `CachedStore` (so a decision's events still land before
  its status write) and by a task with backoff in between.

Memory is bounded (`memory` subjects and decision keys, `pending` writes). Pending writes live in this
process only: an operator that exits with some still pending loses them (it says so at stop).

Use it from the event loop's thread, as `CachedStore`: every call, retries included, runs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollouts.kube.client import ApiError, KubeStore, Unreachable
from rollouts.kube.kinds import KINDS
from rollouts.store.protocol import AlreadyExists, Invalid, JSONObject, NotFound

log = logging.getLogger("rollouts.kube.events")

EVENT_MEMORY = 10_000  # involved objects whose latest event is remembered; decision keys remembered
PENDING_EVENTS = 1_000  # event writes kept for a retry while the API does not take them
RETRY_FIRST, RETRY_MAX = 0.1, 2.0  # seconds between retries of a pending write: first, and at most

Subject = tuple[str, str, str, str]  # namespace, kind, name, uid of the involved object


def unavailable(exc: BaseException) -> bool:
    """Whether a failed call says the API cannot take it for now, so the same call is worth making again
    later: no answer (refused, reset, timed out), 429, or a 5xx. Anything else (Invalid, 403...) says the
    call itself is wrong."""
    if isinstance(exc, Unreachable):
        return True
    return isinstance(exc, ApiError) and (exc.code == 429 or exc.code >= 500)


@dataclass
class _Latest:
    """The involved object's latest event as this process last wrote (or queued) it."""

    name: str
    type: str
    reason: str
    message: str
    source: str
    body: JSONObject


@dataclass
class _Write:
    """One event write: create `body`, or (a bump) patch its count and lastTimestamp onto `body`'s name;
    a bump whose event is gone (events expire) creates `fresh` instead."""

    body: JSONObject
    create: bool
    fresh: JSONObject | None = None

    @property
    def key(self) -> tuple[str, str]:
        meta = self.body["metadata"]
        return meta["namespace"], meta["name"]


class EventRecorder:
    def __init__(self, store: KubeStore, *, memory: int = EVENT_MEMORY, pending: int = PENDING_EVENTS,
                 retry_first: float = RETRY_FIRST, retry_max: float = RETRY_MAX,
                 now: Callable[[], str] | None = None) -> None:
        self.store = store
        self.memory, self.bound = memory, pending
        self.retry_first, self.retry_max = retry_first, retry_max
        self._now = now or _timestamp
        self._latest: OrderedDict[Subject, _Latest] = OrderedDict()
        self._decisions: OrderedDict[str, None] = OrderedDict()  # event names of decisions recorded
        self._queue: deque[_Write] = deque()
        self._queued: dict[tuple[str, str], _Write] = {}  # the queued write of each event
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0   # pending writes dropped past the bound
        self.deferred = 0  # writes that could not be made at once and were queued

    # -- recording ---------------------------------------------------------------------------------------

    def record(self, involved: Mapping[str, Any], type: str, reason: str, message: str,
               source: str = "rollouts-controller") -> JSONObject:
        """Record one event; returns it as written (or as it will be, when queued)."""
        if type not in ("Normal", "Warning"):
            raise Invalid(f'event type "{type}" is not one of Normal, Warning')
        kind, name = involved.get("kind"), involved.get("name")
        if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
            raise Invalid("an event's involved object needs kind and name")
        scoped = kind in KINDS and not KINDS[kind].namespaced
        ref_ns = "" if scoped else str(involved.get("namespace") or self.store.config.namespace)
        namespace = ref_ns or "default"
        ref: JSONObject = {k: involved[k] for k in ("apiVersion", "kind", "name", "uid") if involved.get(k)}
        if ref_ns:
            ref["namespace"] = ref_ns
        subject: Subject = (namespace, kind, name, str(involved.get("uid") or ""))
        # What identifies the decision this event reports (a resourceVersion, from callers that have nothing
        # better): the same decision taken again maps to the same name.
        basis = str(involved.get("decision") or involved.get("resourceVersion") or "")
        decided = ""
        if basis:
            digest = hashlib.sha256("\0".join((*subject, basis, type, reason, message)).encode()).hexdigest()
            decided = f"{name}.{digest[:16]}"
            if decided in self._decisions:
                self._decisions.move_to_end(decided)
                last = self._latest.get(subject)
                return copy.deepcopy(last.body) if last is not None and last.name == decided else {
                    "apiVersion": "v1", "kind": "Event", "metadata": {"name": decided, "namespace": namespace}}
        now = self._now()
        fresh: JSONObject = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": decided or f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": ref, "type": type, "reason": reason, "message": message,
            "source": {"component": source}, "count": 1, "firstTimestamp": now, "lastTimestamp": now,
            "reportingComponent": source,
        }
        last = self._latest.get(subject)
        if last is not None and (last.type, last.reason, last.message, last.source) == (type, reason, message, source):
            # A repeat of the latest event (a new decision that says the same): one more occurrence of it.
            bumped = {**last.body, "count": int(last.body.get("count") or 1) + 1, "lastTimestamp": now}
            write = _Write(bumped, create=False, fresh=fresh)
        else:
            write = _Write(fresh, create=True)
        answer = self._deliver(write)
        body = answer if answer is not None else write.body  # as written, or as it will be
        self._remember(subject, _Latest(body["metadata"]["name"], type, reason, message, source, body))
        if decided:
            self._decisions[decided] = None
            while len(self._decisions) > self.memory:
                self._decisions.popitem(last=False)
        return body

    def _remember(self, subject: Subject, latest: _Latest) -> None:
        self._latest[subject] = latest
        self._latest.move_to_end(subject)
        while len(self._latest) > self.memory:
            self._latest.popitem(last=False)

    def _deliver(self, write: _Write) -> JSONObject | None:
        """Write now, or queue: behind writes already pending (events keep their order), or when the API
        cannot take it. The answer when written now, None when queued."""
        if self._queue and self.flush():
            self._enqueue(write)
            return None
        try:
            return self._send(write)
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("event write deferred until the API answers: %s", exc)
            self._enqueue(write)
            return None

    def _send(self, write: _Write) -> JSONObject:
        """One attempt at `write`, made so that repeating it after an unanswered attempt changes nothing."""
        body = write.body
        meta = body["metadata"]
        if write.create:
            try:
                return self.store.create(body)
            except AlreadyExists:
                # It landed (an attempt whose answer was lost, or the same decision recorded before a restart).
                if int(body.get("count") or 1) > 1:  # a create queued, then bumped while it waited
                    return self.store.patch("Event", meta["namespace"], meta["name"],
                                            {"count": body["count"], "lastTimestamp": body["lastTimestamp"]})
                return body
        try:
            return self.store.patch("Event", meta["namespace"], meta["name"],
                                    {"count": body["count"], "lastTimestamp": body["lastTimestamp"]})
        except NotFound:
            if write.fresh is None:
                raise
            # The event expired (events have a TTL): record a new one.
            try:
                return self.store.create(write.fresh)
            except AlreadyExists:
                return write.fresh

    # -- the pending queue -------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _enqueue(self, write: _Write) -> None:
        self.deferred += 1
        queued = self._queued.get(write.key)
        if queued is not None:
            # Still waiting: the newer body replaces it (a count is an absolute value, a create stays one).
            queued.body = write.body
            queued.create = queued.create or write.create
            queued.fresh = queued.fresh or write.fresh
            return
        self._queue.append(write)
        self._queued[write.key] = write
        while len(self._queue) > self.bound:
            dropped = self._queue.popleft()
            del self._queued[dropped.key]
            self.dropped += 1
            log.warning("event dropped: %d event writes pending while the API does not take them (bound %d); "
                        "%s %s/%s not recorded (%d dropped so far)", len(self._queue) + 1, self.bound,
                        dropped.body.get("reason"), dropped.key[0], dropped.key[1], self.dropped)
        self._start_retrying()

    def _start_retrying(self) -> None:
        if self._closed or (self._task is not None and not self._task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next `flush()` (before any write of the cache) delivers them
        self._task = loop.create_task(self._retry())

    def flush(self) -> int:
        """Try the pending writes, oldest first, stopping at the first the API cannot take; returns how many
        are still pending. `CachedStore` calls it before each of its writes, so that a decision's events land
        before the status that follows them, as they would have without the outage."""
        while self._queue:
            write = self._queue[0]
            try:
                self._send(write)
            except Exception as exc:  # noqa: BLE001 - retried later, or dropped with a log line
                if unavailable(exc):
                    return len(self._queue)
                log.warning("event dropped: %s %s/%s: %s", write.body.get("reason"), write.key[0], write.key[1],
                            exc)
            self._queue.popleft()
            del self._queued[write.key]
            if not self._queue:
                log.info("pending events written: the API takes event writes again")
        return 0

    async def _retry(self) -> None:
        """Between writes of the cache: retry with backoff until the queue is empty. On the event loop's thread,
        as every write of the cache is (an API that hangs holds it as long as any other write would)."""
        delay = self.retry_first
        while self._queue and not self._closed:
            await asyncio.sleep(delay)
            self.flush()
            delay = min(delay * 2, self.retry_max)

    # -- running -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._closed = False
        if self._queue:
            self._start_retrying()

    async def stop(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue:
            log.warning("%d event writes still pending at stop, not recorded", len(self._queue))


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
