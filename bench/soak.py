"""Soak benchmark: does a controller stay flat over time?

A real `rollouts controller` process on a temporary home with `infra/rollouts/` applied (images mapped by
infra/rollouts/local-images.yaml), and steady requests through every Ingress, for a bounded time. Each
sample (every minute by default) records the controller's RSS, its open file descriptors, the SQLite
files' size (state.db with its -wal and -shm) and the size of its /metrics answer. At the end it prints the
samples and each figure's slope per minute over the samples after warm-up (least squares); flat means a
slope near zero.

Warm-up: under load the ingress proxy's request counters fill a 35-minute ring of per-second buckets
(about 3 MB per service and version), so RSS rises a little for the first 35 minutes and is flat after;
`--warmup` (samples left out of the slopes) past 35 shows that part on a long run.

    python bench/soak.py                # 10 minutes
    python bench/soak.py --minutes 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import ControllerProcess, wait_until  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra" / "rollouts"
FIGURES = ("rss_mb", "fds", "sqlite_kb", "metrics_kb")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sqlite_kb(home: Path) -> float:
    files = [home / "state.db", home / "state.db-wal", home / "state.db-shm"]
    return sum(f.stat().st_size for f in files if f.exists()) / 1024


def metrics_kb(address: str) -> float:
    return len(httpx.get(f"http://{address}/metrics", timeout=10).content) / 1024


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, value) points, per minute (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


class Load:
    """Requests at `rate` per second in total, spread over the ingresses (Host header set per rule)."""

    def __init__(self, targets: list[tuple[int, str]], rate: float) -> None:
        self.targets = targets
        self.interval = len(targets) / rate
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in targets]

    def _run(self, target: tuple[int, str]) -> None:
        port, host = target
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(self.interval):
                try:
                    response = client.get(f"http://127.0.0.1:{port}/", headers={"Host": host})
                    self.failed += response.status_code >= 500
                except httpx.HTTPError:
                    self.failed += 1
                self.sent += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def ingress_targets(controller: ControllerProcess) -> list[tuple[int, str]]:
    with controller.store() as store:
        names = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in store.list("Ingress")
                 if not o["metadata"]["name"].endswith("-canary")]
    targets = []
    for namespace, name in names:
        port = controller.ingress_port(name, namespace)
        with controller.store() as store:
            rules = store.get("Ingress", namespace, name).get("spec", {}).get("rules") or [{}]
        targets.append((port, str(rules[0].get("host") or "localhost")))
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between samples (default 60)")
    parser.add_argument("--warmup", type=int, default=1, help="samples left out of the slopes (default 1)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second in total (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rollouts-soak-") as tmp:
        home = Path(tmp) / "home"
        controller = ControllerProcess(home, images=INFRA / "local-images.yaml")
        controller.start()
        try:
            controller.cli("apply", "-f", str(INFRA))
            assert controller.process is not None
            pid = controller.process.pid
            wait_until(lambda: all(r.get("status", {}).get("phase") == "Healthy"
                                   for r in controller.store().list("Rollout")), 180, "every rollout Healthy")
            targets = ingress_targets(controller)
            print(f"controller pid {pid}, {len(targets)} ingresses, {args.rate:g} req/s, "
                  f"{args.minutes:g} min, a sample every {args.interval:g} s", flush=True)
            print(f"{'minute':>6} " + " ".join(f"{f:>11}" for f in FIGURES) + f" {'requests':>9} {'5xx':>5}")
            samples: list[tuple[float, dict[str, float]]] = []
            started = time.monotonic()
            end = started + args.minutes * 60
            with Load(targets, args.rate) as load:
                next_at = started
                while True:
                    minute = (time.monotonic() - started) / 60
                    row = {"rss_mb": rss_mb(pid), "fds": float(open_fds(pid)), "sqlite_kb": sqlite_kb(home),
                           "metrics_kb": metrics_kb(controller.metrics_address)}
                    samples.append((minute, row))
                    print(f"{minute:6.1f} " + " ".join(f"{row[f]:11.1f}" for f in FIGURES)
                          + f" {load.sent:9d} {load.failed:5d}", flush=True)
                    next_at += args.interval
                    if next_at > end + 1e-6:
                        break
                    time.sleep(max(0.0, next_at - time.monotonic()))
            kept = samples[args.warmup:]
            print(f"slope per minute after {args.warmup} warm-up sample(s), over {len(kept)} samples:")
            for figure in FIGURES:
                per_minute = slope([(m, row[figure]) for m, row in kept])
                print(f"  {figure:>11}: {per_minute:+.3f}/min")
            if controller.process.poll() is not None:
                print(f"the controller exited ({controller.process.returncode})")
                raise SystemExit(1)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"soak: {exc}") from exc
        finally:
            controller.stop()


if __name__ == "__main__":
    main()
