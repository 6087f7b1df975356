"""A weight change from the ingress feed's thread reaches requests without waiting for the data-plane loop:
with that loop held busy for seconds (a backlog of requests on a starved machine), the new table is in force
at once; a change that needs a listener (a new stable Ingress) still goes through the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx

from rollouts.runtime.local.dataplane import DataPlaneLoop, ThreadedIngressProxy, ThreadedServiceBalancer
from rollouts.runtime.local.routing import build_table
from tests.runtime.test_proxy import Pod, ingresses

HOLD_SECONDS = 3.0


def _weight(proxy: ThreadedIngressProxy) -> int | None:
    canaries = [r.canary.weight for r in proxy.table.routes if r.canary is not None]
    return canaries[0] if canaries else None


def _versions(url: str, count: int) -> set[str]:
    with httpx.Client(timeout=10) as client:
        return {client.get(url, headers={"Host": "app.example.com"}).text.split()[0] for _ in range(count)}


def test_weight_change_from_the_feed_thread_does_not_wait_for_a_busy_loop() -> None:
    plane = DataPlaneLoop()
    balancer = ThreadedServiceBalancer(plane)
    proxy = ThreadedIngressProxy(plane, balancer)
    plane.start()
    pods: list[Pod] = []
    try:
        plane.call(proxy.start(), 10)
        pods = [plane.call(Pod(f"app-{v}-1", v).start(), 10) for v in ("stable", "canary")]
        balancer.set_endpoints("ns/app-stable", [pods[0].endpoint("s111")])
        balancer.set_endpoints("ns/app-canary", [pods[1].endpoint("c222")])
        proxy.update_ingresses_from_thread(ingresses(0, header=False), timeout=10)  # allocates the listener
        url = f"http://127.0.0.1:{proxy.ports['ns/app']}/"
        assert _versions(url, 5) == {"stable"}

        held = threading.Event()

        async def hold() -> None:
            held.set()
            time.sleep(HOLD_SECONDS)  # the loop does nothing else meanwhile

        future = asyncio.run_coroutine_threadsafe(hold(), plane._loop)  # type: ignore[arg-type]
        assert held.wait(10)
        started = time.monotonic()
        proxy.update_ingresses_from_thread(ingresses(100, header=False), timeout=10)
        took = time.monotonic() - started
        assert _weight(proxy) == 100
        assert took < HOLD_SECONDS / 3, f"the weight waited {took:.2f} s for the loop"
        future.result(10)
        assert _versions(url, 5) == {"canary"}

        # Another stable Ingress needs a listener: not swapped in place, applied on the loop.
        more: list[dict[str, Any]] = [*ingresses(100, header=False), {
            "metadata": {"name": "other", "namespace": "ns", "annotations": {}},
            "spec": {"rules": [{"host": "other.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "app-stable", "port": {"number": 80}}}}]}}]}}]
        assert not proxy.swap_in_place(build_table(more))
        proxy.update_ingresses_from_thread(more, timeout=10)
        assert set(proxy.ports) == {"ns/app", "ns/other"}
    finally:
        for pod in pods:
            plane.call(pod.stop(), 10)
        plane.call(proxy.close(), 10)
        plane.call(balancer.close(), 10)
        plane.stop()
