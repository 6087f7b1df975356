"""Running the local cluster for a rollouts home: in the foreground, or as a background process that
`rollouts cluster up|down|status` manage through HOME/apiserver.json (pid, address, port, and the ingress
metrics port when served).

The process serves the API and, unless started with `--no-runtime`, hosts the cluster's own controllers
(`rollouts.cluster.host`): pods as processes, Service listeners, the ingress proxy, whose traffic counters
the API serves under /traffic/v1. `python -m rollouts.cluster.apiserver.server --home H` is the background
process's entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from rollouts.cluster.apiserver.app import ApiServer, Settings
from rollouts.cluster.apiserver.kubeconfig import api_token, write_kubeconfig
from rollouts.cluster.apiserver.tls import CERT_FILE, server_context
from rollouts.cluster.host import RuntimeHost
from rollouts.cluster.leftovers import stop_leftovers
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.cluster.store import SQLiteStore
from rollouts.store.home import HOME_ENV, database_path, rollouts_home

STATE_FILE = "apiserver.json"
LOG_FILE = "apiserver.log"


@dataclass(frozen=True)
class Running:
    pid: int
    address: str
    port: int
    ingress_metrics_port: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def read_state(home: Path) -> Running | None:
    try:
        data = json.loads(state_path(home).read_text())
        metrics = data.get("ingressMetricsPort")
        return Running(int(data["pid"]), str(data["address"]), int(data["port"]),
                       int(metrics) if metrics is not None else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    """Whether `pid` is a live rollouts process (the background server, or `rollouts cluster up
    --foreground`), not another program that got a recycled pid. This process counts too (a test serving
    the API from a thread)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # not ours to signal
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"rollouts" in cmdline.read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc (macOS): trust the pid
    except OSError:
        return True


def healthy(running: Running, home: Path, timeout: float = 1.0) -> bool:
    try:
        context = ssl.create_default_context(cafile=str(home / CERT_FILE))
        with urllib.request.urlopen(running.url + "/healthz", timeout=timeout,  # noqa: S310 (own URL)
                                    context=context) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def status(home: Path) -> Running | None:
    """The server of this home if its process is alive and answers /healthz."""
    running = read_state(home)
    if running is None or not _alive(running.pid) or not healthy(running, home):
        return None
    return running


def _port_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As aiohttp binds: connections of a killed server linger in TIME_WAIT without making the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


RUNTIME_LOCK_FILE = "cluster.lock"
EXIT_ALREADY_RUNNING = 3  # the background process's exit code when another one serves the home


class AlreadyRunning(RuntimeError):
    """Another local cluster process runs the runtime of this home."""


