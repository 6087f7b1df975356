"""End-to-end harness: a real `rollouts controller` process (the operator) on a temporary home, which starts
that home's local cluster in the background (the process that runs pods, Service listeners and the ingress
proxy); the CLI as subprocesses, and requests through the real ingress proxy. Test code may still read the
home's SQLite store directly (`store()`); the product's clients all go through the cluster's API.

`RemoteCluster`: the other shape, a cluster started with `rollouts cluster up` on its own home and one or more
operators over its kubeconfig (as on a real cluster), with the API server's write log parsed per writer."""

from __future__ import annotations

import collections
import contextlib
import datetime
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rollouts.cluster.store import SQLiteStore
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


_WRITE = re.compile(r"^(\S+ \S+) INFO \S+: (\w+) (\S+) (\S+) -> (\d+) \((.*), [\d.]+ ms\)$")


@dataclass(frozen=True)
class Write:
    """One write the API server logged: when, verb, resource, namespace/name[/sub], answer code, User-Agent."""

    at: float
    verb: str
    resource: str
    target: str
    code: int
    agent: str

    @property
    def operator(self) -> str:
        """The operator identity that wrote it ("" when not an operator: the CLI, the cluster itself)."""
        return self.agent.split("/", 1)[1] if self.agent.startswith("rollouts-controller/") else ""


