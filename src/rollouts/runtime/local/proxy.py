"""The local ingress: a weighted HTTP proxy that routes with ingress-nginx's canary semantics
(`routing.choose_backend`), forwards in-process through the `ServiceBalancer`, and records per-version
request metrics (Prometheus text via `render_metrics`, and `TrafficStats` for the traffic provider).

`render_metrics` carries two sets of series: the proxy's own per-version
`rollouts_ingress_http_requests_total` and `rollouts_ingress_http_request_duration_seconds` (with the serving
pod's template hash), then ingress-nginx's `nginx_ingress_controller_requests` and
`..._request_duration_seconds` (nginx_metrics.py), so PromQL written for ingress-nginx works unchanged
against the local runtime. The proxy's own names are its own, never the application's `http_requests_total`:
a Prometheus that scrapes both the pods and the proxy would otherwise count every request twice in the
runbook's `sum(rate(http_requests_total{service=...}))`.

Listeners: one per distinct port of the stable Ingresses (annotation `rollouts.io/port`, else a free port
kept for the Ingress's lifetime; `on_port(ingress_key, port)` reports it, `ports` shows it). Stable Ingresses
sharing a port share a listener and are told apart by host. `/metrics` is never served on a proxied port (it
would hide the application's own); it is on the optional admin listener (`metrics_port`) or the caller
serves `render_metrics()` itself.

`update_ingresses` swaps the routing tables in one assignment: requests already routed finish on the backend
they were given, new requests see the new weights. `swap_in_place` does the same from another thread when no
listener changes (a weight change), without waiting for the proxy's loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from rollouts.runtime.local.exposition import CONTENT_TYPE, Key, RequestMetrics
from rollouts.runtime.local.nginx_metrics import NginxIngressMetrics
from rollouts.runtime.local.routing import (
    DEFAULT_ANNOTATION_PREFIX,
    Backend,
    RoutingTable,
    build_table,
    choose_backend,
)
from rollouts.runtime.local.services import LISTEN_HOST, Endpoint, ServiceBalancer, bind_socket
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.spec.core import Ingress

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = "rollouts_ingress_http_requests_total"
DURATION = "rollouts_ingress_http_request_duration_seconds"
_LABELS = ("namespace", "service", "ingress", "version", "rollouts_pod_template_hash", "code")


class IngressProxy:
    """Weighted ingress of the local runtime."""

    def __init__(
        self,
        balancer: ServiceBalancer,
        *,
        stats: TrafficStats | None = None,
        access_log: Path | None = None,
        annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX,
        host: str = LISTEN_HOST,
        metrics_port: int | None = None,
        on_port: Callable[[str, int], None] | None = None,
        rand: Callable[[], float] = random.random,
        nginx_metrics: NginxIngressMetrics | None = None,
    ) -> None:
        self._balancer = balancer
        self.nginx_metrics = nginx_metrics or NginxIngressMetrics()
        self.stats = stats
        self._access_log_path = access_log
        self._access_log: IO[str] | None = None
        self.annotation_prefix = annotation_prefix
        self._host = host
        self._metrics_port = metrics_port
        self._on_port = on_port
        self._rand = rand
        self.table = RoutingTable()
        self._updating = asyncio.Lock()
        self._tables: dict[int, RoutingTable] = {}
        self._runners: dict[int, web.AppRunner] = {}
        self._assigned: dict[str, int] = {}
        self._admin: web.AppRunner | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.ports: dict[str, int] = {}
        # The histogram has every label but the status code.
        self.request_metrics = RequestMetrics(
            requests=REQUESTS, requests_help="Requests served by the local ingress, per version of the service.",
            duration=DURATION,
            duration_help="Time from receiving a request to the end of its answer, per version of the service.",
            labels=_proxy_labels, buckets=DURATION_BUCKETS, histogram_key=lambda key: key[:-1])

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._balancer.start()
        if self._access_log_path is not None and self._access_log is None:
            self._access_log_path.parent.mkdir(parents=True, exist_ok=True)
            self._access_log = self._access_log_path.open("a", encoding="utf-8", buffering=1)
        if self._metrics_port is not None and self._admin is None:
            sock = bind_socket(self._host, self._metrics_port, what="ingress proxy", field="metrics_port")
            app = web.Application()
            app.router.add_get("/metrics", self._metrics_handler)
            self._admin = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
            await self._admin.setup()
            await web.SockSite(self._admin, sock).start()
            self.metrics_address = (self._host, sock.getsockname()[1])

    async def close(self) -> None:
        for port in list(self._runners):
            await self._stop_listener(port)
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None
        if self._access_log is not None:
            self._access_log.close()
            self._access_log = None

    async def __aenter__(self) -> IngressProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- configuration ----------------------------------------------------------------------------

    async def update_ingresses(self, ingresses: Iterable[Ingress | Mapping[str, Any]]) -> RoutingTable:
        """Route by these Ingresses from now on (all of them: stable and canary). Returns the new table;
        its `problems` say what was ignored and why."""
        return await self._update_locked(build_table(ingresses, annotation_prefix=self.annotation_prefix))

    async def _update_locked(self, table: RoutingTable) -> RoutingTable:
        async with self._updating:
            return await self._update(table)

    async def _update(self, table: RoutingTable) -> RoutingTable:
        wanted: dict[str, int] = {}
        for stable in table.stable_ingresses:
            wanted[stable.key] = stable.port if stable.port is not None else self._assigned.get(stable.key, 0)
        by_port: dict[int, list[str]] = {}
        for key, port in wanted.items():
            port = port or await self._allocate(key)
            by_port.setdefault(port, []).append(key)
            self._assigned[key] = port
        tables = {port: table.for_ingresses(keys) for port, keys in by_port.items()}
        for port in tables:
            if port not in self._runners:
                await self._start_listener(port)
        self._swap(table, tables)
        for port in [p for p in self._runners if p not in tables]:
            await self._stop_listener(port)
        for key in [k for k in self._assigned if k not in wanted]:
            del self._assigned[key]
        previous = dict(self.ports)
        self.ports = {key: port for port, keys in by_port.items() for key in keys}
        if self._on_port is not None:
            for key, port in self.ports.items():
                if previous.get(key) != port:
                    self._on_port(key, port)
        for problem in table.problems:
            log.warning("ingress: %s", problem)
        return table

    def _swap(self, table: RoutingTable, tables: dict[int, RoutingTable]) -> None:
        # One assignment: a request reads self._tables once, so it sees either all old or all new routes.
        self._tables = tables
        self.table = table
        # Logged before anything else, so every request routed after this line's timestamp used these weights.
        log.info("ingress: routes updated: %s", _canary_weights(table) or "no canary routes")
        self.nginx_metrics.retain((s.namespace, s.name) for s in table.stable_ingresses)

    def swap_in_place(self, table: RoutingTable) -> bool:
        """Route by `table` at once, from any thread, when it needs no listener started, stopped or moved (the
        same stable Ingresses on the same ports: a weight change, say); False, changing nothing, otherwise or
        while an update is under way. Only for the proxy's one updater (the ingress feed): it is a plain
        assignment, not ordered against updates made by others."""
        if self._updating.locked():
            return False
        by_port: dict[int, list[str]] = {}
        for stable in table.stable_ingresses:
            port = stable.port if stable.port is not None else self._assigned.get(stable.key)
            if port is None or self.ports.get(stable.key) != port:
                return False
            by_port.setdefault(port, []).append(stable.key)
        if len(self.ports) != len(table.stable_ingresses) or set(by_port) != set(self._runners):
            return False
        self._swap(table, {port: table.for_ingresses(keys) for port, keys in by_port.items()})
        for problem in table.problems:
            log.warning("ingress: %s", problem)
        return True

    async def _allocate(self, key: str) -> int:
        sock = bind_socket(self._host, 0, what=f"Ingress {key}", field="port")
        port = int(sock.getsockname()[1])
        await self._start_listener(port, sock)
        return port

    async def _start_listener(self, port: int, sock: Any = None) -> None:
        if port in self._runners:
            if sock is not None:
                sock.close()
            return
        if sock is None:
            sock = bind_socket(
                self._host, port, what=f"ingress port {port}", field="metadata.annotations.rollouts.io/port"
            )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handler(port))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runners[port] = runner

    async def _stop_listener(self, port: int) -> None:
        runner = self._runners.pop(port, None)
        if runner is not None:
            await runner.cleanup()

    # --- requests ---------------------------------------------------------------------------------

    def _handler(self, port: int) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            table = self._tables.get(port, RoutingTable())
            backend = choose_backend(
                table, request.host, request.path, request.headers, request.cookies, self._rand()
            )
            if backend is None:
                text = f"404 Not Found: no Ingress rule for host {request.host} and path {request.path}\n"
                self._log(request, 404, None, "", time.perf_counter() - started)
                return web.Response(status=404, text=text)
            result = await self._balancer.forward(backend.service_key, request)
            duration = time.perf_counter() - started
            endpoint = result.endpoint
            self._observe(backend, result.status, endpoint, duration)
            self.nginx_metrics.observe(backend, request.method, result.status, duration)
            self._log(request, result.status, backend, endpoint.pod if endpoint else "", duration)
            return result.response

        return handle

    def _observe(self, backend: Backend, status: int, endpoint: Endpoint | None, duration: float) -> None:
        pod_hash = endpoint.pod_hash if endpoint else ""
        labels = (backend.namespace, backend.logical_service, backend.stable_ingress, backend.version, pod_hash)
        self.request_metrics.observe((*labels, str(status)), duration)
        if self.stats is not None:
            # The serving pod's hash, so a gate counts only the revision under test; an answer no pod gave
            # (503 while none was ready) is the service's, not a revision's.
            self.stats.record(backend.namespace, backend.logical_service, backend.version, status, duration,
                              pod_hash=pod_hash, served=endpoint is not None)

    def _log(
        self, request: web.Request, status: int, backend: Backend | None, pod: str, duration: float
    ) -> None:
        if self._access_log is None:
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        version = backend.version if backend else "-"
        where = f"{backend.namespace}/{backend.stable_ingress}" if backend else "-"
        line = (
            f"{stamp} {request.method} {request.path_qs} {status} {version} {pod or '-'} {duration:.3f}s "
            f"host={request.host} ingress={where}\n"
        )
        try:
            self._access_log.write(line)
        except OSError as exc:  # a full disk must not fail requests
            log.warning("ingress access log: %s", exc)

    # --- metrics ----------------------------------------------------------------------------------

    def render_metrics(self) -> bytes:
        """The proxy's request metrics in Prometheus text format."""
        return self.request_metrics.render().encode() + self.nginx_metrics.render()

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.render_metrics(), headers={"Content-Type": CONTENT_TYPE})


def _proxy_labels(key: Key) -> list[tuple[str, str]]:
    return list(zip(_LABELS, key, strict=False))


def _canary_weights(table: RoutingTable) -> str:
    """Each canary-enabled route's weight, for the log line that marks when a routing table took effect."""
    return ", ".join(
        f"{r.namespace}/{r.ingress} {r.host or '*'}{r.path} canary {r.canary.namespace}/{r.canary.service} "
        f"weight {r.canary.weight}/{r.canary.weight_total}"
        for r in table.routes
        if r.canary is not None
    )
