"""Assembles a running operator on one Kubernetes API: the store client, the traffic source, the analysis
executor, metrics, notifications and the loop; stops cleanly on SIGINT/SIGTERM.

The operator only talks to the API (`rollouts.kube.client.KubeStore`): the local cluster's (whose process
runs pods, Service listeners and the ingress proxy) or any other. It holds no runtime, so killing it leaves
every service serving. When the API is the local cluster of a home, the home's lock keeps a second
operator off it (and lets `rollouts doctor` find this one); on another cluster there is no lock here."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

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
from rollouts.kube.client import KubeStore
from rollouts.kube.traffic import ClusterTrafficSource
from rollouts.store.lock import HomeLock
from rollouts.store.protocol import NotFound, ObjectStore

log = logging.getLogger("rollouts.controller")

# /healthz turns 503 when the loop has not finished a pass for this long (a pass normally takes < 1 s).
LIVENESS_SECONDS = 30.0
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


def register_traffic_plugins(store: KubeStore) -> ClusterTrafficSource | None:
    """Bind the traffic plugins to the cluster's own request statistics when it serves them (the local
    cluster), else to none (a real cluster: they query Prometheus). Gates without `service` read the owning
    rollout's service and count only its revision's pods, looked up through the API."""
    source = ClusterTrafficSource.probe(store)
    target = store_run_target(store.get)
    register_traffic_plugin(source, run_target=target)
    register_sequential_plugin(source, run_target=target, stored_start=store_release_start(store.list))
    return source


async def run_controller(store: KubeStore, *, home: Path | None = None, prometheus_address: str | None = None,
                         stop: asyncio.Event | None = None, notifications_config: Path | None = None,
                         metrics_address: str | None = None, companions: Sequence[Companion] = (),
                         metrics_allowed_hosts: frozenset[str] = frozenset()) -> None:
    """Run the operator over `store` until `stop` is set. `home`: the rollouts home whose local cluster
    `store` talks to (its lock is held while running; None for any other cluster). `metrics_address`
    (HOST:PORT) serves /metrics and /healthz; None serves nothing. `companions` run beside the loop until
    `stop` (the dashboard); one failing stops the operator."""
    stop = stop or asyncio.Event()
    lock = HomeLock(home).acquire() if home is not None else None
    try:
        source = register_traffic_plugins(store)
        controller = Controller(store=store)
        controller.executor = AnalysisExecutor(
            secret_lookup=store_secret_lookup(lambda ns, name: _secret(store, ns, name)),
            prometheus_address=prometheus_address,
            # Job metrics are batch/v1 Jobs the cluster runs: a restarted operator finds its Job again.
            providers={"job": JobMetricProvider(store=store)},
        )
        metrics = controller_metrics.ControllerMetrics(store)
        controller.observers.append(metrics)
        server = MetricsServer(render=metrics.render, healthy=_liveness(controller), extra=[],
                               allowed_hosts=metrics_allowed_hosts)
        if metrics_address is not None:
            await server.start(metrics_address)
        controller_metrics.activate(metrics)
        notifier = Notifier(store, config_file=notifications_config)
        controller.observers.append(notifier)
        await notifier.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("controller started", extra={"fields": {
            "cluster": store.config.describe(), "home": str(home or ""), "pid": os.getpid(),
            "trafficSource": "cluster" if source is not None else "prometheus"}})

        def stop_on_failure(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                stop.set()

        tasks = [asyncio.create_task(run(stop)) for run in companions]
        for task in tasks:
            task.add_done_callback(stop_on_failure)
        try:
            await controller.run(stop)
            for task in tasks:
                await task
        finally:
            for task in tasks:
                task.cancel()
            await notifier.close()
            await server.close()
            controller_metrics.activate(None)
        log.info("controller stopped", extra={"fields": {"cluster": store.config.server}})
    finally:
        if lock is not None:
            lock.release()
