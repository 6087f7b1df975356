"""The local cluster's own controllers inside the cluster process: one `LocalRuntime` (ReplicaSets -> pods
as processes, Services -> listeners, Ingresses -> the proxy) over the API server's store, on its own thread
and event loop. Ingresses reach the proxy apart from the sync passes, through the runtime's ingress feed
(a thread following the change feed for Ingresses alone), so a weight change is applied as soon as it is
written, not after the pods' work.

Why a thread of its own: the runtime calls the synchronous store directly, and a call waiting on SQLite's
write lock must not hold up API requests (nor the other way round). The runtime re-syncs when a kind it acts
on changes in the store's change feed, when a pod's readiness or phase changes, and at least every
`SYNC_PERIOD` seconds; a failing sync is logged and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rollouts.cluster import prometheus
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.runtime.local.runtime import LocalRuntime
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.store.metrics_endpoints import register_metrics
from rollouts.store.protocol import Expired, ObjectStore

log = logging.getLogger(__name__)

SYNC_PERIOD = 0.5
# Kinds whose changes the sync pass acts on; everything else in the feed does not wake it (Ingresses have a
# feed of their own).
WATCHED_KINDS = frozenset({"ReplicaSet", "Pod", "Service", "Job"})
# Changes arriving together (a rollout step writes several objects) are handled by one sync.
COALESCE_SECONDS = 0.02


class RuntimeHost:
    """Starts, drives and stops the runtime on its own loop; `start`/`close` block the caller."""

    def __init__(self, store: ObjectStore, home: Path, options: RuntimeOptions) -> None:
        self.store = store
        self.home = home
        self.options = options
        self.syncs = 0  # completed sync passes, for tests and the log
        self.failures = 0
        self.runtime: LocalRuntime | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wakeup: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._done: Future[None] = Future()

    @property
    def stats(self) -> TrafficStats | None:
        return self.runtime.stats if self.runtime is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the runtime; raises what its start-up raised (a proxy port in use, say)."""
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, args=(started,), name="rollouts-cluster-runtime",
                                        daemon=True)
        self._thread.start()
        started.result(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop every pod and listener (each pod gets its grace period) and the thread."""
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        with contextlib.suppress(Exception):
            self._done.result(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def api_listening(self, api_url: str) -> None:
        """Called once the API serves at `api_url`: set up what talks to the API (the cluster's Prometheus,
        the ingress metrics registration). A failure is logged: the cluster runs on without it."""
        runtime = self.runtime
        try:
            metrics = runtime.proxy.metrics_address if runtime is not None else None
            if metrics is not None:
                register_metrics(self.store, prometheus.INGRESS_METRICS, metrics[0], metrics[1], "ingress-proxy")
            binary = prometheus.find_binary() if self.options.prometheus else None
            if binary is None:
                if self.options.prometheus:
                    log.warning("%s", prometheus.missing_line())
                prometheus.uninstall(self.store)
                return
            prometheus.install(self.store, self.home, api_url, binary, self.options.prometheus_scrape_interval)
        except Exception:
            log.exception("the cluster's Prometheus could not be set up; the cluster runs without it")
        self.wake()

    def wake(self) -> None:
        """Ask for a sync pass soon; safe from any thread."""
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                wakeup.set()
                return
        except RuntimeError:
            pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wakeup.set)

    def _ingress_metrics_port(self) -> int | None:
        # Prometheus scrapes the ingress proxy: its /metrics is served (on a free port unless one is asked for).
        if self.options.ingress_metrics_port is None and self.options.prometheus:
            return 0
        return self.options.ingress_metrics_port

    # ---- the runtime's thread ----------------------------------------------------------------------

    def _main(self, started: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._run(started))
            self._done.set_result(None)
        except BaseException as exc:  # reported to start() or close(), whichever waits
            if not started.done():
                started.set_exception(exc)
            self._done.set_exception(exc)
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _run(self, started: Future[None]) -> None:
        self._wakeup, self._stop = asyncio.Event(), asyncio.Event()
        options = self.options
        runtime = LocalRuntime(self.store, self.home, images=options.images, probe_period=options.probe_period,
                               on_change=self.wake, metrics_port=self._ingress_metrics_port(),
                               max_pods=options.max_pods, detached=True)
        await runtime.start()
        runtime.follow_ingresses()
        self.runtime = runtime
        follower = asyncio.create_task(self._follow_store(runtime), name="runtime-store-follower")
        started.set_result(None)
        log.info("local runtime started (max %d pods, probe period %gs)", options.max_pods, options.probe_period)
        try:
            while not self._stop.is_set():
                self._wakeup.clear()
                await self._sync_once(runtime)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_for_work(), SYNC_PERIOD)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await runtime.close()
            log.info("local runtime stopped")

    async def _wait_for_work(self) -> None:
        assert self._wakeup is not None and self._stop is not None
        stop = asyncio.create_task(self._stop.wait())
        wakeup = asyncio.create_task(self._wakeup.wait())
        try:
            await asyncio.wait({stop, wakeup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wakeup.cancel()
        if not self._stop.is_set():
            await asyncio.sleep(COALESCE_SECONDS)

    async def _sync_once(self, runtime: LocalRuntime) -> None:
        try:
            await runtime.sync()
            self.syncs += 1
        except Exception:
            self.failures += 1
            log.exception("local runtime: sync failed; retrying")

    async def _follow_store(self, runtime: LocalRuntime) -> None:
        """Wake the sync loop whenever an object of a watched kind changes, and tell the runtime's lists
        which kinds to read again (an idle pass reads nothing)."""
        since = self.store.current_version()
        runtime.lists.follow()
        while True:
            before = self.store.current_version()
            try:
                changes: list[Any] = await self.store.watch_async(since, set(WATCHED_KINDS), timeout=5.0)
            except Expired:
                since = self.store.current_version()
                runtime.lists.changed(None)
                self.wake()
                continue
            except Exception:
                log.exception("local runtime: reading the change feed failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if changes:
                since = changes[-1].resource_version
                runtime.lists.changed({change.kind for change in changes})
                self.wake()
            else:
                since = max(since, before)