class RemoteCluster:
    """A local cluster started by `rollouts cluster up` in `root/cluster-home`, and operators run over its
    kubeconfig (`start_operator`), as replicas of the Deployment run on a real cluster; `close()` stops the
    operators and the cluster and waits until no process of the home is left."""

    def __init__(self, root: Path, probe_period: float = 0.2) -> None:
        self.root = root
        self.home, self.user = root / "cluster-home", root / "user"
        self.kubeconfig = self.home / "kubeconfig"
        self.probe_period = probe_period
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME", "POD_NAME")}
        self.env["HOME"] = str(self.user)
        self.operators: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def up(self) -> None:
        self.user.mkdir(parents=True, exist_ok=True)
        up = subprocess.run([sys.executable, "-m", "rollouts", "cluster", "up", "--home", str(self.home),
                             "--probe-period", str(self.probe_period)], env=self.env, capture_output=True,
                            text=True, timeout=90, check=False)
        if up.returncode != 0:
            raise AssertionError(f"rollouts cluster up failed ({up.returncode}): {up.stdout}{up.stderr}")

    def start_operator(self, name: str = "operator", leader_elect: bool = False,
                       wait: bool = True) -> subprocess.Popen[bytes]:
        """An operator over the kubeconfig, named `name` (its Lease identity and its User-Agent's)."""
        log = self.logs.setdefault(name, self.root / f"{name}.log")
        before = log.read_bytes().count(b"controller started") if log.exists() else 0
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "rollouts", "controller", "--kubeconfig", str(self.kubeconfig),
                 "--leader-elect" if leader_elect else "--no-leader-elect", "--log-format", "text",
                 "--metrics-address", ""],
                env={**self.env, "POD_NAME": name}, cwd=self.user, stdout=out, stderr=subprocess.STDOUT)
        self.operators[name] = process
        if wait:
            def running() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"operator {name} exited with {process.returncode}:\n{self.tails()}")
                return log.read_bytes().count(b"controller started") > before

            wait_until(running, 90, f"operator {name} to start")
        return process

    def signal_operator(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.operators[name]
        process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            process.wait(timeout=90)  # a graceful stop on a machine loaded 10x over takes its time

    def cli(self, *args: str, timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rollouts", *args],
                                env={**self.env, "KUBECONFIG": str(self.kubeconfig)}, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"rollouts {' '.join(args)}: {result.stdout}{result.stderr}\n{self.tails()}")
        return result

    def store(self) -> SQLiteStore:
        """The cluster's SQLite store, for test code only (the operators read through the API)."""
        return SQLiteStore(self.home / "state.db")

    def read(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        with self.store() as store:
            found = [o for o in store.list(kind, namespace) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def status(self, name: str) -> dict[str, Any]:
        return dict(((self.read("Rollout", name) or {}).get("status")) or {})

    def events(self, involved: str, namespace: str = "default") -> list[dict[str, Any]]:
        with self.store() as store:
            return [e for e in store.list("Event", namespace) if e["involvedObject"]["name"] == involved]

    def pod_pids(self) -> set[int]:
        with self.store() as store:
            pods = store.list("Pod", "default")
        return {int((p["metadata"].get("annotations") or {}).get("rollouts.io/pid") or 0) for p in pods} - {0}

    def apiserver_pid(self) -> int | None:
        from rollouts.cluster.apiserver.server import read_state

        running = read_state(self.home)
        return running.pid if running is not None else None

    def kill_apiserver(self) -> int:
        """SIGKILL the cluster process (the API server); its pods run on. Returns its port."""
        from rollouts.cluster.apiserver.server import read_state
        from tests.e2e.processes import alive

        running = read_state(self.home)
        assert running is not None, "no cluster runs"
        os.kill(running.pid, signal.SIGKILL)
        wait_until(lambda: not alive(running.pid), 10, "the API server process to die", interval=0.05)
        return running.port

    def writes(self) -> list[Write]:
        """Every write the API server logged so far (across its restarts), oldest first."""
        found = []
        try:
            lines = (self.home / "logs" / "apiserver.log").read_text(errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            match = _WRITE.match(line)
            if match:
                when = datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append(Write(when, match[2], match[3], match[4], int(match[5]), match[6]))
        return found

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{log.read_text(errors='replace')[-2500:]}"
                         for name, log in self.logs.items() if log.exists())

    def close(self) -> None:
        from tests.e2e.processes import home_processes, living

        left = home_processes(self.home)
        for process in self.operators.values():
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGCONT)  # a stopped one must be able to handle SIGTERM
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(self.home)],
                       env=self.env, capture_output=True, timeout=90, check=False)
        try:
            wait_until(lambda: not living(left | home_processes(self.home)), 30,
                       "every process of the cluster to exit")
        except AssertionError:
            for pid in living(left | home_processes(self.home)):  # none may leak into other tests
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            raise

    def __enter__(self) -> RemoteCluster:
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def actor_spans(writes: list[Write], namespace: str = "default") -> list[tuple[str, float, float]]:
    """The operators' turns at acting, in order: (identity, first write, last write) for each run of
    consecutive writes to `namespace` by one operator. Two actors at once shows as one identity's turn
    coming back after another's began (more turns than leaders) or as turns that overlap in time."""
    spans: list[tuple[str, float, float]] = []
    for write in writes:
        if not write.operator or not write.target.startswith(f"{namespace}/") or write.resource.startswith("leases"):
            continue
        if spans and spans[-1][0] == write.operator:
            spans[-1] = (write.operator, spans[-1][1], write.at)
        else:
            spans.append((write.operator, write.at, write.at))
    return spans


def conflicts_retried(writes: list[Write]) -> tuple[int, int]:
    """(writes by an operator answered 409 Conflict, those followed by a successful write of the same object by
    the same operator): a refused stale write is re-read and written again, never dropped or forced."""
    conflicts = retried = 0
    for i, write in enumerate(writes):
        if write.operator and write.code == 409 and write.verb != "create":
            conflicts += 1
            retried += any(later.operator == write.operator and later.target == write.target
                           and 200 <= later.code < 300 for later in writes[i + 1:])
    return conflicts, retried


def stale_write_refused(kubeconfig: Path, stale: dict[str, Any]) -> bool:
    """Whether the API refuses a status write carrying `stale`'s (outdated) resourceVersion with 409."""
    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config
    from rollouts.store.protocol import Conflict

    store = KubeStore(load_config(kubeconfig=kubeconfig), user_agent="chaos-stale-writer")
    try:
        store.update_status(stale)
    except Conflict:
        return True
    finally:
        store.close()
    return False
