"""The data plane keeps serving while the controller's loop is stuck on SQLite (20.6): another process holds
the store's write lock for seconds, the controller's loop waits in a store write, and requests through the
ingress proxy are still answered at once, because the proxy and the Service listeners run on their own loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.demo.prometheus import free_port
from rollouts.runtime.local.dataplane import DataPlaneLoop, ThreadedIngressProxy, ThreadedServiceBalancer
from rollouts.runtime.local.services import Endpoint
from rollouts.runtime.local.traffic import TrafficStats

HOLD_SECONDS = 4.0
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app-stable", "namespace": "ns"},
           "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}}
INGRESS = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "app", "namespace": "ns"},
           "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
               "service": {"name": "app-stable", "port": {"number": 80}}}}]}}]}}
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@pytest.fixture
def pod() -> Iterator[int]:
    """A pod as a real process: Python's HTTP server on a free port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


class Client(threading.Thread):
    """Requests through the proxy, one after another, each with a timeout far below the lock's hold."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.results: list[tuple[float, int | str, float]] = []  # (sent at, status or error, seconds)
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=1.5) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    outcome: int | str = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.results.append((sent, outcome, time.monotonic() - sent))
                time.sleep(0.01)


def test_proxy_serves_while_another_process_holds_the_store_write_lock(tmp_path: Path, pod: int) -> None:
    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": "ns"},
                  "data": {"n": "0"}})
    measured: dict[str, Any] = {}

    async def scenario() -> None:
        data_plane = DataPlaneLoop()
        balancer = ThreadedServiceBalancer(data_plane, stats=TrafficStats())
        proxy = ThreadedIngressProxy(data_plane, balancer, stats=balancer._stats)
        await proxy.start()
        try:
            await balancer.ensure_service(SERVICE)
            balancer.set_endpoints("ns/app-stable", [Endpoint("127.0.0.1", pod, "app-1", "h1")])
            await proxy.update_ingresses([INGRESS])
            client = Client(f"http://127.0.0.1:{proxy.ports['ns/app']}/")
            client.start()
            await asyncio.sleep(0.5)
            locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(HOLD_SECONDS)],
                                      stdout=subprocess.PIPE, text=True)
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            # The controller's loop, stuck in a store write until the other process lets go.
            blocked_from = time.monotonic()
            store.patch("ConfigMap", "ns", "probe", {"data": {"n": "1"}})
            blocked_to = time.monotonic()
            locker.wait(timeout=30)
            await asyncio.sleep(0.3)
            client.stop.set()
            client.join(timeout=10)
            measured.update(blocked=(blocked_from, blocked_to), results=client.results)
        finally:
            await proxy.close()
            await balancer.close()
            data_plane.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    store.close()
    blocked_from, blocked_to = measured["blocked"]
    assert blocked_to - blocked_from >= HOLD_SECONDS / 2, "the store write was not held up: no stall to survive"
    during = [r for r in measured["results"] if blocked_from <= r[0] <= blocked_to]
    assert len(during) >= 20, f"too few requests while the loop was blocked: {len(during)}"
    assert all(status == 200 for _, status, _ in measured["results"]), [r for r in measured["results"]
                                                                        if r[1] != 200][:5]
    latencies = sorted(seconds for _, _, seconds in during)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\n{len(during)} requests while the controller's loop was blocked "
          f"{blocked_to - blocked_from:.1f}s: p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
