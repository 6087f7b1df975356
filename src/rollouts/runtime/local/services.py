"""Service balancers of the local runtime: HTTP listeners for each Service, forwarding each request round
robin to the Service's ready endpoints (pod processes, at their own addresses).

Two kinds of listener per Service:
- the host-port listener on 127.0.0.1, which answers for every Service port: its port is the Service's
  `rollouts.io/port` annotation, else a free port chosen once and kept for the life of the balancer;
  `on_port(service_key, port)` reports it and `ports` shows it (`rollouts port-forward` and the CLI use it);
- one listener on the Service's cluster IP (127.2.x.y, `spec.clusterIP`) per `spec.ports[].port`, as
  kube-proxy would serve it (`ensure_cluster_ip`); each forwards to the target port of its Service port.
The ingress proxy calls `forward()` in-process rather than going through a Service's port.

Forwarding follows NGINX's defaults where they matter: the client's Host header is passed on, X-Forwarded-*
and X-Real-IP are set, hop-by-hop headers are dropped, the body is streamed both ways, and a connection that
cannot be established is retried on the next endpoint (the request was not sent). No ready endpoint -> 503;
every endpoint refusing -> 502; an upstream that does not answer in time -> 504.
"""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from rollouts.runtime.local.routing import PORT_ANNOTATION
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.spec.core import Service

log = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"

# RFC 9110 section 7.6.1, plus the ones proxies conventionally strip.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True)
class Endpoint:
    """One ready pod behind a Service."""

    host: str
    port: int
    pod: str = ""
    pod_hash: str = ""
    # (Service port, the pod's port for it) of each Service port; `port` serves the rest (the host-port
    # listener, which answers for every Service port).
    targets: tuple[tuple[int, int], ...] = ()

    def port_for(self, service_port: int | None) -> int:
        for port, target in self.targets:
            if port == service_port:
                return target
        return self.port


@dataclass(frozen=True)
class TrafficIdentity:
    """How requests arriving on a Service's own port are counted in TrafficStats (blue/green preview and
    active Services are reached directly, not through the ingress)."""

    namespace: str
    service: str
    version: str


@dataclass(frozen=True)
class ForwardResult:
    """What forwarding one request produced; `response` has been sent to the client already."""

    response: web.StreamResponse
    status: int
    endpoint: Endpoint | None


class ServiceError(RuntimeError):
    """A Service listener that cannot be started (bad or taken port)."""


