"""The work queue's client-go semantics: de-duplication, one worker per key, delays, backoff, drain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rollouts.kube.workqueue import ExponentialBackoff, QueueMetrics, WorkQueue


def _run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 10))


def test_workqueue_deduplicates_waiting_keys() -> None:
    async def body() -> list[str | None]:
        queue: WorkQueue[str] = WorkQueue()
        for key in ("a", "b", "a", "a", "c", "b"):
            queue.add(key)
        assert len(queue) == 3 and queue.metrics.adds == 3
        taken = [await queue.get() for _ in range(3)]
        for key in taken:
            assert key is not None
            queue.done(key)
        return taken
    assert _run(body) == ["a", "b", "c"]


def test_workqueue_key_added_while_processing_waits_for_done() -> None:
    async def body() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        assert await queue.get() == "a"
        queue.add("a")  # changed while a worker holds it
        assert len(queue) == 0 and queue.processing() == {"a"}
        queue.done("a")
        assert len(queue) == 1
        assert await queue.get() == "a"
        queue.done("a")
    _run(body)


def test_workqueue_never_runs_one_key_on_two_workers() -> None:
    async def body() -> tuple[int, int]:
        queue: WorkQueue[str] = WorkQueue()
        running: set[str] = set()
        overlap = 0
        calls = 0

        async def handler(key: str) -> None:
            nonlocal overlap, calls
            calls += 1
            if key in running:
                overlap += 1
            running.add(key)
            await asyncio.sleep(0.01)
            if calls < 20:
                queue.add(key)  # keep re-adding the key being processed
            running.discard(key)

        queue.add("hot")
        queue.add("other")
        worker = asyncio.create_task(queue.run(handler, workers=4))
        while calls < 20:
            await asyncio.sleep(0.005)
        await queue.shutdown()
        await worker
        return overlap, calls
    overlap, calls = _run(body)
    assert overlap == 0 and calls >= 20


def test_workqueue_add_after_keeps_the_earliest_delay() -> None:
    async def body() -> float:
        queue: WorkQueue[str] = WorkQueue()
        started = time.monotonic()
        queue.add_after("a", 5.0)
        queue.add_after("a", 0.05)  # earlier: replaces the 5 s wake-up
        queue.add_after("a", 1.0)  # later: ignored
        assert len(queue) == 0
        assert await queue.get() == "a"
        return time.monotonic() - started
    assert 0.04 <= _run(body) < 0.9


@pytest.mark.parametrize("base, cap, expected", [
    (0.005, 1000.0, [0.005, 0.01, 0.02, 0.04, 0.08]),
    (1.0, 3.0, [1.0, 2.0, 3.0, 3.0, 3.0]),
], ids=["client-go-defaults", "capped"])
def test_workqueue_backoff_is_exponential_per_key_and_capped(base: float, cap: float,
                                                             expected: list[float]) -> None:
    backoff: ExponentialBackoff[str] = ExponentialBackoff(base, cap)
    assert [backoff.when("a") for _ in expected] == expected
    assert backoff.when("b") == base  # per key
    backoff.forget("a")
    assert backoff.when("a") == base
    for _ in range(200):
        backoff.when("c")
    assert backoff.when("c") == cap  # no overflow after many failures


def test_workqueue_run_retries_failures_with_backoff_and_honours_requeue_after() -> None:
    async def body() -> tuple[list[str], QueueMetrics, int]:
        metrics = QueueMetrics()
        queue: WorkQueue[str] = WorkQueue(ExponentialBackoff(0.01, 0.05), metrics)
        seen: list[str] = []

        async def handler(key: str) -> float | None:
            seen.append(key)
            if key == "flaky" and seen.count("flaky") < 3:
                raise RuntimeError("reconcile failed")
            if key == "periodic" and seen.count("periodic") < 2:
                return 0.02  # requeue-after
            return None

        queue.add("flaky")
        queue.add("periodic")
        worker = asyncio.create_task(queue.run(handler, workers=2))
        while seen.count("flaky") < 3 or seen.count("periodic") < 2:
            await asyncio.sleep(0.005)
        await queue.shutdown()
        await worker
        return seen, metrics, queue.num_requeues("flaky")
    seen, metrics, requeues = _run(body)
    assert seen.count("flaky") == 3 and seen.count("periodic") == 2
    assert metrics.retries == 2 and requeues == 0  # forgotten after the success
    assert metrics.adds == 5 and metrics.depth == 0 and len(metrics.latencies) == 5


def test_workqueue_shutdown_drains_queued_and_in_flight_keys() -> None:
    async def body() -> tuple[list[str], bool]:
        queue: WorkQueue[str] = WorkQueue()
        done: list[str] = []

        async def handler(key: str) -> None:
            await asyncio.sleep(0.02)
            done.append(key)

        for n in range(6):
            queue.add(f"k{n}")
        worker = asyncio.create_task(queue.run(handler, workers=2))
        await asyncio.sleep(0.005)
        await queue.shutdown(drain=True)
        queue.add("late")  # refused after shutdown
        await worker
        return done, await queue.get() is None
    done, empty = _run(body)
    assert sorted(done) == [f"k{n}" for n in range(6)] and empty


def test_workqueue_bounded_workers() -> None:
    async def body() -> int:
        queue: WorkQueue[int] = WorkQueue()
        active = peak = 0

        async def handler(key: int) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

        for n in range(20):
            queue.add(n)
        worker = asyncio.create_task(queue.run(handler, workers=3))
        await queue.shutdown()
        await worker
        return peak
    assert _run(body) == 3


def test_workqueue_metrics_callbacks() -> None:
    depths: list[int] = []
    durations: list[float] = []
    metrics = QueueMetrics(on_depth=depths.append, on_work_duration=durations.append)

    async def body() -> None:
        queue: WorkQueue[str] = WorkQueue(metrics=metrics)
        queue.add("a")
        queue.add("b")
        key = await queue.get()
        assert key == "a"
        queue.done(key)
    _run(body)
    assert depths == [1, 2, 1] and len(durations) == 1
