"""Measures how long a write takes to reach a dashboard event stream: a status patch, then the `update`
event on /api/v1/rollouts/default/watch. `kube`: the dashboard over a KubeStore through an API server,
the patch written through that API (as the controller writes); `kube-file`: the same dashboard, the
patch written to the SQLite file behind the server's back (the server notices by polling); `sqlite`:
the dashboard over the store file directly, for comparison.
Run: `python -m tests.dashboard.latency kube` (or `kube-file`, `sqlite`)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from rollouts.api.app import create_app
from rollouts.cluster.store import SQLiteStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.store.protocol import ObjectStore
from tests.dashboard.helpers import AUTH, TOKEN, api_served, live_server, seed, seeded_db

WRITES = 30


@contextmanager
def _sqlite_server(db: Path) -> Iterator[str]:
    app = create_app(lambda: SQLiteStore(db), token=TOKEN, bind_host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        app.state.close_streams()
        server.should_exit = True
        thread.join(10)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def measure(mode: str) -> list[float]:
    db = seeded_db(Path(tempfile.mkdtemp()) / "state.db", seed)
    delays: list[float] = []
    with api_served(db) if mode.startswith("kube") else _nothing() as kubeconfig, \
            (live_server(None, kubeconfig=kubeconfig) if kubeconfig else _sqlite_server(db)) as url, \
            httpx.Client(base_url=url, timeout=30, headers=AUTH) as http:
        arrivals: list[float] = []
        ready = threading.Event()

        def read() -> None:
            try:
                with http.stream("GET", "/api/v1/rollouts/default/watch") as response:
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            arrivals.append(time.monotonic())
                            ready.set()
            except httpx.HTTPError:
                pass  # the server closed the stream at the end

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(20):
            raise SystemExit("no snapshot from the dashboard")
        store: ObjectStore = KubeStore(load_config(kubeconfig=kubeconfig)) if mode == "kube" else SQLiteStore(db)
        try:
            for n in range(WRITES):
                seen, start = len(arrivals), time.monotonic()
                store.patch("Rollout", "default", "shop", {"status": {"currentStepIndex": n % 4}},
                            subresource="status")
                while len(arrivals) == seen and time.monotonic() - start < 10:
                    time.sleep(0.002)
                delays.append(arrivals[-1] - start)
                time.sleep(0.1)
        finally:
            store.close()
    return sorted(delays)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "kube"
    if mode not in ("kube", "kube-file", "sqlite"):
        raise SystemExit("usage: python -m tests.dashboard.latency [kube|kube-file|sqlite]")
    delays = measure(mode)
    p90 = delays[int(len(delays) * 0.9) - 1]
    print(f"{mode}: {len(delays)} writes, write-to-update p50 {statistics.median(delays) * 1000:.0f} ms, "
          f"p90 {p90 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
