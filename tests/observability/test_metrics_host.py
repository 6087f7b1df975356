"""12.5 (b): the controller's /metrics and /healthz answer only to a Host naming this machine (or one on
the --metrics-allowed-hosts list), parsed as strictly as the dashboard parses it; the ingress proxy, as
ingress-nginx does, accepts any Host."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from rollouts.controller.metrics_http import MetricsServer, parse_allowed_hosts
from rollouts.netaddr import AddressError

SERIES = b"rollout_info{name=\"secret-shop\"} 1\n"


async def _status(allowed: frozenset[str], host: str, path: str) -> tuple[int, str]:
    server = MetricsServer(render=lambda: SERIES, healthy=lambda: (True, "loop running"), extra=[],
                           allowed_hosts=allowed)
    await server.start("127.0.0.1:0")
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}{path}", headers={"Host": host})
            return response.status_code, response.text
    finally:
        await server.close()


CASES = [
    (frozenset(), "127.0.0.1:8090", 200),
    (frozenset(), "localhost:8090", 200),
    (frozenset(), "[::1]:8090", 200),
    (frozenset(), "rebound.example:8090", 421),
    (frozenset(), "localhost:8090@evil.example", 400),
    (frozenset(), "localhost:8090:1", 400),
    (frozenset({"prometheus.internal"}), "prometheus.internal:8090", 200),
    (frozenset({"prometheus.internal"}), "PROMETHEUS.internal", 200),
    (frozenset({"prometheus.internal"}), "prometheus.internal.evil.example:8090", 421),
    (frozenset({"prometheus.internal"}), "prometheus.internal:8090@evil.example", 400),
    (frozenset({"*"}), "anything.example:8090", 200),
    (frozenset({"*"}), "x:1@anything.example", 400),
]


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
@pytest.mark.parametrize(("allowed", "host", "status"), CASES,
                         ids=[f"{','.join(sorted(a)) or 'loopback'}-{h}" for a, h, _ in CASES])
def test_metrics_host_header_checked(allowed: frozenset[str], host: str, status: int, path: str) -> None:
    code, text = asyncio.run(_status(allowed, host, path))
    assert code == status, text
    if status != 200:
        assert "secret-shop" not in text


@pytest.mark.parametrize(("values", "expected"), [
    (["prometheus.internal"], {"prometheus.internal"}),
    (["a.example, 10.0.0.5", "B.example"], {"a.example", "10.0.0.5", "b.example"}),
    (["[fd00::5]"], {"fd00::5"}),
    (["*"], {"*"}),
    ([], set()),
], ids=["one", "comma-and-repeated", "v6", "any", "none"])
def test_metrics_allowed_hosts_parsed(values: list[str], expected: set[str]) -> None:
    assert parse_allowed_hosts(values) == expected


@pytest.mark.parametrize("value", ["prom:9090", "http://prom", "a@b", "a b"])
def test_metrics_allowed_hosts_refuses_what_is_no_host(value: str) -> None:
    with pytest.raises(AddressError, match="--metrics-allowed-hosts"):
        parse_allowed_hosts([value])


def test_metrics_allowed_hosts_flag_refused_when_malformed() -> None:
    run = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--metrics-allowed-hosts", "http://x",
                          "--metrics-address", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "--metrics-allowed-hosts: 'http://x' is not a host name or address" in run.stderr
