"""Assembles a running operator on one Kubernetes API: the store client, the traffic source, the analysis
executor, metrics, notifications and the event-driven loop (informer caches, work queues and, when asked,
leader election: `controller.operator`); stops cleanly on SIGINT/SIGTERM.

The operator only talks to the API (`rollouts.kube.client.KubeStore`): the local cluster's (whose process
runs pods, Service listeners and the ingress proxy) or any other. It holds no runtime, so killing it leaves
every service serving. When the API is the local cluster of a home, the home's lock keeps a second
operator off it (and lets `rollouts doctor` find this one); on another cluster there is no lock here."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from lightkube import AsyncClient

from rollouts.analysis.executor import AnalysisExecutor, store_secret_lookup
from rollouts.analysis.providers.job import JobMetricProvider
from rollouts.analysis.providers.run_target import store_run_target
from rollouts.analysis.providers.sequential import register_sequential_plugin
from rollouts.analysis.providers.traffic import register_traffic_plugin
from rollouts.analysis.sequential.release_start import store_release_start
from rollouts.controller import metrics as controller_metrics
from rollouts.controller.loop import Controller
from rollouts.controller.metrics_http import MetricsServer
from rollouts.controller.notifications import Notifier
from rollouts.controller.operator import WorkQueueMetrics, run_operator
from rollouts.controller.parsed import ModelCache
from rollouts.kube.cache import CachedStore, instance_selector
from rollouts.kube.client import KubeStore
from rollouts.kube.dns import ClusterResolver, set_resolver
from rollouts.kube.leader import FencedKubeStore, LeaderElector
from rollouts.kube.traffic import ClusterTrafficSource
from rollouts.store.lock import HomeLock
from rollouts.store.protocol import NotFound, ObjectStore

log = logging.getLogger("rollouts.controller")

# /healthz turns 503 when the loop has not finished a pass for this long (a pass normally takes < 1 s).
LIVENESS_SECONDS = 30.0
# Argo's Lease name: one lock per controller namespace (and instance id, so shards elect apart).
LEASE_NAME = "argo-rollouts-controller-lock"
# Parsed models kept between reconciles: room for every cached object of a large cluster (controller.parsed).
MODEL_CACHE_LIMIT = 65_536
# A graceful stop that has not finished this long after SIGTERM/SIGINT is cut short (`_shutdown_watchdog`):
# in-flight keys and measurements get 10 s each (controller.operator.SHUTDOWN_SECONDS), the release 3 s.
SHUTDOWN_WATCHDOG_SECONDS = 25.0
# Per Lease request (lightkube's default is 10 s, the whole renew deadline).
LEASE_REQUEST_SECONDS = 4.0
# Something served beside the loop until the stop event is set (the dashboard).
Companion = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def _secret(store: ObjectStore, namespace: str, name: str) -> dict[str, object]:
    try:
        return store.get("Secret", namespace, name)
    except NotFound as exc:
        raise LookupError(name) from exc


def _liveness(controller: Controller, stale_after: float = LIVENESS_SECONDS) -> Callable[[], tuple[bool, str]]:
    started = controller.clock.monotonic()

    def healthy() -> tuple[bool, str]:
        last = controller.last_pass
        age = controller.clock.monotonic() - (last if last is not None else started)
        if age <= stale_after:
            return True, f"last pass {age:.1f}s ago" if last is not None else "starting"
        return False, f"no pass over the store for {age:.0f}s (limit {stale_after:.0f}s)"

    return healthy


@dataclass(frozen=True)
class Scope:
    """What this operator acts on and with whom it shares the work: `namespace` (None: all), Argo's
    `instance_id` label filter, and leader election on a Lease in `lease_namespace` (None: no election)."""

    namespace: str | None = None
    instance_id: str | None = None
    lease_namespace: str | None = None
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}")
    workers: int = 2


def register_traffic_plugins(store: KubeStore, lookups: ObjectStore | None = None) -> ClusterTrafficSource | None:
    """Bind the traffic plugins to the cluster's own request statistics when it serves them (the local
    cluster), else to none (a real cluster: they query Prometheus). Gates without `service` read the owning
    rollout's service and count only its revision's pods, looked up through the API."""
    source = ClusterTrafficSource.probe(store)
    reader = lookups or store  # the informer cache when there is one: a lookup per measurement costs nothing
    target = store_run_target(reader.get)
    register_traffic_plugin(source, run_target=target)
    register_sequential_plugin(source, run_target=target, stored_start=store_release_start(reader.list))
    return source


async def _bounded(step: Coroutine[Any, Any, Any], seconds: float) -> None:
    """Await `step` for at most `seconds`, without cancelling it past that (an HTTP client's close with a
    request still under way may never finish its cancellation): a stop must not wait on it."""
    task = asyncio.ensure_future(step)
    await asyncio.wait({task}, timeout=seconds)


def _dump_tasks(loop: asyncio.AbstractEventLoop) -> str:
    """Every task of `loop` with where it waits, and every thread's stack: what a stuck stop waits on."""
    out = io.StringIO()
    for task in list(asyncio.all_tasks(loop)):
        out.write(f"task {task.get_name()}: {task.get_coro()!r}\n")
        with contextlib.suppress(Exception):
            task.print_stack(limit=12, file=out)
    for ident, frame in sys._current_frames().items():
        out.write(f"thread {ident}:\n{''.join(traceback.format_stack(frame, limit=12))}")
    return out.getvalue()


