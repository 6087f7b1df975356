"""Rollback benchmark: time from the abort decision to 100 % of requests answered by the stable version.

A real `rollouts controller` process on a temporary home, a canary paused at 50 % behind the ingress proxy,
and a few clients sending requests continuously. The abort is written to the store (`status.abort`, what
`rollouts abort` writes) at t0; the rollback time is how long after t0 the last request answered by the
canary was sent: every later request got the stable version. Repeated a few times; prints each run, p50
and max.

    python bench/rollback.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import ControllerProcess, wait_until  # noqa: E402
from tests.e2e.manifests import shop_services  # noqa: E402

MANIFEST = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: shop, image: "rollouts-demo:blue"}]
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      abortScaleDownDelaySeconds: 30
      trafficRouting: {nginx: {stableIngress: shop}}
      steps: [{setWeight: 50}, {pause: {}}]
""" + shop_services()


class Requests:
    """Clients sending requests back to back; keeps (send time, answering color) for every request."""

    def __init__(self, port: int, clients: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.answers: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.get(self.url)
                    color = response.json()["color"] if response.status_code == 200 else str(response.status_code)
                except (httpx.HTTPError, ValueError, KeyError):
                    color = "error"
                with self._lock:
                    self.answers.append((sent, color))

    def __enter__(self) -> Requests:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def since(self, t0: float) -> list[tuple[float, str]]:
        with self._lock:
            return [a for a in self.answers if a[0] >= t0]


def one_run(ctl: ControllerProcess, port: int, clients: int, settle: float) -> tuple[float, int, int]:
    """(seconds from abort to the last non-stable answer, canary answers after t0, requests after t0)."""
    ctl.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
    wait_until(lambda: (ctl.rollout("shop").get("status") or {}).get("phase") == "Paused", 60, "the pause at 50 %")
    with Requests(port, clients) as load:
        wait_until(lambda: any(c == "yellow" for _, c in load.answers), 10, "the canary to answer")
        with ctl.store() as store:
            store.patch("Rollout", "default", "shop", {"status": {"abort": True}}, subresource="status")
            t0 = time.monotonic()
        # Wait until a full `settle` window of answers came only from the stable version.
        wait_until(lambda: (after := load.since(t0)) and after[-1][0] - max(
            [t for t, c in after if c != "blue"], default=t0) >= settle, 60, "the stable version only")
    after = load.since(t0)
    strays = [t for t, color in after if color != "blue"]
    seconds = max(strays) - t0 if strays else 0.0
    ctl.cli("set", "image", "shop", "shop=rollouts-demo:blue")  # back to the stable image for the next run
    ctl.cli("status", "shop", "--timeout", "60s")
    return seconds, len(strays), len(after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients sending back to back")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of stable-only answers to end a run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rollouts-bench-") as folder:
        ctl = ControllerProcess(Path(folder) / "home")
        ctl.start()
        try:
            manifest = Path(folder) / "shop.yaml"
            manifest.write_text(MANIFEST)
            ctl.cli("apply", "-f", str(manifest))
            ctl.cli("status", "shop", "--timeout", "60s")
            port = ctl.ingress_port("shop")
            times = []
            for run in range(1, args.runs + 1):
                seconds, strays, total = one_run(ctl, port, args.clients, args.settle)
                times.append(seconds)
                print(f"run {run}: {seconds * 1e3:7.1f} ms from the abort to stable-only answers "
                      f"({strays} of {total} requests sent after the abort reached the canary)", flush=True)
        finally:
            ctl.stop()
    print(f"abort -> 100 % stable over {len(times)} runs: p50 {statistics.median(times) * 1e3:.1f} ms, "
          f"max {max(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
