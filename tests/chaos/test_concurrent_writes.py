"""Concurrent writers on one rollout: the verbs whose patch depends on what they read (promote, set image)
apply to exactly that state or fail with 409 Conflict; the verbs that write the same whatever the state
(abort, pause, resume) always apply. Then the bench family: 20 clients at once over a real API server, with
and without the operator reconciling, judged on the rollout's resourceVersion chain and a sequential replay."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from rollouts.api import actions
from rollouts.cluster.store import SQLiteStore
from rollouts.store.protocol import Conflict

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaoslib import concurrent_writes  # noqa: E402


class StaleReads:
    """A real SQLite store whose reads of the rollout return the version read first: a client that read,
    then lost the race to another writer."""

    def __init__(self, store: SQLiteStore, stale: dict[str, Any]) -> None:
        self._store, self._stale = store, stale

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self._stale

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def paused_canary(store: SQLiteStore) -> dict[str, Any]:
    created = store.create(concurrent_writes.rollout("shop", "shop:1"))
    return store.update_status({**created, "status": {
        "currentStepIndex": 1, "controllerPause": True,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}]}})


VERBS = [
    ("promote", lambda s: actions.promote(s, "default", "shop"), True),
    ("set-image", lambda s: actions.set_image(s, "default", "shop", "shop", "shop:2"), True),
    ("abort", lambda s: actions.abort(s, "default", "shop"), False),
    ("pause", lambda s: actions.pause(s, "default", "shop"), False),
    ("resume", lambda s: actions.resume(s, "default", "shop"), False),
]


@pytest.mark.parametrize(("verb", "conflicts"), [(v, c) for v, _, c in VERBS], ids=[v for v, _, _ in VERBS])
def test_verb_from_a_stale_read_conflicts_only_when_its_patch_depends_on_it(tmp_path: Path, verb: str,
                                                                             conflicts: bool) -> None:
    call = {v: f for v, f, _ in VERBS}[verb]
    with SQLiteStore(tmp_path / "state.db") as store:
        stale = paused_canary(store)
        store.patch("Rollout", "default", "shop", {"status": {"currentStepIndex": 2}}, subresource="status")
        before = store.get("Rollout", "default", "shop")
        if conflicts:
            with pytest.raises(Conflict):
                call(StaleReads(store, stale))
            assert store.get("Rollout", "default", "shop") == before  # nothing written
        else:
            call(StaleReads(store, stale))
            after = store.get("Rollout", "default", "shop")
            assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
            assert after["status"]["currentStepIndex"] == 2  # the other writer's step is kept


def test_twenty_concurrent_clients_lose_no_write_without_the_operator(tmp_path: Path) -> None:
    [outcome] = concurrent_writes.run(1, 11, tmp_path, operator_runs=False)
    assert outcome.ok and outcome.lost_writes == 0, outcome.detail
    assert outcome.extra["errors"] == 0
    assert outcome.extra["conflicts"] > 0, "no contention happened: the run proves nothing"
    assert "replay matches" in outcome.detail


def test_concurrent_writes_judge_catches_unconditional_promotes(tmp_path: Path) -> None:
    """What the verbs did before: promote and set image written blindly; two promotes read the same step
    and both write the next one, so the replay of the acknowledged writes ends further along."""
    [outcome] = concurrent_writes.run(1, 11, tmp_path, operator_runs=False, blind=True)
    assert not outcome.ok and outcome.lost_writes > 0, outcome.detail
    assert "not the replay" in outcome.detail


def test_twenty_concurrent_clients_lose_no_write_with_the_operator_reconciling(tmp_path: Path) -> None:
    [outcome] = concurrent_writes.run(1, 12, tmp_path, operator_first=True)
    assert outcome.ok and outcome.lost_writes == 0, outcome.detail
    assert "with the operator reconciling" in outcome.fault
    assert outcome.extra["errors"] == 0


def test_promote_with_nothing_to_write_writes_nothing(tmp_path: Path) -> None:
    """A promote the state asks nothing of (not paused, no steps left) is a no-op, not a crash."""
    with SQLiteStore(tmp_path / "state.db") as store:
        created = store.create(concurrent_writes.rollout("shop", "shop:1"))
        steps = len(created["spec"]["strategy"]["canary"]["steps"])
        done = store.update_status({**created, "status": {"currentStepIndex": steps}})
        result = actions.promote(store, "default", "shop")
        assert not result.changed
        assert store.get("Rollout", "default", "shop")["metadata"]["resourceVersion"] == \
            done["metadata"]["resourceVersion"]
