"""Item: cluster DNS for our own clients. `<svc>.<ns>.svc[.cluster.local][:port]` and a bare `<svc>` (same
namespace) map to the local cluster's Service listener (its `rollouts.io/port` annotation), read through a
KubeStore from an in-process API server; the prometheus and web providers use the installed resolver and
reach a real HTTP server behind the Service's annotated port."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.prometheus import PrometheusMetricProvider
from rollouts.analysis.providers.web import WebMetricProvider
from rollouts.kube.client import KubeStore, connect
from rollouts.kube.dns import ClusterResolver, Resolved, ResolveError, cluster_name, set_resolver
from rollouts.spec.analysis import Metric
from tests.cluster.conftest import Cluster, start_cluster


class Backend:
    """A real HTTP server standing behind a Service: a Prometheus query answer, or {"ok": true}; records Host."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.hosts: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                backend.hosts.append(self.headers.get("Host", ""))
                if self.path.startswith("/api/v1/query"):
                    answer: Any = {"status": "success", "data": {"resultType": "vector", "result": [
                        {"metric": {}, "value": [1700000000, "0.999"]}]}}
                else:
                    answer = {"ok": True, "path": self.path}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - fixed by base
                return

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def _service(namespace: str, name: str, ports: list[int], listener: int | None, cluster_ip: str | None = None,
             cluster_ports: list[int] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": {}}
    if listener is not None:
        meta["annotations"]["rollouts.io/port"] = str(listener)
    if cluster_ports is not None:
        meta["annotations"]["rollouts.io/cluster-ip-ports"] = ",".join(map(str, cluster_ports))
    spec: dict[str, Any] = {"selector": {"app": name}, "ports": [{"port": p} for p in ports]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


CLUSTER_IP = "127.2.200.17"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Backend, KubeStore]]:
    backend = Backend()
    on_cluster_ip = Backend(CLUSTER_IP)  # what a Service's cluster-IP listener would be
    cluster, stop = start_cluster(tmp_path_factory.mktemp("home"))
    for namespace in ("prometheus", "aivo-system"):
        cluster.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    cluster.store.create(_service("prometheus", "prometheus", [9090], backend.port))
    cluster.store.create(_service("aivo-system", "web-check", [80], backend.port))
    cluster.store.create(_service("aivo-system", "pending", [80], None))
    # A cluster IP that answers on its port, and one whose listener is not up (no cluster-ip-ports).
    cluster.store.create(_service("aivo-system", "clustered", [on_cluster_ip.port], backend.port, CLUSTER_IP,
                                  [on_cluster_ip.port]))
    cluster.store.create(_service("aivo-system", "not-yet", [on_cluster_ip.port], backend.port, "127.2.200.18"))
    store = connect(str(cluster.kubeconfig))
    world_backends["cluster-ip"] = on_cluster_ip
    try:
        yield cluster, backend, store
    finally:
        store.close()
        stop()
        for server in (backend.server, on_cluster_ip.server):
            server.shutdown()
            server.server_close()


world_backends: dict[str, Backend] = {}


@pytest.fixture
def resolver(world: tuple[Cluster, Backend, KubeStore]) -> Iterator[ClusterResolver]:
    found = ClusterResolver(world[2])
    set_resolver(found)
    yield found
    set_resolver(None)


@pytest.mark.parametrize(("host", "expected"), [
    pytest.param("prometheus.prometheus.svc", ("prometheus", "prometheus", True), id="svc"),
    pytest.param("prometheus.prometheus.svc.cluster.local", ("prometheus", "prometheus", True), id="cluster-local"),
    pytest.param("Prometheus.Prometheus.SVC.", ("prometheus", "prometheus", True), id="case-and-trailing-dot"),
    pytest.param("prometheus", ("prometheus", None, False), id="bare-same-namespace"),
    pytest.param("localhost", None, id="localhost"),
    pytest.param("127.0.0.1", None, id="ip"),
    pytest.param("example.com", None, id="dotted-host"),
    pytest.param("prometheus.prometheus", None, id="search-path-form-not-resolved"),
    pytest.param("a.b.c.svc.cluster.local", None, id="pod-style-name"),
])
def test_cluster_dns_names(host: str, expected: tuple[str, str | None, bool] | None) -> None:
    assert cluster_name(host) == expected


