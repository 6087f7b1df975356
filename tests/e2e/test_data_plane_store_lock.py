"""The local cluster keeps serving through its ingress proxy while another process holds the store's write
lock for seconds in the middle of a release (20.6): the API server and the runtime's syncs wait on SQLite
(and with them the operator's writes), the data plane does not."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ControllerProcess, wait_until
from tests.e2e.manifests import CANARY

pytestmark = pytest.mark.integration

HOLD_SECONDS = 4.0
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def test_proxy_answers_while_another_process_holds_the_store_lock(controller: ControllerProcess,
                                                                  tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(CANARY)
    controller.cli("apply", "-f", str(manifest))
    controller.cli("status", "shop", "--timeout", "60s")
    url = f"http://127.0.0.1:{controller.ingress_port('shop')}/"
    results: list[tuple[float, int | str, float]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=1.5) as http:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    outcome: int | str = http.get(url).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                results.append((sent, outcome, time.monotonic() - sent))
                time.sleep(0.01)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        # A release makes the controller write (ReplicaSets, pods, status) while the lock is held.
        controller.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(controller.home / "state.db"),
                                   str(HOLD_SECONDS)], stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        held_from = time.monotonic()
        locker.wait(timeout=30)
        held_to = time.monotonic()
        # The controller went on once the lock was free: the release reached its canary.
        wait_until(lambda: controller.rollout("shop")["status"].get("currentPodHash")
                   != controller.rollout("shop")["status"].get("stableRS"), 30, "the release to start")
    finally:
        stop.set()
        thread.join(timeout=10)
    during = [r for r in results if held_from <= r[0] <= held_to]
    assert len(during) >= 20, f"too few requests while the lock was held: {len(during)}"
    assert all(status == 200 for _, status, _ in results), [r for r in results if r[1] != 200][:5]
    latencies = sorted(seconds for _, _, seconds in during)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\n{len(during)} requests while another process held the store lock {held_to - held_from:.1f}s: "
          f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
