"""End-to-end harness: a real `rollouts controller` process (the operator) on a temporary home, which starts
that home's local cluster in the background (the process that runs pods, Service listeners and the ingress
proxy); the CLI as subprocesses, and requests through the real ingress proxy. Test code may still read the
home's SQLite store directly (`store()`); the product's clients all go through the cluster's API."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rollouts.store.sqlite import SQLiteStore
from tests.integration.prometheus_server import free_port


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def demo_service_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"rollouts.demo.service" in cmdline:
                pids.append(int(entry.name))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return f"{pid}: " + (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return f"{pid}: ?"


class ControllerProcess:
    def __init__(self, home: Path, images: Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.images = images
        self.extra_args = extra_args
        self.env = {**os.environ, "ROLLOUTS_HOME": str(home)}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "controller.log"
        # Every controller gets its own metrics port, so parallel tests never fight over the default 8090.
        self.metrics_port = free_port()
        self.metrics_address = f"127.0.0.1:{self.metrics_port}"

    def start(self) -> None:
        """Start the operator and wait until it holds the home (its local cluster then answers)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rollouts", "controller", "--probe-period", "0.2", "--log-format", "text",
                 "--metrics-address", self.metrics_address,
                 *(["--images", str(self.images)] if self.images is not None else []), *self.extra_args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        process = self.process

        def running() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the controller exited with {process.returncode}:\n{self.tail()}")
            try:
                return (self.home / "controller.lock").read_text().strip() == str(process.pid)
            except OSError:
                return False

        wait_until(running, 40, "the controller to run on its local cluster", interval=0.05)

        def serving() -> bool:
            # /metrics and /healthz come up once the operator's caches are filled.
            if process.poll() is not None:
                raise AssertionError(f"the controller exited with {process.returncode}:\n{self.tail()}")
            try:
                return httpx.get(f"http://{self.metrics_address}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(serving, 40, "the controller's /healthz", interval=0.05)

    def kill(self) -> None:
        """SIGKILL the operator only: the local cluster and its pods keep running."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def cluster_pid(self) -> int | None:
        """The pid of this home's local cluster process (from its state file), None when not running."""
        from rollouts.cluster.apiserver.server import read_state

        running = read_state(self.home)
        return running.pid if running is not None else None

    def pod_pids(self) -> set[int]:
        """The processes the local cluster runs for pods (and their children)."""
        from tests.e2e.processes import descendants

        pid = self.cluster_pid()
        return descendants(pid) if pid is not None else set()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop_leaving_no_pods(self) -> None:
        """Stops the operator, then the home's local cluster (`rollouts cluster down`), and waits until no
        process of this home is left: the cluster, its pods and jobs (only this home's: other tests may be
        running pods at the same time)."""
        from tests.e2e.processes import home_processes, living

        left = home_processes(self.home) | self.pod_pids()
        self.stop()
        down = subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(self.home)],
                              env=self.env, capture_output=True, text=True, timeout=90, check=False)

        def remaining() -> list[str]:
            return [_cmdline(pid) for pid in sorted(living(left | home_processes(self.home)))]

        try:
            wait_until(lambda: not remaining(), 60, f"every process of {self.home} to exit")
        except AssertionError as exc:
            still = remaining()
            for pid in living(left | home_processes(self.home)):  # this test's own: none may leak
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"{exc}; still running (now killed): {still}; cluster down said: "
                                 f"{down.stdout}{down.stderr}; cluster starts in its log: "
                                 f"{self._cluster_starts()}") from None

    def _cluster_starts(self) -> list[str]:
        try:
            lines = (self.home / "logs" / "apiserver.log").read_text().splitlines()
        except OSError:
            return []
        return [line[:160] for line in lines if "start" in line.lower() or "Traceback" in line][-10:]

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rollouts", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"rollouts {' '.join(args)} failed ({result.returncode}): "
                                 f"{result.stdout}{result.stderr}\n--- controller log ---\n{self.tail()}")
        return result

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def store(self) -> SQLiteStore:
        return SQLiteStore(self.home / "state.db")

    def rollout(self, name: str, namespace: str = "default") -> dict[str, Any]:
        with self.store() as store:
            return store.get("Rollout", namespace, name)

    def ingress_port(self, name: str, namespace: str = "default") -> int:
        def port() -> int | None:
            with self.store() as store:
                value = store.get("Ingress", namespace, name)["metadata"]["annotations"].get("rollouts.io/port")
            return int(value) if value else None

        return int(wait_until(port, 20, f"a port for Ingress {name}"))


class Load:
    """Steady requests through the ingress in a background thread, counted per answering color."""

    def __init__(self, port: int, rate: float = 40.0) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.interval = 1.0 / rate
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(self.interval):
                try:
                    response = client.get(self.url)
                    color = response.json().get("color", "?") if response.status_code == 200 else "?"
                    self.counts[f"{color}:{response.status_code}"] += 1
                except (httpx.HTTPError, ValueError):
                    self.counts["error"] += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def sample_colors(port: int, requests: int = 100) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    with httpx.Client(timeout=5) as client:
        for _ in range(requests):
            response = client.get(f"http://127.0.0.1:{port}/")
            counts[response.json()["color"] if response.status_code == 200 else str(response.status_code)] += 1
    return counts
