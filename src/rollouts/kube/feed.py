"""The store contract's change feed (`watch(since, kinds)`) over Kubernetes watches, kept open between calls.

Callers poll: the dashboard asks every half second, `get -w` every second, each time from the last
version it saw. Opening one watch per kind per call would cost a TLS handshake per kind per poll, so a
`ChangeFeed` keeps one watch stream per kind open in a background thread (resumed from its last
resourceVersion when the server ends it, reconnected after drops) and buffers what they deliver; a
call returns the buffered changes after `since` of the kinds asked for, waiting until one arrives.

A stream covers changes after its `floor` (the version it was opened from, raised when old entries are
dropped from the bounded buffer). A call whose `since` is below a kind's floor cannot be answered from
the buffer; `changes` returns None and the caller opens watches just for that call. A 410 on a stream
removes it and is raised to the caller as `Expired`, who then lists again, as the store's callers do.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rollouts.kube.kinds import Kind
from rollouts.store.protocol import Change, ChangeType, StoreError

WATCH_SECONDS = 300  # how long one watch request lasts before the stream reopens it
GRACE = 0.05  # a burst of changes has settled once no stream delivered anything for this long


@dataclass
class _Stream:
    kind: Kind
    floor: int  # every change after this version is in the buffer while the stream is healthy
    position: int  # the last version seen (events and bookmarks): where a reopened watch resumes
    error: StoreError | None = None  # a 410: the stream is dead
    failing: StoreError | None = None  # a reconnect failed; still retrying
    connected: bool = False  # the current watch request was answered; its replay is on the way
    conn: http.client.HTTPConnection | None = None
    opened: int = 0  # watch requests sent, for tests and debugging
    thread: threading.Thread | None = field(default=None, repr=False)


class ChangeFeed:
    def __init__(self, connect: Callable[[float | None], http.client.HTTPConnection],
                 headers: Callable[[], dict[str, str]], prefix: str,
                 error: Callable[[Kind, int, dict[str, object]], StoreError],
                 unreachable: Callable[[BaseException], StoreError], max_changes: int = 10_000) -> None:
        self._connect, self._headers, self._prefix = connect, headers, prefix
        self._error, self._unreachable = error, unreachable
        self._max = max_changes
        self._cond = threading.Condition()
        self._buffer: deque[Change] = deque()
        self._streams: dict[str, _Stream] = {}
        self._closed = False
        self._last_append = 0.0

    def streams(self) -> dict[str, _Stream]:
        with self._cond:
            return dict(self._streams)

    def changes(self, since: int, kinds: dict[str, Kind], timeout: float, limit: int) -> list[Change] | None:
        """Changes after `since`, oldest first, waiting up to `timeout`; None if the buffer cannot tell."""
        deadline = time.monotonic() + timeout
        with self._cond:
            for name, kind in kinds.items():
                if name not in self._streams:
                    self._start(kind, since)
            while True:
                for name in kinds:
                    stream = self._streams[name]
                    if stream.error is not None:
                        del self._streams[name]
                        raise stream.error
                    if stream.failing is not None:
                        raise stream.failing
                    if since < stream.floor:
                        return None
                found = [c for c in self._buffer if c.kind in kinds and c.resource_version > since]
                remaining = deadline - time.monotonic()
                # A stream still connecting may hold older changes of its kind: wait until every stream
                # answered (the server replays from `since` at once) before cutting the list.
                ready = all(self._streams[name].connected for name in kinds)
                if (found and ready) or remaining <= 0:
                    break
                self._cond.wait(remaining)
            if found and len(kinds) > 1:
                # Streams of different kinds deliver independently: let the burst settle (no change for
                # GRACE) so changes of one moment come back together, oldest first.
                while (quiet := time.monotonic() - self._last_append) < GRACE and time.monotonic() < deadline:
                    self._cond.wait(GRACE - quiet)
                found = [c for c in self._buffer if c.kind in kinds and c.resource_version > since]
        return sorted(found, key=lambda c: c.resource_version)[:limit]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            streams = list(self._streams.values())
            self._cond.notify_all()
        for stream in streams:
            _abort(stream.conn)

    # -- the streams (one thread each) ----------------------------------------------------------------

    def _start(self, kind: Kind, since: int) -> None:
        stream = _Stream(kind, floor=since, position=since)
        stream.thread = threading.Thread(target=self._run, args=(stream,), daemon=True,
                                         name=f"watch-{kind.plural}")
        self._streams[kind.kind] = stream
        stream.thread.start()

    def _alive(self, stream: _Stream) -> bool:
        return not self._closed and self._streams.get(stream.kind.kind) is stream

    def _run(self, stream: _Stream) -> None:
        failures = 0
        while True:
            with self._cond:
                if not self._alive(stream):
                    return
            try:
                self._watch_once(stream)
                failures = 0
                with self._cond:
                    stream.failing = None
            except (OSError, ValueError, http.client.HTTPException) as exc:
                with self._cond:
                    if not self._alive(stream):
                        return
                    if failures:  # a first drop is retried quietly; a failed reconnect is reported
                        stream.failing = self._unreachable(exc)
                        self._cond.notify_all()
                failures += 1
                time.sleep(min(0.1 * 2 ** min(failures, 5), 2.0))
            if stream.error is not None:
                return

    def _watch_once(self, stream: _Stream) -> None:
        kind = stream.kind
        params = {"watch": "1", "resourceVersion": str(stream.position), "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(WATCH_SECONDS)}
        conn = self._connect(WATCH_SECONDS + 30)
        stream.conn = conn
        stream.opened += 1
        try:
            conn.request("GET", self._prefix + kind.path() + "?" + urllib.parse.urlencode(params),
                         headers=self._headers())
            response = conn.getresponse()
            with self._cond:
                stream.failing = None
                stream.connected = response.status < 400
                self._cond.notify_all()
            if response.status >= 400:
                self._fail(stream, self._error(kind, response.status, json.loads(response.read() or b"{}")))
                return
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                kind_of_event = event.get("type")
                if kind_of_event == "ERROR":
                    self._fail(stream, self._error(kind, int(obj.get("code") or 500), obj))
                    return
                meta = obj.get("metadata") or {}
                version = int(meta.get("resourceVersion") or 0)
                with self._cond:
                    if not self._alive(stream):
                        return
                    stream.position = max(stream.position, version)
                    if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                        change_type: ChangeType = kind_of_event
                        obj.setdefault("apiVersion", kind.api_version)
                        obj.setdefault("kind", kind.kind)
                        self._append(Change(version, kind.kind, meta.get("namespace") or "",
                                            meta.get("name") or "", change_type, obj))
        finally:
            with self._cond:
                stream.connected = False
            conn.close()

    def _append(self, change: Change) -> None:
        self._buffer.append(change)
        self._last_append = time.monotonic()
        while len(self._buffer) > self._max:
            dropped = self._buffer.popleft()
            owner = self._streams.get(dropped.kind)
            if owner is not None:
                owner.floor = max(owner.floor, dropped.resource_version)
        self._cond.notify_all()

    def _fail(self, stream: _Stream, error: StoreError) -> None:
        with self._cond:
            stream.error = error
            self._cond.notify_all()


def _abort(conn: http.client.HTTPConnection | None) -> None:
    # Shut the socket down so a reader blocked in recv() returns at once.
    sock = conn.sock if conn is not None else None
    if sock is not None:
        import socket

        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
