"""The `rollouts/traffic` provider's two paths agree on the local runtime: a real Prometheus scrapes the local
ingress proxy's ingress-nginx series after it served real requests, and the provider's PromQL over
`nginx_ingress_controller_requests` gives the success rate its local counters give."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.traffic import PLUGIN_NAME, TrafficMetricProvider
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.spec.analysis import Metric
from tests.conftest import require_tool
from tests.integration.prometheus_server import PrometheusServer
from tests.runtime.test_proxy import Rig, rig, run

pytestmark = pytest.mark.integration

CTX = MeasureContext(namespace="ns", run_name="app-1", metric_name="gate", measurement_index=1)
TOLERANCE = 0.02


def gate(**config: object) -> Metric:
    return Metric.model_validate({"name": "gate", "provider": {"plugin": {PLUGIN_NAME: {
        "metric": "success-rate", "service": "app", "window": "1m", **config}}}})


async def send(r: Rig, count: int, every_nth_fails: int, **headers: str) -> None:
    for i in range(count):
        path = "/status/500" if i % every_nth_fails == 0 else "/"
        status, _ = await r.get(path, **headers)
        assert status in (200, 500)


async def until_scraped(server: PrometheusServer, expected: int, timeout: float = 30.0) -> None:
    """Until Prometheus holds the proxy's final counts (all series, all requests)."""
    deadline = time.monotonic() + timeout
    query = 'sum(nginx_ingress_controller_requests{namespace="ns",ingress="app"})'
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(server.query, query)
        if result and float(result[0]["value"][1]) == expected:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"Prometheus did not see {expected} requests within {timeout}s")


def test_traffic_provider_prometheus_path_matches_local_counters(tmp_path: Path) -> None:
    binary = require_tool("prometheus", "apt-get install prometheus")

    async def body() -> None:
        async with rig(tmp_path, 0, metrics_port=0) as r:
            # Warm-up: every series exists before Prometheus' first scrape, so rate() sees all later requests.
            await send(r, 2, 2)
            await send(r, 2, 2, **{"X-Canary": "true"})
            assert r.proxy.metrics_address is not None
            host, port = r.proxy.metrics_address
            server = PrometheusServer(binary, tmp_path / "prometheus", [f"{host}:{port}"])
            (tmp_path / "prometheus").mkdir()
            await asyncio.to_thread(server.start)
            try:
                await until_scraped(server, 4)
                # Spread over several scrapes: stable 5 errors in 50, canary (by header) 8 in 30.
                for _ in range(6):
                    await send(r, 50, 10)
                    await send(r, 30, 4, **{"X-Canary": "true"})
                    await asyncio.sleep(0.3)
                await until_scraped(server, 4 + 6 * 80)

                address = {"address": server.address}
                for version, expected in (("stable", 45 / 50), ("canary", 22 / 30)):
                    local = await TrafficMetricProvider(stats=r.stats).measure(gate(version=version), CTX)
                    remote = await TrafficMetricProvider(stats=TrafficStats()).measure(
                        gate(version=version, prometheus=address), CTX)
                    assert local.error is None and remote.error is None, (local, remote)
                    assert isinstance(local.value, float) and isinstance(remote.value, float)
                    print(f"{version}: local {local.value:.4f} prometheus {remote.value:.4f}")
                    assert abs(local.value - remote.value) <= TOLERANCE, (version, local.value, remote.value)
                    assert abs(remote.value - expected) <= TOLERANCE, (version, remote.value)
                    assert "nginx_ingress_controller_requests" in remote.metadata["ResolvedPrometheusQuery"]
            finally:
                await asyncio.to_thread(server.stop)

    run(body())