@pytest.mark.parametrize(("url", "namespace", "expected_path", "host"), [
    pytest.param("http://prometheus.prometheus.svc:9090", "default", "", "prometheus.prometheus.svc:9090", id="svc"),
    pytest.param("http://prometheus.prometheus.svc.cluster.local:9090/api/v1/query?x=1", "default",
                 "/api/v1/query?x=1", "prometheus.prometheus.svc.cluster.local:9090", id="cluster-local-with-path"),
    pytest.param("http://prometheus:9090/-/healthy", "prometheus", "/-/healthy", "prometheus:9090", id="bare"),
    pytest.param("https://web-check.aivo-system.svc/ok", "default", "/ok", "web-check.aivo-system.svc",
                 id="https-default-port-443-is-not-declared"),
])
def test_cluster_dns_maps_service_names_to_the_listener(world: tuple[Cluster, Backend, KubeStore],
                                                        resolver: ClusterResolver, url: str, namespace: str,
                                                        expected_path: str, host: str) -> None:
    backend = world[1]
    if "https" in url:
        with pytest.raises(ResolveError, match=r"no port 443 \(spec.ports\[\].port: 80\)"):
            resolver.resolve(url, namespace)
        url = url.replace("https://web-check.aivo-system.svc/", "https://web-check.aivo-system.svc:80/")
        host = "web-check.aivo-system.svc:80"
    assert resolver.resolve(url, namespace) == Resolved(f"http://127.0.0.1:{backend.port}{expected_path}", host)


@pytest.mark.parametrize(("url", "namespace"), [
    pytest.param("http://127.0.0.1:9090", "default", id="address"),
    pytest.param("http://localhost:9090", "default", id="localhost"),
    pytest.param("http://prometheus:9090", "default", id="bare-name-not-a-service-here"),
    pytest.param("http://example.com/x", "default", id="outside-name"),
])
def test_cluster_dns_leaves_other_urls_alone(resolver: ClusterResolver, url: str, namespace: str) -> None:
    assert resolver.resolve(url, namespace) == Resolved(url)


@pytest.mark.parametrize(("url", "words"), [
    pytest.param("http://nope.prometheus.svc:9090", ['Service "nope" in namespace "prometheus"', "apply it"],
                 id="missing-service"),
    pytest.param("http://prometheus.prometheus.svc:80", ["no port 80", "9090"], id="undeclared-port"),
    pytest.param("http://pending.aivo-system.svc", ["no local listener yet", "rollouts.io/port"], id="no-listener"),
])
def test_cluster_dns_errors_name_the_service(resolver: ClusterResolver, url: str, words: list[str]) -> None:
    with pytest.raises(ResolveError) as caught:
        resolver.resolve(url, "default")
    for word in words:
        assert word in str(caught.value)


def _ctx(namespace: str) -> MeasureContext:
    return MeasureContext(namespace=namespace, run_name="run", metric_name="m", measurement_index=1)


PROMETHEUS_METRIC = {"name": "success-rate", "provider": {"prometheus": {
    "address": "http://prometheus.prometheus.svc:9090", "query": 'sum(rate(http_requests_total{service="a"}[5m]))'}}}


def test_cluster_dns_prometheus_provider_reaches_the_service(world: tuple[Cluster, Backend, KubeStore],
                                                             resolver: ClusterResolver) -> None:
    backend = world[1]
    backend.hosts.clear()
    outcome = asyncio.run(PrometheusMetricProvider().measure(Metric.model_validate(PROMETHEUS_METRIC),
                                                             _ctx("aivo-system")))
    assert outcome.value == [0.999], outcome
    assert backend.hosts == ["prometheus.prometheus.svc:9090"]


