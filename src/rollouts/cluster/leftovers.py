"""Stopping what a local cluster left running: pod and job processes outlive the cluster process by design
(they are re-adopted when it starts again), so `rollouts cluster down` must find them even when the cluster
process was SIGKILLed. They are read from the store (the pid and start time annotations of ReplicaSet pods and
of Job attempts' pods) and from the Job controller's state folders (HOME/jobs, which also know an attempt
whose Pod was not written yet), and from the processes' environment (a pod process started but not yet recorded
names its cluster's home in ROLLOUTS_CLUSTER_HOME); a recorded pid whose start time no longer matches is another
program and is left alone."""

from __future__ import annotations

import logging
from pathlib import Path

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.jobs import stop_job_processes
from rollouts.runtime.local.processes import (
    JOB_PID_ANNOTATION,
    JOB_PID_START_ANNOTATION,
    marked,
    recorded,
    stop_all,
)
from rollouts.runtime.local.supervisor import OWNER_ENV
from rollouts.store.home import database_path

log = logging.getLogger(__name__)


def recorded_pod_processes(home: Path) -> list[tuple[int, int | None]]:
    """(pid, start time) of every process the Pod objects of HOME's store record (pods and Job attempts)."""
    path = database_path(home)
    if not path.exists():
        return []
    store = SQLiteStore(path)
    try:
        pods = store.list("Pod")
    finally:
        store.close()
    found = []
    for pod in pods:
        notes = (pod.get("metadata") or {}).get("annotations")
        for process in (recorded(notes), recorded(notes, JOB_PID_ANNOTATION, JOB_PID_START_ANNOTATION)):
            if process is not None:
                found.append(process)
    return found


def stop_leftovers(home: Path, grace: float = 10.0) -> int:
    """Stop every pod and job process of HOME still running (SIGTERM to its group, SIGKILL after `grace`);
    returns how many there were. Call it only when the cluster process is not running."""
    count = stop_job_processes(home)  # first: the Job controller records in its folders how they ended
    # Recorded in the store, plus those started but not yet recorded when the cluster died (their environment
    # names this home).
    processes = set(recorded_pod_processes(home)) | set(marked(OWNER_ENV, str(home.resolve())))
    count += stop_all(sorted(processes), grace)
    if count:
        log.info("stopped %d pod and job processes the local cluster of %s left running", count, home)
    return count
