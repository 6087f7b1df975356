"""Assembles a running controller on a home folder: the lock, the store, the local runtime, the analysis
executor and the loop; stops cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from rollouts.analysis.executor import AnalysisExecutor, store_secret_lookup
from rollouts.controller.loop import Controller
from rollouts.runtime.local.runtime import LocalRuntime
from rollouts.store.home import database_path
from rollouts.store.lock import HomeLock
from rollouts.store.protocol import NotFound
from rollouts.store.sqlite import SQLiteStore

log = logging.getLogger("rollouts.controller")


def _secret(store: SQLiteStore, namespace: str, name: str) -> dict[str, object]:
    try:
        return store.get("Secret", namespace, name)
    except NotFound as exc:
        raise LookupError(name) from exc


async def run_controller(home: Path, *, images: Path | None = None, prometheus_address: str | None = None,
                         probe_period: float = 1.0, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    with HomeLock(home):
        store = SQLiteStore(database_path(home))
        try:
            controller = Controller(store=store)
            runtime = LocalRuntime(store, home, images=images, probe_period=probe_period, on_change=controller.wake)
            controller.runtime = runtime
            controller.executor = AnalysisExecutor(
                secret_lookup=store_secret_lookup(lambda ns, name: _secret(store, ns, name)),
                prometheus_address=prometheus_address,
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            log.info("controller started", extra={"fields": {"home": str(home), "pid": os.getpid()}})
            await controller.run(stop)
            log.info("controller stopped", extra={"fields": {"home": str(home)}})
        finally:
            store.close()
