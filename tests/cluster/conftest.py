"""One local API server per test module: a real SQLite store in a temporary home, served over TLS on a
free loopback port from a background thread, with a kubeconfig that lightkube and kubectl read."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from rollouts.cluster.apiserver.app import ApiServer, Settings
from rollouts.cluster.apiserver.kubeconfig import api_token, write_kubeconfig
from rollouts.cluster.apiserver.server import state_path
from rollouts.cluster.apiserver.tls import CERT_FILE, server_context
from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.store.home import database_path


@dataclass
class Cluster:
    home: Path
    url: str
    token: str
    store: SQLiteStore
    kubeconfig: Path

    @property
    def ca(self) -> str:
        return str(self.home / CERT_FILE)

    def http(self, token: str | None = "default") -> httpx.Client:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        return httpx.Client(base_url=self.url, headers=headers, verify=ssl.create_default_context(cafile=self.ca),
                            timeout=10)


def start_cluster(home: Path, watch_memory: int = 4096, traffic: TrafficStats | None = None,
                  **store_options: Any) -> tuple[Cluster, Any]:
    store = SQLiteStore(database_path(home), **store_options)
    token = api_token(home)
    server = ApiServer(store, token, Settings(bookmark_interval=0.3, log_poll_interval=0.05,
                                              logs_dir=home / "logs", watch_memory=watch_memory), traffic=traffic)
    server.objects.ensure_namespace("default")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def run() -> None:
        runner = web.AppRunner(server.build(), access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(home))
        await site.start()
        holder["port"], holder["runner"] = runner.addresses[0][1], runner
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(run(), loop).result(10)
    url = f"https://127.0.0.1:{holder['port']}"
    kubeconfig = write_kubeconfig(home, url, token, (home / CERT_FILE).read_bytes())
    # The state file `rollouts cluster status` and the CLI's local-cluster fallback read: this process serves it.
    state_path(home).write_text(json.dumps({"pid": os.getpid(), "address": "127.0.0.1", "port": holder["port"]}))

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        store.close()
        state_path(home).unlink(missing_ok=True)

    return Cluster(home, url, token, store, kubeconfig), stop


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("cluster-home"))
    yield found
    stop()


ROLLOUT_API = "/apis/argoproj.io/v1alpha1"


def rollout(name: str, *, replicas: int = 2, labels: dict[str, str] | None = None,
            image: str = "demo:1") -> dict[str, Any]:
    """A small valid canary Rollout."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
    }