def test_cluster_dns_prometheus_provider_without_resolver_cannot_reach_it(
        world: tuple[Cluster, Backend, KubeStore]) -> None:
    set_resolver(None)
    outcome = asyncio.run(PrometheusMetricProvider().measure(Metric.model_validate(PROMETHEUS_METRIC),
                                                             _ctx("aivo-system")))
    assert outcome.value is None and "connection failed" in (outcome.error or "")


def test_cluster_dns_prometheus_provider_error_names_the_missing_service(resolver: ClusterResolver) -> None:
    metric = json.loads(json.dumps(PROMETHEUS_METRIC))
    metric["provider"]["prometheus"]["address"] = "http://prometheus.monitoring.svc:9090"
    outcome = asyncio.run(PrometheusMetricProvider().measure(Metric.model_validate(metric), _ctx("aivo-system")))
    assert 'Service "prometheus" in namespace "monitoring"' in (outcome.error or ""), outcome


@pytest.mark.parametrize("url", [
    pytest.param("http://web-check.aivo-system.svc/ok", id="svc"),
    pytest.param("http://web-check/ok", id="bare-in-the-runs-namespace"),
])
def test_cluster_dns_web_provider_reaches_the_service(world: tuple[Cluster, Backend, KubeStore],
                                                      resolver: ClusterResolver, url: str) -> None:
    metric = Metric.model_validate({"name": "ok", "provider": {"web": {"url": url, "jsonPath": "{$.ok}"}}})
    outcome = asyncio.run(WebMetricProvider().measure(metric, _ctx("aivo-system")))
    assert outcome.value is True, outcome
    assert world[1].hosts[-1] == url.split("/")[2]


def test_cluster_dns_reads_services_once_per_ttl(world: tuple[Cluster, Backend, KubeStore]) -> None:
    reads: list[tuple[str, str, str]] = []
    store = world[2]

    class Counting:
        def get(self, kind: str, namespace: str, name: str) -> Any:
            reads.append((kind, namespace, name))
            return store.get(kind, namespace, name)

    now = [0.0]
    resolver = ClusterResolver(Counting(), ttl=2.0, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(3):
        resolver.resolve("http://prometheus.prometheus.svc:9090", "default")
    now[0] = 2.5
    resolver.resolve("http://prometheus.prometheus.svc:9090", "default")
    assert reads == [("Service", "prometheus", "prometheus")] * 2


def test_cluster_dns_unreadable_service_is_a_resolve_error() -> None:
    class Down:
        def get(self, kind: str, namespace: str, name: str) -> Any:
            raise ConnectionRefusedError("connection refused")

    resolver = ClusterResolver(Down())  # type: ignore[arg-type]
    with pytest.raises(ResolveError, match="cannot read Service prometheus/prometheus from the cluster: connection"):
        resolver.resolve("http://prometheus.prometheus.svc:9090", "default")


@pytest.mark.parametrize(("name", "through_cluster_ip"), [
    pytest.param("clustered", True, id="cluster-ip-listening"),
    pytest.param("not-yet", False, id="cluster-ip-not-listening-uses-host-port"),
])
def test_cluster_dns_names_resolve_through_the_cluster_ip(world: tuple[Cluster, Backend, KubeStore],
                                                          resolver: ClusterResolver, name: str,
                                                          through_cluster_ip: bool) -> None:
    on_cluster_ip = world_backends["cluster-ip"]
    port = on_cluster_ip.port
    url = f"http://{name}.aivo-system.svc:{port}/ok"
    expected = f"http://{CLUSTER_IP}:{port}/ok" if through_cluster_ip else f"http://127.0.0.1:{world[1].port}/ok"
    assert resolver.resolve(url, "default") == Resolved(expected, f"{name}.aivo-system.svc:{port}")
    metric = Metric.model_validate({"name": "ok", "provider": {"web": {"url": url, "jsonPath": "{$.ok}"}}})
    on_cluster_ip.hosts.clear()
    outcome = asyncio.run(WebMetricProvider().measure(metric, _ctx("aivo-system")))
    assert outcome.value is True, outcome
    assert on_cluster_ip.hosts == ([f"{name}.aivo-system.svc:{port}"] if through_cluster_ip else [])