def _lock_runtime(home: Path) -> int:
    """An exclusive flock on HOME/cluster.lock, held for the process's life (the kernel drops it on any exit)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / RUNTIME_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise AlreadyRunning(f"another local cluster process already runs {home} (rollouts cluster status "
                             "says where)") from exc
    return fd


async def serve(home: Path, address: str = "127.0.0.1", port: int = 0, *, stop: asyncio.Event | None = None,
                settings: Settings | None = None, runtime: RuntimeOptions | None = None) -> None:
    """Serve HOME's store until `stop` is set (or SIGTERM/SIGINT when `stop` is not given).

    With `runtime`, the cluster's own controllers run too (pods, Service listeners, the ingress proxy); on
    the way out they stop first (every pod with its grace period), then the API server. None: API only."""
    if port == 0:
        previous = read_state(home)
        # Keep the previous port when it is free, so kubeconfigs copied elsewhere stay valid.
        if previous and previous.address == address and _port_free(address, previous.port):
            port = previous.port
    # One runtime per home, ever: two would each start the ReplicaSets' pods (and `down` could stop one).
    runtime_lock = _lock_runtime(home) if runtime is not None else None
    store = SQLiteStore(database_path(home))
    settings = settings or Settings()
    if settings.logs_dir is None:
        settings.logs_dir = home / "logs"
    host: RuntimeHost | None = None
    if runtime is not None:
        for problem in runtime.problems():
            raise ValueError(problem)
        # Defaults that follow the home (the image map HOME/images.yaml) are this cluster's home's.
        os.environ[HOME_ENV] = str(home)
        host = RuntimeHost(store, home, runtime)
        try:
            await asyncio.to_thread(host.start)
        except BaseException:
            store.close()
            raise
    try:
        await _serve_api(home, address, port, store, settings, host, runtime, stop)
    finally:
        if host is not None:
            await asyncio.to_thread(host.close)
        store.close()
        if runtime_lock is not None:
            os.close(runtime_lock)


async def _serve_api(home: Path, address: str, port: int, store: SQLiteStore, settings: Settings,
                     host: RuntimeHost | None, runtime: RuntimeOptions | None, stop: asyncio.Event | None) -> None:
    server = ApiServer(store, api_token(home), settings, traffic=host.stats if host is not None else None)
    server.objects.ensure_namespace("default")
    runner = web.AppRunner(server.build(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, address, port, ssl_context=server_context(home, address))
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    metrics_port = runtime.ingress_metrics_port if runtime is not None else None
    running = Running(os.getpid(), address, int(bound), metrics_port)
    write_kubeconfig(home, running.url, api_token(home), (home / CERT_FILE).read_bytes())
    state: dict[str, Any] = {"pid": running.pid, "address": address, "port": running.port}
    if metrics_port is not None:
        state["ingressMetricsPort"] = metrics_port
    state_path(home).write_text(json.dumps(state))
    if host is not None:
        await asyncio.to_thread(host.api_listening, running.url)  # the cluster's Prometheus, told where the API is
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if host is not None:
            # Pods stop before the API goes: clients watching see them terminate.
            await asyncio.to_thread(host.close)
        await runner.cleanup()
        if read_state(home) == running:
            state_path(home).unlink(missing_ok=True)


def start_background(home: Path, address: str = "127.0.0.1", port: int = 0, timeout: float = 20.0,
                     runtime: RuntimeOptions | None = RuntimeOptions()) -> Running:
    """Start the cluster as a detached process (own session) and wait until it answers. `runtime` None
    serves the API only (no pods are run)."""
    current = status(home)
    if current is not None:
        return current
    recorded = read_state(home)
    if recorded is not None and _alive(recorded.pid):
        # Starting a second server would leave this one running unseen.
        raise RuntimeError(f"the API server process of {home} (pid {recorded.pid}) is alive but does not answer "
                           f"on {recorded.url}; rollouts cluster down stops it")
    if port == 0 and recorded is not None and recorded.address == address and _port_free(address, recorded.port):
        # A cluster that died (SIGKILL, a crash) comes back on its port: the kubeconfig every client and
        # operator already read stays valid. The stale state file goes, so only the new process is waited for.
        port = recorded.port
    state_path(home).unlink(missing_ok=True)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / LOG_FILE).open("ab") as out:
        child = subprocess.Popen(  # noqa: S603 (fixed argument list, no shell)
            [sys.executable, "-m", "rollouts.cluster.apiserver.server", "--home", str(home),
             "--address", address, "--port", str(port),
             *(runtime.arguments() if runtime is not None else ["--no-runtime"])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = read_state(home)
        if running is not None and running.pid == child.pid and healthy(running, home):
            return running
        if child.poll() == EXIT_ALREADY_RUNNING:
            # Another start won the race for this home (two clients starting it at once): use that one.
            other = status(home)
            if other is not None:
                return other
        elif child.poll() is not None:
            raise RuntimeError(f"the API server exited with code {child.returncode}; see {logs / LOG_FILE}")
        time.sleep(0.05)
    child.terminate()
    raise RuntimeError(f"the API server did not answer within {timeout:.0f}s; see {logs / LOG_FILE}")


def stop_background(home: Path, timeout: float = 10.0) -> bool:
    """Stop this home's cluster and every pod and job process it runs, also those a killed cluster process
    left behind; False when no cluster process was running."""
    running = read_state(home)
    if running is None or not _alive(running.pid):
        state_path(home).unlink(missing_ok=True)
        stop_leftovers(home)
        return False
    os.kill(running.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(running.pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(running.pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(running.pid):
        os.kill(running.pid, signal.SIGKILL)
    state_path(home).unlink(missing_ok=True)
    stop_leftovers(home)  # what it could not stop in time
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rollouts-apiserver", description="The local cluster's API server.")
    parser.add_argument("--home")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--images", help="Image -> command map for the pods (default: the built-in one).")
    parser.add_argument("--probe-period", type=float, default=1.0)
    parser.add_argument("--max-pods", type=int, default=RuntimeOptions.max_pods)
    parser.add_argument("--ingress-metrics-port", type=int)
    parser.add_argument("--no-runtime", action="store_true", help="Serve the API only; run no pods.")
    parser.add_argument("--no-prometheus", action="store_true", help="Run no Prometheus pod.")
    parser.add_argument("--prometheus-scrape-interval", default=RuntimeOptions.prometheus_scrape_interval)
    args: Any = parser.parse_args(argv)
    runtime = None if args.no_runtime else RuntimeOptions(
        images=Path(args.images) if args.images else None, probe_period=args.probe_period,
        max_pods=args.max_pods, ingress_metrics_port=args.ingress_metrics_port,
        prometheus=not args.no_prometheus, prometheus_scrape_interval=args.prometheus_scrape_interval)
    if runtime is not None and runtime.problems():
        parser.error("; ".join(runtime.problems()))
    # One line per write (verb, object, code, client) in HOME/logs/apiserver.log; never object contents.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(rollouts_home(args.home), args.address, args.port, runtime=runtime))
    except AlreadyRunning as exc:
        logging.getLogger(__name__).error("%s", exc)
        sys.exit(EXIT_ALREADY_RUNNING)


if __name__ == "__main__":
    main()
