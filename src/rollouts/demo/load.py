"""The demo's load generator: a steady request rate through the ingress, counting answers per version (the
`X-Version` header the demo service sets) and per status class. Counters only grow; callers take
snapshots and subtract them to see what happened in between."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

NO_ANSWER = "(no answer)"


@dataclass(frozen=True)
class LoadSnapshot:
    """Counts at one moment: answers per version, failures (5xx or no answer) per version."""

    by_version: dict[str, int] = field(default_factory=dict)
    failed_by_version: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_version.values())

    @property
    def failed(self) -> int:
        return sum(self.failed_by_version.values())

    def __sub__(self, earlier: LoadSnapshot) -> LoadSnapshot:
        def minus(now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
            return {k: v - then.get(k, 0) for k, v in now.items() if v - then.get(k, 0)}

        return LoadSnapshot(minus(self.by_version, earlier.by_version),
                            minus(self.failed_by_version, earlier.failed_by_version))


class LoadGenerator:
    """Sends GET / to `url` at `rate` requests per second until stopped."""

    def __init__(self, url: str, *, rate: float = 50.0, timeout: float = 2.0, max_in_flight: int = 100) -> None:
        self.url = url
        self.rate = rate
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._answers: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def snapshot(self) -> LoadSnapshot:
        return LoadSnapshot(dict(self._answers), dict(self._failures))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="demo-load")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        period = 1.0 / self.rate
        # Separate connections per request: the local ingress then picks a backend per request, as
        # ingress-nginx does per request whatever the client's connection reuse.
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=self._timeout) as session:
            next_at = time.monotonic()
            try:
                while True:
                    next_at += period
                    if self._slots.locked():
                        self._failures[NO_ANSWER] += 1  # the target is too slow to keep the rate
                        self._answers[NO_ANSWER] += 1
                    else:
                        await self._slots.acquire()
                        task = asyncio.create_task(self._one(session))
                        self._in_flight.add(task)
                        task.add_done_callback(self._in_flight.discard)
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            finally:
                for task in list(self._in_flight):
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _one(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(self.url) as response:
                await response.read()
                version = response.headers.get("X-Version", NO_ANSWER)
                self._answers[version] += 1
                if response.status >= 500:
                    self._failures[version] += 1
        except (aiohttp.ClientError, TimeoutError, OSError):
            self._answers[NO_ANSWER] += 1
            self._failures[NO_ANSWER] += 1
        finally:
            self._slots.release()