def _shutdown_watchdog(loop: asyncio.AbstractEventLoop, seconds: float | None = None) -> None:
    """Bound a graceful stop: if the process still runs `seconds` after the signal, log what every task waits
    on and exit (a kubelet would SIGKILL it after its grace period anyway; its Lease then simply expires).
    A thread, so that a blocked event loop cannot keep it from firing."""
    limit = SHUTDOWN_WATCHDOG_SECONDS if seconds is None else seconds

    def fire() -> None:
        log.error("graceful stop still unfinished after %.0fs: exiting now; waiting were:\n%s", limit,
                  _dump_tasks(loop))
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(limit, fire)
    timer.daemon = True
    timer.start()


def _metrics_target() -> str:
    return f"controller-{os.getpid()}"


async def _register_metrics(store: KubeStore, host: str, port: int) -> None:
    """On a local cluster, the Service rollouts/rollouts-metrics (as deploy/kubernetes installs it) with
    Endpoints at this operator's /metrics, so the cluster's Prometheus discovers it through the API."""
    from rollouts.store.metrics_endpoints import CONTROLLER_METRICS, register_metrics

    address = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host.strip("[]")
    try:
        await asyncio.to_thread(register_metrics, store, CONTROLLER_METRICS, address, port, _metrics_target())
    except Exception as exc:  # scraping is a convenience: the operator runs without it
        log.warning("cannot register the metrics endpoint with the local cluster: %s", exc)


async def _unregister_metrics(store: KubeStore) -> None:
    from rollouts.store.metrics_endpoints import CONTROLLER_METRICS, unregister_metrics

    try:
        await asyncio.to_thread(unregister_metrics, store, CONTROLLER_METRICS, _metrics_target())
    except Exception as exc:  # the API may be gone first; the next operator prunes the address
        log.info("cannot unregister the metrics endpoint: %s", exc)


