"""The local data plane on its own event loop: the ingress proxy and the Service balancers serve requests on
a loop in a daemon thread, so nothing the controller's loop does (a store call waiting on SQLite's write
lock held by another process, a long reconcile) delays a request.

`DataPlaneLoop` owns the thread. `ThreadedServiceBalancer` and `ThreadedIngressProxy` are the balancer and
proxy with their coroutines (listeners, the upstream HTTP session, routing-table swaps) run on that loop:
callers on the controller's loop simply await them; a plain thread (the ingress feed) calls
`update_ingresses_from_thread`. Plain setters (`set_endpoints`,
`set_traffic_identity`) are single assignments, safe from any thread. Port callbacks (which write to the
store) are handed back to the loop that started the data plane: the data plane itself never touches the
store. Traffic counters (TrafficStats) are shared and locked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from rollouts.runtime.local.proxy import IngressProxy
from rollouts.runtime.local.routing import RoutingTable, build_table
from rollouts.runtime.local.services import ServiceBalancer
from rollouts.spec.core import Ingress, Service

T = TypeVar("T")
PortCallback = Callable[[str, int], None]


class DataPlaneLoop:
    """An asyncio loop in a daemon thread, and a way to await coroutines on it from another loop."""

    def __init__(self, name: str = "rollouts-data-plane") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._home: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent); call from the loop that port callbacks should run on."""
        if self.running:
            return
        try:
            self._home = asyncio.get_running_loop()
        except RuntimeError:
            self._home = None
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=main, name=self._name, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def on_this_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the data-plane loop (directly when already on it)."""
        if self._loop is None or self.on_this_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the data-plane loop from a thread with no loop of its own, and wait for its result."""
        if self._loop is None or not self.running:
            coro.close()
            raise RuntimeError("the data plane is not running")
        if self.on_this_loop():
            coro.close()
            raise RuntimeError("call() would block the data-plane loop on itself")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def hand_back(self, callback: PortCallback | None) -> PortCallback | None:
        """`callback`, made to run on the loop that started the data plane instead of the data plane's."""
        if callback is None:
            return None

        def deliver(key: str, port: int) -> None:
            home = self._home
            if home is not None and not home.is_closed() and self.on_this_loop():
                home.call_soon_threadsafe(callback, key, port)
            else:
                callback(key, port)

        return deliver


class ThreadedServiceBalancer(ServiceBalancer):
    """A ServiceBalancer whose listeners and upstream session live on the data-plane loop."""

    def __init__(self, data_plane: DataPlaneLoop, *, on_port: PortCallback | None = None, **options: Any) -> None:
        super().__init__(on_port=data_plane.hand_back(on_port), **options)
        self._data_plane = data_plane

    async def start(self) -> None:
        self._data_plane.start()
        await self._data_plane.run(super().start())

    async def close(self) -> None:
        await self._data_plane.run(super().close())

    async def ensure_service(self, service: Service | Mapping[str, Any]) -> int:
        return await self._data_plane.run(super().ensure_service(service))

    async def ensure_cluster_ip(self, key: str, cluster_ip: str | None, ports: Sequence[int]) -> list[str]:
        return await self._data_plane.run(super().ensure_cluster_ip(key, cluster_ip, ports))

    async def remove_service(self, key: str) -> None:
        await self._data_plane.run(super().remove_service(key))


class ThreadedIngressProxy(IngressProxy):
    """An IngressProxy whose listeners serve on the data-plane loop."""

    def __init__(self, data_plane: DataPlaneLoop, balancer: ServiceBalancer, *,
                 on_port: PortCallback | None = None, **options: Any) -> None:
        super().__init__(balancer, on_port=data_plane.hand_back(on_port), **options)
        self._data_plane = data_plane

    async def start(self) -> None:
        self._data_plane.start()
        await self._data_plane.run(super().start())

    async def close(self) -> None:
        await self._data_plane.run(super().close())

    async def update_ingresses(self, ingresses: Iterable[Ingress | Mapping[str, Any]]) -> RoutingTable:
        return await self._data_plane.run(super().update_ingresses(list(ingresses)))

    def update_ingresses_from_thread(self, ingresses: Iterable[Ingress | Mapping[str, Any]],
                                     timeout: float = 30.0) -> RoutingTable:
        """`update_ingresses` for a plain thread, the proxy's one updater (the ingress feed's): blocks that
        thread, never a loop. A table that needs no listener changed (a weight change) is swapped in from this
        thread at once: a data-plane loop busy serving requests would otherwise delay it by its backlog."""
        table = build_table(list(ingresses), annotation_prefix=self.annotation_prefix)
        if self.swap_in_place(table):
            return table
        return self._data_plane.call(self._update_locked(table), timeout)
