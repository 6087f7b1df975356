"""Child-process programs for the multi-process store tests (run as `python store_worker.py MODE ...`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rollouts.cluster.store import SQLiteStore
from rollouts.store.lock import HomeLock
from rollouts.store.protocol import Conflict


def wait_for(path: Path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.005)


def increment(db: str, count: int, go: str) -> None:
    """Add 1 to spec.n `count` times, alternating optimistic patches and locked read-modify-write."""
    store = SQLiteStore(db)
    wait_for(Path(go))
    conflicts = 0
    for i in range(count):
        if i % 2:
            with store.transaction():
                obj = store.get("Counter", "default", "c")
                obj["spec"]["n"] += 1
                store.update(obj)
            continue
        while True:
            obj = store.get("Counter", "default", "c")
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {"n": obj["spec"]["n"] + 1},
            }
            try:
                store.patch("Counter", "default", "c", patch)
                break
            except Conflict:
                conflicts += 1
    print(f"conflicts {conflicts}", flush=True)


def write_forever(db: str) -> None:
    """Create objects one by one, announcing each after its commit, until killed."""
    store = SQLiteStore(db)
    i = 0
    while True:
        store.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i}"},
                "data": {"i": str(i), "pad": "x" * 2000},
            }
        )
        print(i, flush=True)
        i += 1


def hold_lock(home: str) -> None:
    with HomeLock(Path(home)):
        print("locked", flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "increment":
        increment(args[0], int(args[1]), args[2])
    elif mode == "write":
        write_forever(args[0])
    elif mode == "lock":
        hold_lock(args[0])
    else:
        raise SystemExit(f"unknown mode {mode}")
