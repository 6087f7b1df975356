"""Assembles a running controller on a home folder: the lock, the store, the local runtime, the analysis
executor and the loop; stops cleanly on SIGINT/SIGTERM."""

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
from rollouts.controller import metrics as controller_metrics
from rollouts.controller.loop import Controller
from rollouts.controller.metrics_http import MetricsServer
from rollouts.controller.notifications import Notifier
from rollouts.runtime.local.pods import DEFAULT_MAX_PODS
from rollouts.runtime.local.runtime import LocalRuntime
from rollouts.store.home import database_path
from rollouts.store.lock import HomeLock
from rollouts.store.protocol import NotFound
from rollouts.store.sqlite import SQLiteStore

log = logging.getLogger("rollouts.controller")

# /healthz turns 503 when the loop has not finished a pass for this long (a pass normally takes < 1 s).
LIVENESS_SECONDS = 30.0
# Something served beside the loop until the stop event is set (the dashboard).
Companion = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def _secret(store: SQLiteStore, namespace: str, name: str) -> dict[str, object]:
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


async def run_controller(home: Path, *, images: Path | None = None, prometheus_address: str | None = None,
                         probe_period: float = 1.0, stop: asyncio.Event | None = None,
                         notifications_config: Path | None = None, metrics_address: str | None = None,
                         companions: Sequence[Companion] = (), proxy_metrics_port: int | None = None,
                         metrics_allowed_hosts: frozenset[str] = frozenset(),
                         max_pods: int = DEFAULT_MAX_PODS) -> None:
    """Run until `stop` is set. `metrics_address` (HOST:PORT) serves /metrics and /healthz; None serves nothing.
    `companions` run beside the loop until `stop` (the dashboard); one failing stops the controller.
    `proxy_metrics_port` serves the ingress proxy's own /metrics there (what a Prometheus scrapes).
    `max_pods` bounds the pods the local runtime runs at once (the kubelet's maxPods)."""
    stop = stop or asyncio.Event()
    with HomeLock(home):
        store = SQLiteStore(database_path(home))
        try:
            controller = Controller(store=store)
            runtime = LocalRuntime(store, home, images=images, probe_period=probe_period, on_change=controller.wake,
                                   metrics_port=proxy_metrics_port, max_pods=max_pods)
            controller.runtime = runtime
            controller.executor = AnalysisExecutor(
                secret_lookup=store_secret_lookup(lambda ns, name: _secret(store, ns, name)),
                prometheus_address=prometheus_address,
                # Job metrics keep their pid files in the home: a restarted controller finds them again.
                providers={"job": JobMetricProvider(state_dir=home / "jobs")},
            )
            metrics = controller_metrics.ControllerMetrics(store)
            controller.observers.append(metrics)
            server = MetricsServer(render=metrics.render, healthy=_liveness(controller),
                                   extra=[runtime.render_metrics], allowed_hosts=metrics_allowed_hosts)
            if metrics_address is not None:
                await server.start(metrics_address)
            controller_metrics.activate(metrics)
            notifier = Notifier(store, config_file=notifications_config)
            controller.observers.append(notifier)
            await notifier.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            log.info("controller started", extra={"fields": {"home": str(home), "pid": os.getpid()}})
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
            log.info("controller stopped", extra={"fields": {"home": str(home)}})
        finally:
            store.close()
