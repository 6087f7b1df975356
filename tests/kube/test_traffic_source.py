"""ClusterTrafficSource against a real API server (TLS, token) fed with a real TrafficStats: every answer
read over /traffic/v1 equals the one the stats give in process, and a cluster without the traffic API is
recognised so the plugins fall back to Prometheus."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rollouts.cluster.apiserver.app import ApiServer, Settings
from rollouts.cluster.apiserver.kubeconfig import api_token, write_kubeconfig
from rollouts.cluster.apiserver.tls import CERT_FILE, server_context
from rollouts.cluster.store import SQLiteStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import ClusterConfig, load_config
from rollouts.kube.traffic import ClusterTrafficSource
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.store.home import database_path
from rollouts.store.protocol import Invalid

NOW = 1_700_000_000.0  # the stats' clock: fixed, so both sides compute over the same seconds


def _serve(app: web.Application, ssl_context: Any = None) -> tuple[int, Any]:
    loop = asyncio.new_event_loop()
    holder: dict[str, Any] = {}

    async def run() -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        holder["port"], holder["runner"] = runner.addresses[0][1], runner

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return int(holder["port"]), stop


def _fill(stats: TrafficStats) -> None:
    """Two revisions of a canary and a stable, errors and a spread of latencies, over 40 minutes."""
    for age in range(0, 2400, 7):
        at = NOW - age
        stats.record("default", "shop", "stable", 200, 0.010 + (age % 13) / 1000, at=at, pod_hash="s1")
        stats.record("default", "shop", "canary", 500 if age % 5 == 0 else 200, 0.030 + (age % 17) / 500,
                     at=at, pod_hash="c2" if age < 600 else "c1")
    for age in range(0, 30, 3):
        stats.record("default", "shop", "canary", 503, 0.001, at=NOW - age, served=False)  # no ready pod
        stats.record("default", "shop-preview", "preview", 404, 0.002, at=NOW - age, pod_hash="p1")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrafficStats, ClusterTrafficSource]]:
    home: Path = tmp_path_factory.mktemp("traffic-home")
    stats = TrafficStats(clock=lambda: NOW)
    _fill(stats)
    store = SQLiteStore(database_path(home))
    server = ApiServer(store, api_token(home), Settings(logs_dir=home / "logs"), traffic=stats)
    port, stop = _serve(server.build(), server_context(home))
    kubeconfig = write_kubeconfig(home, f"https://127.0.0.1:{port}", api_token(home), (home / CERT_FILE).read_bytes())
    kube = KubeStore(load_config(kubeconfig=kubeconfig))
    source = ClusterTrafficSource.probe(kube)
    assert source is not None
    yield stats, source
    kube.close()
    stop()
    store.close()


WINDOWS = [
    pytest.param(("canary", 60.0), {}, id="one-version-last-minute"),
    pytest.param((("canary", "stable"), 300.0), {}, id="two-versions-summed"),
    pytest.param(("canary", 2.5), {}, id="fractional-seconds-round-up"),
    pytest.param(("canary", 900.0), {"pod_hash": "c2"}, id="only-the-revision-under-test"),
    pytest.param(("canary", 900.0), {"pod_hash": "c9"}, id="unknown-revision-counts-nothing"),
    pytest.param(("canary", 600.0), {"not_before": NOW - 95.5}, id="clipped-to-the-run-start"),
    pytest.param(("canary", 3 * 3600.0), {}, id="beyond-the-fine-horizon-incomplete"),
    pytest.param(("stable", 60.0), {"now": NOW - 1200.25}, id="explicit-now-in-the-past"),
    pytest.param(("preview", 30.0), {}, id="nothing-of-that-version"),
]


@pytest.mark.parametrize(("args", "options"), WINDOWS)
def test_cluster_traffic_source_window_equals_the_stats_own(
        served: tuple[TrafficStats, ClusterTrafficSource], args: tuple[Any, float], options: dict[str, Any]) -> None:
    stats, source = served
    options = dict(options)
    now = options.pop("now", None)
    expected = stats.window("default", "shop", args[0], args[1], now, **options)
    got = source.window("default", "shop", args[0], args[1], now, **options)
    assert got == expected
    assert (got.requests, got.errors, got.success_rate, got.error_rate, got.start, got.end, got.complete) == (
        expected.requests, expected.errors, expected.success_rate, expected.error_rate, expected.start,
        expected.end, expected.complete)
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert got.quantile(q) == expected.quantile(q)


SINCE = [
    pytest.param(("canary", NOW - 1800.0), {}, id="since-half-an-hour"),
    pytest.param((("canary", "stable"), NOW - 130.0), {}, id="two-versions-from-inside-a-minute"),
    pytest.param(("canary", NOW - 2000.0), {"pod_hash": "c1"}, id="older-revision-only"),
    pytest.param(("canary", NOW - 2 * 86400.0), {}, id="older-than-the-coarse-ring-incomplete"),
    pytest.param(("stable", NOW - 600.0), {"now": NOW - 300.0}, id="explicit-now"),
]


@pytest.mark.parametrize(("args", "options"), SINCE)
def test_cluster_traffic_source_since_equals_the_stats_own(
        served: tuple[TrafficStats, ClusterTrafficSource], args: tuple[Any, float], options: dict[str, Any]) -> None:
    stats, source = served
    options = dict(options)
    now = options.pop("now", None)
    assert source.since("default", "shop", args[0], args[1], now, **options) == stats.since(
        "default", "shop", args[0], args[1], now, **options)


FIRST_SEEN = [
    pytest.param("shop", "canary", None, id="a-version"),
    pytest.param("shop", ("canary", "stable"), None, id="several-versions"),
    pytest.param("shop", "canary", "c2", id="a-revision"),
    pytest.param("shop", "canary", "nope", id="never-served-is-null"),
    pytest.param("other", "stable", None, id="unknown-service-is-null"),
]


@pytest.mark.parametrize(("service", "version", "pod_hash"), FIRST_SEEN)
def test_cluster_traffic_source_first_seen_equals_the_stats_own(
        served: tuple[TrafficStats, ClusterTrafficSource], service: str, version: Any, pod_hash: str | None) -> None:
    stats, source = served
    assert source.first_seen("default", service, version, pod_hash=pod_hash) == stats.first_seen(
        "default", service, version, pod_hash=pod_hash)


@pytest.mark.parametrize(("service", "now"), [
    pytest.param("shop", None, id="busy-service"),
    pytest.param("shop", NOW - 100.0, id="explicit-now"),
    pytest.param("shop-preview", None, id="young-service-not-diluted"),
    pytest.param("idle", None, id="silent-service-is-null"),
])
def test_cluster_traffic_source_request_rate_equals_the_stats_own(
        served: tuple[TrafficStats, ClusterTrafficSource], service: str, now: float | None) -> None:
    stats, source = served
    assert source.request_rate("default", service, now) == stats.request_rate("default", service, now)


def test_cluster_traffic_source_bad_parameter_is_invalid(served: tuple[TrafficStats, ClusterTrafficSource]) -> None:
    _, source = served
    with pytest.raises(Invalid, match="seconds"):
        source.window("default", "shop", "canary", -5.0)


def test_cluster_traffic_source_probe_is_none_without_the_traffic_api() -> None:
    app = web.Application()  # a Kubernetes API server that knows no /traffic/v1: every path 404
    port, stop = _serve(app)
    kube = KubeStore(ClusterConfig(server=f"http://127.0.0.1:{port}", context="elsewhere"))
    try:
        assert ClusterTrafficSource.probe(kube) is None
    finally:
        kube.close()
        stop()
