"""The controller's work queue of object keys, with client-go's workqueue semantics, on asyncio.

- De-duplication: a key added while it waits is queued once (the `dirty` set).
- A key is never handed to two workers at once: a key added while a worker holds it (`processing`) is
  queued again only when that worker calls `done`.
- `add_after(key, delay)`: the key is added once the delay passes (requeue-after); of several pending
  delays for one key the earliest wins, as client-go's delaying queue does.
- `add_rate_limited(key)`: per-key exponential backoff, `base * 2**failures` capped at `cap` (client-go's
  ItemExponentialFailureRateLimiter, 5 ms .. 1000 s); `forget(key)` resets it after a success.
- `shutdown(drain=True)`: no more adds; workers finish what is queued and in flight, then `get` returns
  None. `run(handler, workers)` runs a bounded number of workers until shutdown.
- Metrics hooks (`QueueMetrics`): depth, adds, retries, queue latency and work duration, as counters on
  the queue and optional callbacks (Argo and controller-runtime export the same figures).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class QueueMetrics:
    """Counters, plus callbacks called on each change (e.g. to set Prometheus gauges and counters)."""

    adds: int = 0
    retries: int = 0
    depth: int = 0
    on_depth: Callable[[int], None] | None = None
    on_add: Callable[[], None] | None = None
    on_retry: Callable[[], None] | None = None
    on_latency: Callable[[float], None] | None = None  # seconds from add to a worker taking the key
    on_work_duration: Callable[[float], None] | None = None  # seconds a worker held the key
    latencies: list[float] = field(default_factory=list)  # the last few, for tests and debugging

    def _depth(self, depth: int) -> None:
        self.depth = depth
        if self.on_depth:
            self.on_depth(depth)


class ExponentialBackoff(Generic[K]):
    """Per-key failure counting: the n-th consecutive failure waits base * 2**(n-1), at most cap."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base, self.cap = base, cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 60:  # 2**60 * base is already far above any cap; avoids float overflow
            return self.cap
        return float(min(self.base * 2**failures, self.cap))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    def __init__(self, backoff: ExponentialBackoff[K] | None = None, metrics: QueueMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self.metrics = metrics or QueueMetrics()
        self._clock = clock
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._waiting: dict[K, tuple[float, asyncio.TimerHandle]] = {}  # add_after: key -> (due, timer)
        self._changed = asyncio.Condition()
        self._shutting_down = False

    # -- adding ----------------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self.metrics.adds += 1
        if self.metrics.on_add:
            self.metrics.on_add()
        self._dirty.add(key)
        self._added_at.setdefault(key, self._clock())
        if key in self._processing:
            return  # queued again when its worker calls done()
        self._queue.append(key)
        self.metrics._depth(len(self._queue))
        self._notify()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= due:
                return  # an earlier wake-up is already scheduled
            pending[1].cancel()
        self._waiting[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: K) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> None:
        self.metrics.retries += 1
        if self.metrics.on_retry:
            self.metrics.on_retry()
        self.add_after(key, self.backoff.when(key))

    def forget(self, key: K) -> None:
        self.backoff.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.backoff.failures(key)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()
        try:
            asyncio.get_running_loop().create_task(wake())
        except RuntimeError:
            pass  # no loop yet: get() checks the queue before it waits

    # -- taking ----------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    async def get(self) -> K | None:
        """The next key (the caller must call `done`), or None once shut down and drained."""
        async with self._changed:
            while not self._queue:
                if self._shutting_down:
                    return None
                await self._changed.wait()
            key = self._queue.popleft()
            self.metrics._depth(len(self._queue))
            self._dirty.discard(key)
            self._processing.add(key)
            now = self._clock()
            latency = now - self._added_at.pop(key, now)
            self._started_at[key] = now
            self.metrics.latencies = (self.metrics.latencies + [latency])[-100:]
            if self.metrics.on_latency:
                self.metrics.on_latency(latency)
            return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if started is not None and self.metrics.on_work_duration:
            self.metrics.on_work_duration(self._clock() - started)
        if key in self._dirty:
            self._queue.append(key)
            self.metrics._depth(len(self._queue))
        self._notify()

    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    # -- stopping --------------------------------------------------------------------------------------

    async def shutdown(self, drain: bool = True) -> None:
        """Stop accepting keys; with `drain`, wait until queued and in-flight keys are done."""
        self._shutting_down = True
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        if not drain:
            self._queue.clear()
            self._dirty.clear()
        async with self._changed:
            self._changed.notify_all()
            while drain and (self._queue or self._processing):
                await self._changed.wait()

    async def run(self, handler: Callable[[K], Awaitable[float | None]], workers: int = 2) -> None:
        """Process keys with `workers` concurrent workers until shutdown.

        The handler returns None (done: forget the key's failures), a number of seconds (requeue after
        that long, as a reconcile's requeue-after) or raises (retry with backoff)."""
        async def worker() -> None:
            while True:
                key = await self.get()
                if key is None:
                    return
                try:
                    after = await handler(key)
                except asyncio.CancelledError:
                    self.done(key)
                    raise
                except Exception:  # noqa: BLE001 - any reconcile failure is retried with backoff
                    self.done(key)
                    self.add_rate_limited(key)
                    continue
                self.forget(key)
                self.done(key)
                if after is not None:
                    self.add_after(key, after)

        await asyncio.gather(*(worker() for _ in range(max(1, workers))))
