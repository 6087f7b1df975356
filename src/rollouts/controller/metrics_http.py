"""The controller's HTTP endpoints: `/metrics` (the controller's series followed by the local ingress proxy's
request series, so one scrape target carries both) and `/healthz` (liveness: 200 while the loop keeps
completing passes, 503 once it has not for `stale_after` seconds).

Both answer only to a Host header that names this machine's loopback, the bound address, or a name on the
allow-list (`--metrics-allowed-hosts`, for a Prometheus that scrapes a non-loopback address): a
DNS-rebinding page must not read rollout names, hashes and phases through a browser."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from rollouts.controller.metrics import CONTENT_TYPE
from rollouts.netaddr import (
    AddressError,
    HostHeaderError,
    host_allowed,
    is_loopback_host,
    parse_address,
    parse_host_header,
)

log = logging.getLogger("rollouts.controller")

DEFAULT_ADDRESS = "127.0.0.1:8090"


def parse_metrics_address(value: str) -> tuple[str, int]:
    """`--metrics-address`: host and port are both required; port 0 picks a free one."""
    return parse_address(value, what="--metrics-address", example=DEFAULT_ADDRESS)


def parse_allowed_hosts(values: Iterable[str]) -> frozenset[str]:
    """`--metrics-allowed-hosts`: host names or addresses (comma-separated or repeated), `*` for any."""
    hosts: set[str] = set()
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item != "*":
                try:
                    host, port = parse_host_header(item)
                except HostHeaderError:
                    host, port = "", None
                if not host or port is not None:
                    raise AddressError(f"--metrics-allowed-hosts: {item!r} is not a host name or address "
                                       "(no port, no scheme; e.g. prometheus.internal,10.0.0.5 or *)")
                item = host
            hosts.add(item)
    return frozenset(hosts)


@dataclass
class MetricsServer:
    """Serves `render()` + every `extra()` on /metrics and `healthy()` on /healthz."""

    render: Callable[[], bytes]
    healthy: Callable[[], tuple[bool, str]]
    extra: list[Callable[[], bytes]]
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    _runner: web.AppRunner | None = None
    port: int = 0
    host: str = ""

    async def start(self, address: str) -> None:
        host, port = parse_metrics_address(address)
        allowed = set(self.allowed_hosts)
        if not is_loopback_host(host) and host not in ("0.0.0.0", "::", ""):
            allowed.add(host.strip("[]").lower())  # the address it was asked to listen on names itself
        app = web.Application(middlewares=[_host_check(frozenset(allowed))])
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise AddressError(f"--metrics-address {address}: cannot listen ({exc.strerror or exc}); "
                               "choose another HOST:PORT") from exc
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.host, self.port = host, int(sockets[0].getsockname()[1]) if sockets else port
        log.info("metrics listening", extra={"fields": {"address": f"{self.host}:{self.port}"}})

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            body = self.render() + b"".join(part() for part in self.extra)
        except Exception as exc:  # a scrape must say what went wrong, not drop the connection
            log.exception("metrics scrape failed")
            return web.Response(status=500, text=f"metrics unavailable: {exc}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, detail = self.healthy()
        return web.Response(status=200 if ok else 503, text=f"{'ok' if ok else 'unhealthy'}: {detail}\n")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _host_check(allowed: frozenset[str]) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        value = request.headers.get("Host")
        if host_allowed(value, allowed):
            return await handler(request)
        try:
            parse_host_header(value or "")
        except HostHeaderError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        return web.Response(status=421, text=(
            f"Host {value!r} is not this controller's: it answers to localhost, 127.0.0.1, [::1]"
            f"{''.join(', ' + h for h in sorted(allowed))} (--metrics-allowed-hosts adds names)\n"))

    return check
