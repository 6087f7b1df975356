"""The local ingress proxy and Service balancers end to end: real listeners on 127.0.0.1, small aiohttp apps
as the pods, real HTTP requests."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from rollouts.demo.prometheus import free_port
from rollouts.runtime.local.proxy import IngressProxy
from rollouts.runtime.local.services import Endpoint, ServiceBalancer, TrafficIdentity
from rollouts.runtime.local.traffic import TrafficStats

P = "nginx.ingress.kubernetes.io"


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout=60))  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


@dataclass
class Pod:
    """A tiny HTTP app standing in for one pod of a version."""

    name: str
    version: str
    port: int = 0
    in_flight: int = 0
    served: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    async def start(self) -> Pod:
        app = web.Application()
        app.router.add_get("/slow", self._slow)
        app.router.add_post("/echo", self._echo)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/{tail:.*}", self._hello)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def endpoint(self, pod_hash: str) -> Endpoint:
        return Endpoint("127.0.0.1", self.port, self.name, pod_hash)

    async def _hello(self, request: web.Request) -> web.Response:
        self.served += 1
        return web.Response(text=f"{self.version} {self.name} {request.path} {request.headers.get('Host')}")

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(f"{self.version} ".encode())
            await self.release.wait()
            await response.write(b"done")
            await response.write_eof()
            return response
        finally:
            self.in_flight -= 1

    async def _echo(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), headers={"X-Seen-Length": str(request.content_length)})

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text=self.version)


def ingresses(weight: int, *, header: bool = True, port: int | None = None) -> list[dict[str, Any]]:
    stable_notes = {"rollouts.io/port": str(port)} if port else {}
    canary_notes = {f"{P}/canary": "true", f"{P}/canary-weight": str(weight)}
    if header:
        canary_notes.update({f"{P}/canary-by-header": "X-Canary", f"{P}/canary-by-header-value": "true"})

    def one(name: str, service: str, notes: dict[str, str]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "ns", "annotations": notes},
            "spec": {"rules": [{"host": "app.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]},
        }

    return [one("app", "app-stable", stable_notes), one("app-app-canary", "app-canary", canary_notes)]


@dataclass
class Rig:
    proxy: IngressProxy
    balancer: ServiceBalancer
    stats: TrafficStats
    stable: Pod
    canary: Pod
    client: aiohttp.ClientSession
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.ports['ns/app']}"

    async def get(self, path: str = "/", **headers: str) -> tuple[int, str]:
        async with self.client.get(self.url + path, headers={"Host": "app.example.com", **headers}) as resp:
            return resp.status, await resp.text()


@asynccontextmanager
async def rig(tmp_path: Path, weight: int, **kwargs: Any) -> AsyncIterator[Rig]:
    stats = TrafficStats()
    stable = await Pod("app-stable-1", "stable").start()
    canary = await Pod("app-canary-1", "canary").start()
    balancer = ServiceBalancer(stats=stats)
    log_path = tmp_path / "ingress.log"
    proxy = IngressProxy(balancer, stats=stats, access_log=log_path, rand=random.Random(42).random, **kwargs)
    await proxy.start()
    balancer.set_endpoints("ns/app-stable", [stable.endpoint("s111")])
    balancer.set_endpoints("ns/app-canary", [canary.endpoint("c222")])
    await proxy.update_ingresses(ingresses(weight))
    client = aiohttp.ClientSession()
    try:
        yield Rig(proxy, balancer, stats, stable, canary, client, log_path)
    finally:
        stable.release.set()
        canary.release.set()
        await client.close()
        await proxy.close()
        await balancer.close()
        await stable.stop()
        await canary.stop()


async def many(r: Rig, count: int, **headers: str) -> list[tuple[int, str]]:
    gate = asyncio.Semaphore(50)

    async def one() -> tuple[int, str]:
        async with gate:
            return await r.get("/", **headers)

    return await asyncio.gather(*(one() for _ in range(count)))


def test_weight_30_sends_about_30_percent_to_canary(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 30) as r:
            results = await many(r, 1000)
            assert all(status == 200 for status, _ in results)
            canary = sum(text.startswith("canary ") for _, text in results)
            assert 250 <= canary <= 350, canary
            assert r.canary.served == canary and r.stable.served == 1000 - canary
            assert r.stats.window("ns", "app", "canary", 60).requests == canary
            assert r.stats.window("ns", "app", "stable", 60).requests == 1000 - canary

    run(body())


def test_header_sends_every_request_to_canary(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            forced = await many(r, 100, **{"X-Canary": "true"})
            assert {text.split()[0] for _, text in forced} == {"canary"}
            other = await many(r, 50, **{"X-Canary": "false"})
            assert {text.split()[0] for _, text in other} == {"stable"}

    run(body())


def test_host_header_and_path_reach_the_pod(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            status, text = await r.get("/some/path?x=1")
            assert (status, text) == (200, "stable app-stable-1 /some/path app.example.com")
            # A loopback Host matches the only host the Ingress names.
            async with r.client.get(r.url + "/") as resp:
                assert resp.status == 200 and (await resp.text()).startswith("stable ")
            async with r.client.get(r.url + "/", headers={"Host": "other.example.com"}) as resp:
                assert resp.status == 404
                assert "no Ingress rule for host other.example.com" in await resp.text()

    run(body())


def test_request_body_and_status_are_relayed(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            payload = b"x" * 300_000
            headers = {"Host": "app.example.com"}
            async with r.client.post(r.url + "/echo", data=payload, headers=headers) as resp:
                assert resp.status == 200
                assert await resp.read() == payload
                assert resp.headers["X-Seen-Length"] == str(len(payload))
            status, text = await r.get("/status/503")
            assert (status, text) == (503, "stable")

    run(body())


def test_weight_change_does_not_drop_in_flight_requests(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            slow = [asyncio.create_task(r.get("/slow")) for _ in range(20)]
            await until(lambda: r.stable.in_flight == 20)
            await r.proxy.update_ingresses(ingresses(100))
            after = await many(r, 30)
            assert {text.split()[0] for _, text in after} == {"canary"}
            assert r.stable.in_flight == 20  # still held open across the switch
            r.stable.release.set()
            finished = await asyncio.gather(*slow)
            assert finished == [(200, "stable done")] * 20

    run(body())


def test_no_ready_endpoint_is_a_clear_503(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 100) as r:
            r.balancer.set_endpoints("ns/app-canary", [])
            status, text = await r.get("/")
            assert status == 503
            assert "Service ns/app-canary has no ready endpoints" in text
            # A dead pod is skipped for the next live one.
            dead = Endpoint("127.0.0.1", free_port(), "app-canary-dead", "c222")
            r.balancer.set_endpoints("ns/app-canary", [dead, r.canary.endpoint("c222")])
            results = await many(r, 10)
            assert [status for status, _ in results] == [200] * 10
            r.balancer.set_endpoints("ns/app-canary", [dead])
            status, text = await r.get("/")
            assert status == 502 and "app-canary-dead" in text

    run(body())


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_per_version_with_labels_and_counts(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0, metrics_port=0) as r:
            await many(r, 7)
            await many(r, 3, **{"X-Canary": "true"})
            await r.get("/status/500", **{"X-Canary": "true"})
            text = r.proxy.render_metrics().decode()
            requests = _samples(text, "rollouts_ingress_http_requests_total")
            base = {"namespace": "ns", "service": "app", "ingress": "app"}

            def key(version: str, pod_hash: str, code: str) -> tuple[tuple[str, str], ...]:
                labels = {**base, "version": version, "rollouts_pod_template_hash": pod_hash, "code": code}
                return tuple(sorted(labels.items()))

            assert requests == {
                key("stable", "s111", "200"): 7.0,
                key("canary", "c222", "200"): 3.0,
                key("canary", "c222", "500"): 1.0,
            }
            buckets = _samples(text, "rollouts_ingress_http_request_duration_seconds_bucket")
            les = sorted({float(dict(k)["le"]) for k in buckets})
            assert les == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")]
            inf_canary = {**base, "version": "canary", "rollouts_pod_template_hash": "c222", "le": "+Inf"}
            assert buckets[tuple(sorted(inf_canary.items()))] == 4.0

            # The admin listener serves the same text; the proxied port leaves /metrics to the app.
            assert r.proxy.metrics_address is not None
            host, port = r.proxy.metrics_address
            async with r.client.get(f"http://{host}:{port}/metrics") as resp:
                assert resp.status == 200 and "rollouts_ingress_http_requests_total" in await resp.text()
            status, text = await r.get("/metrics")
            assert (status, text.split()[0]) == (200, "stable")

    run(body())


def test_proxy_request_metrics_never_share_the_applications_series_names(tmp_path: Path) -> None:
    """A Prometheus scraping the pods (`http_requests_total{service=...}`) and the proxy must not count a
    request twice in the runbook's sum(rate(http_requests_total{service=...})): the proxy's names are its own."""
    from rollouts.demo.http_metrics import RequestMetrics as AppMetrics

    found: set[str] = set()

    async def body() -> None:
        async with rig(tmp_path, 0, metrics_port=0) as r:
            await many(r, 3)
            found.update(f.name for f in text_string_to_metric_families(r.proxy.render_metrics().decode()))

    run(body())
    app = AppMetrics("app")
    app.observe("GET", 200, 0.01)
    app_families = {f.name for f in text_string_to_metric_families(app.render().decode())}
    assert app_families == {"http_requests", "http_request_duration_seconds"}
    assert found >= {"rollouts_ingress_http_requests", "rollouts_ingress_http_request_duration_seconds",
                     "nginx_ingress_controller_requests"}
    assert not found & app_families


def test_access_log_has_one_line_per_request(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            await r.get("/a")
            await r.get("/b", **{"X-Canary": "true"})
            lines = r.log_path.read_text().splitlines()
            assert len(lines) == 2
            first, second = (line.split() for line in lines)
            assert first[1:6] == ["GET", "/a", "200", "stable", "app-stable-1"]
            assert second[1:6] == ["GET", "/b", "200", "canary", "app-canary-1"]
            assert first[6].endswith("s") and float(first[6][:-1]) >= 0

    run(body())


def test_ports_from_annotations_and_callbacks(tmp_path: Path) -> None:
    async def body() -> None:
        reported: list[tuple[str, int]] = []
        stable = await Pod("p1", "stable").start()
        other = await Pod("p2", "stable").start()
        async with ServiceBalancer(on_port=lambda k, p: reported.append((k, p))) as balancer:
            wanted = free_port()
            port = await balancer.ensure_service(
                {"metadata": {"name": "app-stable", "namespace": "ns", "annotations": {"rollouts.io/port": str(wanted)}}}
            )
            allocated = await balancer.ensure_service({"metadata": {"name": "app-preview", "namespace": "ns"}})
            assert port == wanted and allocated > 0
            assert balancer.ports == {"ns/app-stable": wanted, "ns/app-preview": allocated}
            assert reported == [("ns/app-stable", wanted), ("ns/app-preview", allocated)]
            assert await balancer.ensure_service({"metadata": {"name": "app-preview", "namespace": "ns"}}) == allocated

            # Round robin over two endpoints through the Service's own port.
            balancer.set_endpoints("ns/app-stable", [stable.endpoint("h"), other.endpoint("h")])
            async with aiohttp.ClientSession() as client:
                names = []
                for _ in range(4):
                    async with client.get(f"http://127.0.0.1:{wanted}/") as resp:
                        names.append((await resp.text()).split()[1])
                assert names == ["p1", "p2", "p1", "p2"]

            proxy_port = free_port()
            proxy = IngressProxy(balancer, on_port=lambda k, p: reported.append((k, p)))
            await proxy.start()
            await proxy.update_ingresses(ingresses(0, port=proxy_port))
            assert proxy.ports == {"ns/app": proxy_port}
            assert reported[-1] == ("ns/app", proxy_port)
            await proxy.close()
        await stable.stop()
        await other.stop()

    run(body())


def test_direct_service_traffic_is_counted_under_its_identity(tmp_path: Path) -> None:
    async def body() -> None:
        stats = TrafficStats()
        pod = await Pod("green-1", "preview").start()
        async with ServiceBalancer(stats=stats) as balancer:
            port = await balancer.ensure_service({"metadata": {"name": "app-preview", "namespace": "ns"}})
            balancer.set_endpoints("ns/app-preview", [pod.endpoint("g1")])
            balancer.set_traffic_identity("ns/app-preview", TrafficIdentity("ns", "app", "preview"))
            async with aiohttp.ClientSession() as client:
                for path in ("/", "/status/500", "/"):
                    async with client.get(f"http://127.0.0.1:{port}{path}") as resp:
                        await resp.read()
            window = stats.window("ns", "app", "preview", 60)
            assert (window.requests, window.errors) == (3, 1)
        await pod.stop()

    run(body())
