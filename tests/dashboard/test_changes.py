"""The dashboard's one follower of the store's change feed (api/changes.py), against a scripted store:
which streams it wakes, what a compacted feed does, and that many streams still mean one feed reader."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from rollouts.api.changes import ChangeHub
from rollouts.store.protocol import Change, Expired, StoreError


class ScriptedFeed:
    """A store whose watch answers from a script; counts how many watch calls run at once."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.version = 10
        self.calls: list[int] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def current_version(self) -> int:
        return self.version

    def watch(self, since: int, kinds: Any = None, timeout: float = 10.0, limit: int = 1000) -> list[Change]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append(since)
            step = self.script.pop(0) if self.script else []
        try:
            if isinstance(step, BaseException):
                raise step
            if not step:
                time.sleep(min(timeout, 0.05))
            return list(step)
        finally:
            with self.lock:
                self.running -= 1


def change(version: int, namespace: str) -> Change:
    return Change(version, "Rollout", namespace, "shop", "MODIFIED", {})


async def _next_news(hub: ChangeHub, timeout: float = 5.0) -> tuple[int, set[str] | None]:
    sub = await asyncio.to_thread(hub.subscribe, asyncio.get_running_loop())
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            news = await sub.next(timeout=0.2)
            if news is not None:
                return news
        raise AssertionError("no news")
    finally:
        hub.unsubscribe(sub)


CASES = [
    ("changes-name-their-namespaces", [[change(11, "team"), change(12, "default")]], (12, {"team", "default"})),
    ("expired-feed-means-every-namespace", [Expired(10, 40)], (10, None)),
    ("unreachable-store-is-retried", [StoreError("connection refused"), [change(13, "default")]], (13, {"default"})),
]


@pytest.mark.parametrize(("script", "expected"), [(s, e) for _, s, e in CASES], ids=[c[0] for c in CASES])
def test_change_hub_tells_streams_what_changed(script: list[Any], expected: tuple[int, set[str] | None]) -> None:
    feed = ScriptedFeed(script)
    hub = ChangeHub(lambda: feed, {"Rollout"}, poll=0.05)  # type: ignore[arg-type, return-value]
    try:
        assert asyncio.run(_next_news(hub)) == expected
    finally:
        hub.close()
    assert feed.calls[0] == 10  # followed from the version read when the first stream subscribed


def test_change_hub_many_streams_one_feed_reader() -> None:
    """64 open streams: one watch call at a time, each stream woken once with the version."""
    feed = ScriptedFeed([[], [], [change(20, "default")]])
    hub = ChangeHub(lambda: feed, {"Rollout"}, poll=0.05)  # type: ignore[arg-type, return-value]

    async def many() -> list[tuple[int, set[str] | None]]:
        loop = asyncio.get_running_loop()
        subs = [hub.subscribe(loop) for _ in range(64)]
        try:
            got = await asyncio.gather(*(s.next(timeout=5) for s in subs))
        finally:
            for s in subs:
                hub.unsubscribe(s)
        return [g for g in got if g is not None]

    try:
        news = asyncio.run(many())
    finally:
        hub.close()
    assert news == [(20, {"default"})] * 64
    assert feed.most_at_once == 1


def test_change_hub_stops_following_without_streams() -> None:
    feed = ScriptedFeed([])
    hub = ChangeHub(lambda: feed, {"Rollout"}, poll=0.05)  # type: ignore[arg-type, return-value]

    async def once() -> None:
        sub = hub.subscribe(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        hub.unsubscribe(sub)

    asyncio.run(once())
    deadline = time.monotonic() + 5
    while hub.following() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not hub.following()
    calls = len(feed.calls)
    time.sleep(0.2)
    assert len(feed.calls) == calls  # no stream left: nothing polls the store
