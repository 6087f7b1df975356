"""Stopping what a local cluster left running: pod and job processes outlive the cluster process by design
(they are re-adopted when it starts again), so `rollouts cluster down` must find them even when the cluster
process was SIGKILLed. Pods are read from the store (their pid and start time annotations), Job attempts
from their state folders (HOME/jobs); a recorded pid whose start time no longer matches is another program
and is left alone."""

from __future__ import annotations

import logging
from pathlib import Path

from rollouts.runtime.local.jobs import stop_job_processes
from rollouts.runtime.local.processes import recorded, stop_all
from rollouts.store.home import database_path
from rollouts.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)


def recorded_pod_processes(home: Path) -> list[tuple[int, int | None]]:
    """(pid, start time) of every Pod object of HOME's store that records a process."""
    path = database_path(home)
    if not path.exists():
        return []
    store = SQLiteStore(path)
    try:
        pods = store.list("Pod")
    finally:
        store.close()
    return [found for pod in pods if (found := recorded((pod.get("metadata") or {}).get("annotations")))]


def stop_leftovers(home: Path, grace: float = 10.0) -> int:
    """Stop every pod and job process of HOME still running (SIGTERM to its group, SIGKILL after `grace`);
    returns how many there were. Call it only when the cluster process is not running."""
    count = stop_all(recorded_pod_processes(home), grace)
    count += stop_job_processes(home)
    if count:
        log.info("stopped %d pod and job processes the local cluster of %s left running", count, home)
    return count