async def run_controller(store: KubeStore, *, home: Path | None = None, prometheus_address: str | None = None,
                         stop: asyncio.Event | None = None, notifications_config: Path | None = None,
                         metrics_address: str | None = None, companions: Sequence[Companion] = (),
                         metrics_allowed_hosts: frozenset[str] = frozenset(), scope: Scope | None = None) -> None:
    """Run the operator over `store` until `stop` is set, reading through informer caches (`scope` says
    which objects, and whether to elect a leader first). `home`: the rollouts home whose local cluster
    `store` talks to (its lock is held while running; None for any other cluster). `metrics_address`
    (HOST:PORT) serves /metrics and /healthz; None serves nothing. `companions` run beside the loop until
    `stop` (the dashboard); one failing stops the operator."""
    stop = stop or asyncio.Event()
    lock = HomeLock(home).acquire() if home is not None else None
    elector: LeaderElector | None = None
    try:
        scope = scope or Scope()
        acting: KubeStore = store
        if scope.lease_namespace is not None:
            lease = LEASE_NAME if not scope.instance_id else f"{LEASE_NAME}-{scope.instance_id}"
            # Lease requests time out well inside the renew deadline: one slow answer leaves time to retry.
            client = AsyncClient(config=store.config.to_lightkube(), timeout=httpx2.Timeout(LEASE_REQUEST_SECONDS))
            elector = LeaderElector(client, scope.lease_namespace, lease, scope.identity)
            # Watch the Lease from now on, while the caches fill (a slow start must not delay the expiry clock
            # of a dead leader's record); it is taken only once the operator has synced (`Operator.run`).
            elector.may_acquire.clear()
            elector.start()
            # Every write the controller makes (through the cache) first checks the Lease is still held.
            acting = FencedKubeStore(store, elector.fence)
        cache = CachedStore.connect(acting, namespace=scope.namespace,
                                    label_selector=instance_selector(scope.instance_id))
        source = register_traffic_plugins(store, cache)
        if home is not None:
            # The local cluster's Services are listeners on loopback: `<svc>.<ns>.svc` in a template reaches them.
            set_resolver(ClusterResolver(cache))
        controller = Controller(store=cache, models=ModelCache(limit=MODEL_CACHE_LIMIT))
        controller.executor = AnalysisExecutor(
            secret_lookup=store_secret_lookup(lambda ns, name: _secret(cache, ns, name)),
            prometheus_address=prometheus_address,
            # Job metrics are batch/v1 Jobs the cluster runs: a restarted operator finds its Job again.
            providers={"job": JobMetricProvider(store=cache)},
        )
        metrics = controller_metrics.ControllerMetrics(cache)
        controller.observers.append(metrics)
        queues = WorkQueueMetrics()
        server = MetricsServer(render=metrics.render, healthy=_liveness(controller), extra=[queues.render],
                               allowed_hosts=metrics_allowed_hosts)
        # /metrics reads the caches: serving it before they are filled would export no rollout at all for a
        # scrape (and Prometheus would mark every series stale). So the caches fill first.
        await cache.start()
        await cache.wait_synced()
        if metrics_address is not None:
            await server.start(metrics_address)
            if home is not None:
                await _register_metrics(store, server.host, server.port)
        controller_metrics.activate(metrics)
        notifier = Notifier(cache, config_file=notifications_config)
        controller.observers.append(notifier)
        await notifier.start()
        loop = asyncio.get_running_loop()
        stopping: list[float] = []

        def on_signal(sig: signal.Signals) -> None:
            if not stopping:
                stopping.append(loop.time())
                log.info("%s: stopping", sig.name)
                _shutdown_watchdog(loop)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        log.info("controller started", extra={"fields": {
            "cluster": store.config.describe(), "home": str(home or ""), "pid": os.getpid(),
            "trafficSource": "cluster" if source is not None else "prometheus",
            "namespace": scope.namespace or "(all)", "instanceID": scope.instance_id or "",
            "leaderElection": scope.lease_namespace is not None}})

        def stop_on_failure(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                stop.set()

        tasks = [asyncio.create_task(run(stop)) for run in companions]
        for task in tasks:
            task.add_done_callback(stop_on_failure)
        try:
            await run_operator(controller, cache, stop, workers=scope.workers, elector=elector, metrics=queues)
            for task in tasks:
                await task
        finally:
            for task in tasks:
                task.cancel()
            set_resolver(None)
            if elector is not None:
                await elector.stop(release=True)  # already done by the operator, unless it never ran
                await _bounded(elector.client.close(), 2.0)
            await cache.stop()
            await cache.client.close()
            await notifier.close()
            if home is not None and metrics_address is not None:
                await _unregister_metrics(store)
            await server.close()
            controller_metrics.activate(None)
        took = f" ({loop.time() - stopping[0]:.1f}s after the signal)" if stopping else ""
        log.info("controller stopped%s", took, extra={"fields": {"cluster": store.config.server}})
    finally:
        if elector is not None and not elector.stopped:
            await elector.stop(release=True)  # startup failed before the operator ran
        if lock is not None:
            lock.release()
