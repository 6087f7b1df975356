"""The controller's HTTP endpoints: `/metrics` (the controller's series followed by the local ingress proxy's
request series, so one scrape target carries both) and `/healthz` (liveness: 200 while the loop keeps
completing passes, 503 once it has not for `stale_after` seconds)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from rollouts.controller.metrics import CONTENT_TYPE
from rollouts.netaddr import AddressError, parse_address

log = logging.getLogger("rollouts.controller")

DEFAULT_ADDRESS = "127.0.0.1:8090"


def parse_metrics_address(value: str) -> tuple[str, int]:
    """`--metrics-address`: host and port are both required; port 0 picks a free one."""
    return parse_address(value, what="--metrics-address", example=DEFAULT_ADDRESS)


@dataclass
class MetricsServer:
    """Serves `render()` + every `extra()` on /metrics and `healthy()` on /healthz."""

    render: Callable[[], bytes]
    healthy: Callable[[], tuple[bool, str]]
    extra: list[Callable[[], bytes]]
    _runner: web.AppRunner | None = None
    port: int = 0
    host: str = ""

    async def start(self, address: str) -> None:
        host, port = parse_metrics_address(address)
        app = web.Application()
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
