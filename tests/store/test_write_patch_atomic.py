"""promote/resume write spec and status as one transaction: a process killed between the two writes
leaves the rollout as it was, never half-applied."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore

ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "shop", "namespace": "default"},
    "spec": {"replicas": 1, "paused": True, "selector": {"matchLabels": {"app": "shop"}},
             "template": {"metadata": {"labels": {"app": "shop"}},
                          "spec": {"containers": [{"name": "shop", "image": "shop:2"}]}},
             "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}}},
}
PAUSE = [{"reason": "CanaryPauseStep", "startTime": "2024-05-01T12:00:00Z"}]

# Runs the verb in a child whose second store write SIGKILLs the process before it is made.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from rollouts.api import actions
    from rollouts.cluster.store import SQLiteStore
    writes = []
    original = SQLiteStore.patch
    def patch(self, *args, **kwargs):
        writes.append(args)
        if len(writes) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)
    SQLiteStore.patch = patch
    store = SQLiteStore(sys.argv[1])
    verb = sys.argv[2]
    if verb == "resume":
        actions.resume(store, "default", "shop")
    else:
        actions.promote(store, "default", "shop")
""")


def _paused_rollout(path: Path) -> None:
    with SQLiteStore(path) as store:
        created = store.create(ROLLOUT)
        store.update_status({**created, "status": {"pauseConditions": PAUSE, "controllerPause": True,
                                                   "currentStepIndex": 1}})


@pytest.mark.parametrize("verb", ["resume", "promote"])
def test_write_patch_kill_between_spec_and_status_leaves_nothing_half_applied(tmp_path: Path, verb: str) -> None:
    path = tmp_path / "state.db"
    _paused_rollout(path)
    with SQLiteStore(path) as store:
        before = store.get("Rollout", "default", "shop")
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), verb], capture_output=True, timeout=60)
    assert child.returncode == -9, child.stderr.decode()
    with SQLiteStore(path) as store:
        after = store.get("Rollout", "default", "shop")
    assert after["spec"] == before["spec"]
    assert after["status"] == before["status"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.parametrize("verb", ["resume", "promote"])
def test_write_patch_applies_spec_and_status_together(tmp_path: Path, verb: str) -> None:
    from rollouts.api import actions

    path = tmp_path / "state.db"
    _paused_rollout(path)
    with SQLiteStore(path) as store:
        if verb == "resume":
            actions.resume(store, "default", "shop")
        else:
            actions.promote(store, "default", "shop")
        after = store.get("Rollout", "default", "shop")
    assert not after["spec"].get("paused")
    status = after["status"]
    assert status.get("pauseConditions") is None