class ServiceBalancer:
    """Listeners and round-robin forwarding for the Services of the local runtime."""

    def __init__(
        self,
        *,
        host: str = LISTEN_HOST,
        on_port: Callable[[str, int], None] | None = None,
        stats: TrafficStats | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
    ) -> None:
        self._host = host
        self._on_port = on_port
        self._stats = stats
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._endpoints: dict[str, tuple[Endpoint, ...]] = {}
        self._cursor: dict[str, itertools.count[int]] = {}
        self._identities: dict[str, TrafficIdentity] = {}
        self._runners: dict[str, web.AppRunner] = {}
        self._assigned: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self.ports: dict[str, int] = {}
        # Service key -> {(cluster IP, Service port): its listener}.
        self._cluster: dict[str, dict[tuple[str, int], web.AppRunner]] = {}

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
            )

    async def close(self) -> None:
        for key in list(self._runners):
            await self.remove_service(key)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> ServiceBalancer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- services ---------------------------------------------------------------------------------

    async def ensure_service(self, service: Service | Mapping[str, Any]) -> int:
        """Listen for a Service (idempotent); returns its port."""
        svc = service if isinstance(service, Service) else Service.model_validate(service)
        key = service_key(svc)
        if key in self._runners:
            return self.ports[key]
        port = self._requested_port(svc, key)
        sock = bind_socket(self._host, port, what=f"Service {key}", field=f"metadata.annotations.{PORT_ANNOTATION}")
        actual = sock.getsockname()[1]
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._listener_handler(key))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runners[key] = runner
        self._assigned[key] = actual
        self.ports[key] = actual
        if self._on_port is not None:
            self._on_port(key, actual)
        return actual

    async def ensure_cluster_ip(self, key: str, cluster_ip: str | None, ports: Sequence[int]) -> list[str]:
        """Listen on cluster_ip:port for each Service port (None: none, a headless Service); listeners no
        longer wanted stop. Returns what could not be listened on, one sentence each (the caller reports it);
        the host-port listener serves those ports meanwhile."""
        wanted = {(cluster_ip, int(port)) for port in ports} if cluster_ip else set()
        current = self._cluster.setdefault(key, {})
        for address in [a for a in current if a not in wanted]:
            await current.pop(address).cleanup()
        problems = []
        for ip, port in sorted(wanted - set(current)):
            try:
                sock = bind_socket(ip, port, what=f"Service {key}", field="spec.clusterIP")
            except ServiceError as exc:
                problems.append(str(exc))
                continue
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._listener_handler(key, port))
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            current[(ip, port)] = runner
        return problems

    def cluster_addresses(self, key: str) -> list[tuple[str, int]]:
        """The cluster IP and port of each cluster-IP listener of a Service that is up."""
        return sorted(self._cluster.get(key, {}))

    async def remove_service(self, key: str) -> None:
        for runner_ in self._cluster.pop(key, {}).values():
            await runner_.cleanup()
        runner = self._runners.pop(key, None)
        self.ports.pop(key, None)
        self._endpoints.pop(key, None)
        self._identities.pop(key, None)
        if runner is not None:
            await runner.cleanup()

    def _requested_port(self, svc: Service, key: str) -> int:
        raw = svc.metadata.annotations.get(PORT_ANNOTATION)
        if raw is None:
            return self._assigned.get(key, 0)
        try:
            port = int(raw)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise ServiceError(
                f"Service {key}: metadata.annotations.{PORT_ANNOTATION}: {raw!r} is not a port between 1 and 65535"
            )
        return port

    def set_endpoints(self, key: str, endpoints: Sequence[Endpoint]) -> None:
        """Replace the ready endpoints of a Service (`namespace/name`)."""
        self._endpoints[key] = tuple(endpoints)

    def endpoints(self, key: str) -> tuple[Endpoint, ...]:
        return self._endpoints.get(key, ())

    def set_traffic_identity(self, key: str, identity: TrafficIdentity | None) -> None:
        """Count requests that arrive on this Service's own port under `identity` (None: do not count)."""
        if identity is None:
            self._identities.pop(key, None)
        else:
            self._identities[key] = identity

    def pick(self, key: str) -> Endpoint | None:
        """The next endpoint of a Service in round-robin order, None when it has none ready."""
        endpoints = self._endpoints.get(key, ())
        if not endpoints:
            return None
        cursor = self._cursor.setdefault(key, itertools.count())
        return endpoints[next(cursor) % len(endpoints)]

    # --- forwarding -------------------------------------------------------------------------------

    async def forward(self, key: str, request: web.Request, service_port: int | None = None) -> ForwardResult:
        """Send `request` to one ready endpoint of Service `key` and stream the answer back to the client;
        `service_port`: the Service port it came in on (its target port on the pod), None for the first."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        endpoints = self._endpoints.get(key, ())
        if not endpoints:
            body = f"503 Service Unavailable: Service {key} has no ready endpoints (no ready pod to send to)\n"
            return await _plain(request, 503, body, None)
        first = self.pick(key)
        assert first is not None
        start = endpoints.index(first) if first in endpoints else 0
        ordered = [endpoints[(start + i) % len(endpoints)] for i in range(len(endpoints))]
        headers = _upstream_headers(request)
        data = request.content if request.body_exists else None
        failures: list[str] = []
        for endpoint in ordered:
            target = endpoint.port_for(service_port)
            url = f"http://{endpoint.host}:{target}{request.rel_url}"
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout, sock_read=self._read_timeout
            )
            try:
                upstream_cm = self._session.request(
                    request.method, url, headers=headers, data=data, allow_redirects=False,
                    timeout=timeout, skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                )
                async with upstream_cm as upstream:
                    return await _relay(request, upstream, endpoint)
            except aiohttp.ClientConnectorError as exc:
                # Not sent yet: another endpoint may take it (NGINX's proxy_next_upstream error).
                failures.append(f"{endpoint.pod or endpoint.host} at {endpoint.host}:{target} ({exc.os_error})")
                if data is not None and data.total_bytes:
                    break
                continue
            except (TimeoutError, aiohttp.ServerTimeoutError):
                body = f"504 Gateway Timeout: pod {endpoint.pod} of Service {key} did not answer in time\n"
                return await _plain(request, 504, body, endpoint)
            except aiohttp.ClientError as exc:
                body = f"502 Bad Gateway: pod {endpoint.pod} of Service {key} failed: {exc}\n"
                return await _plain(request, 502, body, endpoint)
        body = f"502 Bad Gateway: no endpoint of Service {key} accepted a connection: {', '.join(failures)}\n"
        return await _plain(request, 502, body, None)

    def _listener_handler(self, key: str, service_port: int | None = None) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            result = await self.forward(key, request, service_port)
            identity = self._identities.get(key)
            if identity is not None and self._stats is not None:
                self._stats.record(
                    identity.namespace, identity.service, identity.version, result.status,
                    time.perf_counter() - started,
                    pod_hash=result.endpoint.pod_hash if result.endpoint else "", served=result.endpoint is not None,
                )
            return result.response

        return handle


def service_key(svc: Service) -> str:
    return f"{svc.metadata.namespace or 'default'}/{svc.metadata.name or ''}"


def bind_socket(host: str, port: int, *, what: str, field: str) -> socket.socket:
    """A listening-ready socket on host:port (0: any free port), with an error naming the object and field."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServiceError(f"{what}: {field}: cannot listen on {host}:{port} ({exc.strerror}); "
                           "choose a free port") from exc
    sock.setblocking(False)
    return sock


def _upstream_headers(request: web.Request) -> dict[str, str]:
    # Expect is answered by our own server; passing it on would make the upstream wait for a second one.
    drop = {*HOP_BY_HOP, "expect"}
    connection = request.headers.get("Connection", "")
    drop.update(token.strip().lower() for token in connection.split(",") if token.strip())
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name.lower() in drop:
            continue
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Real-IP"] = peer
    headers.setdefault("X-Forwarded-Host", request.host)
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    return headers


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse, endpoint: Endpoint) -> ForwardResult:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    for name, value in upstream.headers.items():
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away; nothing left to send it
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The status line is already out: all that can be done is cutting the connection so the client
        # sees a truncated answer instead of a silently short one.
        log.warning("pod %s broke off its answer to %s %s: %s", endpoint.pod, request.method, request.path, exc)
        response.force_close()
        if request.transport is not None:
            request.transport.close()
    return ForwardResult(response=response, status=upstream.status, endpoint=endpoint)


async def _plain(request: web.Request, status: int, body: str, endpoint: Endpoint | None) -> ForwardResult:
    response = web.Response(status=status, text=body)
    return ForwardResult(response=response, status=status, endpoint=endpoint)
