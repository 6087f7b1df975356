"""Running the API server for a rollouts home: in the foreground, or as a background process that
`rollouts cluster up|down|status` manage through HOME/apiserver.json (pid, address, port).

`python -m rollouts.cluster.apiserver.server --home H` is the background process's entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from rollouts.store.home import database_path, rollouts_home
from rollouts.store.sqlite import SQLiteStore

STATE_FILE = "apiserver.json"
LOG_FILE = "apiserver.log"


@dataclass(frozen=True)
class Running:
    pid: int
    address: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.port}"


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def read_state(home: Path) -> Running | None:
    try:
        data = json.loads(state_path(home).read_text())
        return Running(int(data["pid"]), str(data["address"]), int(data["port"]))
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
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


async def serve(home: Path, address: str = "127.0.0.1", port: int = 0, *, stop: asyncio.Event | None = None,
                settings: Settings | None = None) -> None:
    """Serve HOME's store until `stop` is set (or SIGTERM/SIGINT when `stop` is not given)."""
    if port == 0:
        previous = read_state(home)
        # Keep the previous port when it is free, so kubeconfigs copied elsewhere stay valid.
        if previous and previous.address == address and _port_free(address, previous.port):
            port = previous.port
    store = SQLiteStore(database_path(home))
    settings = settings or Settings()
    if settings.logs_dir is None:
        settings.logs_dir = home / "logs"
    server = ApiServer(store, api_token(home), settings)
    server.objects.ensure_namespace("default")
    runner = web.AppRunner(server.build(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, address, port, ssl_context=server_context(home, address))
    await site.start()
    bound = runner.addresses[0][1]
    running = Running(os.getpid(), address, int(bound))
    write_kubeconfig(home, running.url, api_token(home), (home / CERT_FILE).read_bytes())
    state_path(home).write_text(json.dumps({"pid": running.pid, "address": address, "port": running.port}))
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()
        if read_state(home) == running:
            state_path(home).unlink(missing_ok=True)


def start_background(home: Path, address: str = "127.0.0.1", port: int = 0, timeout: float = 20.0) -> Running:
    """Start the server as a detached process (own session) and wait until it answers."""
    current = status(home)
    if current is not None:
        return current
    recorded = read_state(home)
    if recorded is not None and _alive(recorded.pid):
        # Starting a second server would leave this one running unseen.
        raise RuntimeError(f"the API server process of {home} (pid {recorded.pid}) is alive but does not answer "
                           f"on {recorded.url}; rollouts cluster down stops it")
    state_path(home).unlink(missing_ok=True)
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    with (logs / LOG_FILE).open("ab") as out:
        child = subprocess.Popen(  # noqa: S603 (fixed argument list, no shell)
            [sys.executable, "-m", "rollouts.cluster.apiserver.server", "--home", str(home),
             "--address", address, "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = read_state(home)
        if running is not None and running.pid == child.pid and healthy(running, home):
            return running
        if child.poll() is not None:
            raise RuntimeError(f"the API server exited with code {child.returncode}; see {logs / LOG_FILE}")
        time.sleep(0.05)
    child.terminate()
    raise RuntimeError(f"the API server did not answer within {timeout:.0f}s; see {logs / LOG_FILE}")


def stop_background(home: Path, timeout: float = 10.0) -> bool:
    """Stop this home's server; False when none was running."""
    running = read_state(home)
    if running is None or not _alive(running.pid):
        state_path(home).unlink(missing_ok=True)
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
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rollouts-apiserver", description="The local cluster's API server.")
    parser.add_argument("--home")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args: Any = parser.parse_args(argv)
    # One line per write (verb, object, code, client) in HOME/logs/apiserver.log; never object contents.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(rollouts_home(args.home), args.address, args.port))


if __name__ == "__main__":
    main()
