"""Serving the dashboard with uvicorn inside an asyncio program (the controller, `rollouts dashboard`).

The dashboard reads and writes through an `ObjectStore`, in practice a `KubeStore` over the Kubernetes
API of whichever cluster its host uses; it never opens the local cluster's SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from rollouts import netaddr
from rollouts.api.app import create_app
from rollouts.store.protocol import ObjectStore

DEFAULT_PORT = 3100
log = logging.getLogger("rollouts.dashboard")


def parse_address(text: str) -> tuple[str, int]:
    """`--dashboard-address`: `HOST:PORT`, `HOST`, `:PORT` or `[v6]:PORT`; host 127.0.0.1 and port 3100 by default."""
    return netaddr.parse_address(text, default_host="127.0.0.1", default_port=DEFAULT_PORT,
                                 what="--dashboard-address")


class _HostedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the program hosting it (which stops it via `should_exit`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


StoreSource = Path | Callable[[], ObjectStore]


def local_cluster_store(home: Path) -> Callable[[], ObjectStore]:
    """A factory of a `KubeStore` for the local cluster of `home` (its HOME/kubeconfig, context
    rollouts-local), whatever $KUBECONFIG says: what a host given only a home means."""
    def open_store() -> ObjectStore:
        from rollouts.kube.client import KubeStore
        from rollouts.kube.config import load_config, local_kubeconfig_path

        return KubeStore(load_config(kubeconfig=local_kubeconfig_path(home)))

    return open_store


def build_server(source: StoreSource, host: str, port: int, token: str) -> uvicorn.Server:
    """The dashboard server over `source`: a store factory (any `ObjectStore`, called once on first use),
    or a rollouts home, meaning that home's local cluster through its kubeconfig."""
    factory = local_cluster_store(source) if isinstance(source, Path) else source
    app = create_app(factory, token=token, bind_host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2, lifespan="on")
    return _HostedServer(config)


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; here that must not take the host program down.
        raise OSError(f"the dashboard cannot listen on {server.config.host}:{server.config.port} "
                      "(address in use or not available)") from None


async def serve_until(server: uvicorn.Server, stop: asyncio.Event) -> None:
    """Runs the server until `stop` is set; raises OSError when it cannot listen."""
    task = asyncio.create_task(_serve(server))
    waiter = asyncio.create_task(stop.wait())
    announce = asyncio.create_task(_announce(server))
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        announce.cancel()
        app = server.config.app
        if isinstance(app, FastAPI):
            app.state.close_streams()
        server.should_exit = True
        waiter.cancel()
    await task


def url(server: uvicorn.Server) -> str:
    """The address to open in a browser (the bound port, brackets around a v6 host)."""
    host = server.config.host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{bound_port(server) or server.config.port}/"


def page_url(address: str, token: str) -> str:
    """The page's address with the token in its fragment (`#token=...`): browsers never send a fragment to
    the server, and the page moves it to sessionStorage and out of the address bar. Not for logs."""
    from urllib.parse import quote

    return f"{address}#token={quote(token, safe='')}"


async def _announce(server: uvicorn.Server) -> None:
    """Logs the address once the server listens, so the controller's log says where the dashboard is."""
    with contextlib.suppress(TimeoutError):
        await wait_started(server, timeout=60)
        address = url(server)
        log.info("dashboard listening on %s", address, extra={"fields": {"address": address}})


async def wait_started(server: uvicorn.Server, timeout: float = 10.0) -> None:
    """Returns once the server listens (or raises TimeoutError)."""
    async with asyncio.timeout(timeout):
        while not server.started:
            await asyncio.sleep(0.02)


def bound_port(server: uvicorn.Server) -> int | None:
    """The port actually bound (useful with port 0)."""
    for item in getattr(server, "servers", []) or []:
        for sock in item.sockets:
            return int(sock.getsockname()[1])
    return None
