"""A real local API server per test module (the fixture approach of tests/cluster), and clients for it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from rollouts.cluster.apiserver.app import ApiServer, Settings
from rollouts.cluster.apiserver.kubeconfig import api_token
from rollouts.cluster.apiserver.tls import server_context
from rollouts.cluster.store import SQLiteStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.store.home import database_path
from tests.cluster.conftest import Cluster, rollout, start_cluster

__all__ = ["Cluster", "rollout"]

FEED_LIMIT = 40  # a short retained history, so compaction (and 410) is cheap to reach


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("kube-home"), feed_limit=FEED_LIMIT)
    yield found
    stop()


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[KubeStore]:
    store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    yield store
    store.close()


def serve_on(home: Any, port: int) -> Callable[[], None]:
    """Serve HOME's store on a given port (to restart a server where its clients expect it); returns stop."""
    store = SQLiteStore(database_path(home), feed_limit=FEED_LIMIT)
    server = ApiServer(store, api_token(home), Settings(bookmark_interval=0.3, logs_dir=home / "logs"))
    loop = asyncio.new_event_loop()
    holder: dict[str, Any] = {}

    async def run() -> None:
        runner = web.AppRunner(server.build(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context(home)).start()
        holder["runner"] = runner

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        store.close()

    return stop


async def until(check: Callable[[], bool], timeout: float = 15) -> float:
    """Poll `check` on the event loop until it holds; the seconds it took. AssertionError past `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - started
