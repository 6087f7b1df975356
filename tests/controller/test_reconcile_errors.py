"""A reconcile that raises never freezes a rollout silently: a Warning event and a ReconcileError condition
on the rollout, a log line, and the pass goes on with the other rollouts."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.controller import loop
from rollouts.controller.loop import RECONCILE_ERROR, Controller
from rollouts.engine import reconcile as real_reconcile


def _rollout(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": f"{name}:1"}]}},
                 "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}},
    }


def _condition(store: SQLiteStore, name: str) -> dict[str, Any] | None:
    status = store.get("Rollout", "default", name).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == RECONCILE_ERROR), None)


@pytest.mark.parametrize("failure", [OverflowError("date value out of range"), KeyError("spec")],
                         ids=["overflow", "keyerror"])
def test_reconcile_exception_reported_with_event_and_condition(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        failure: Exception) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    store.create(_rollout("broken"))
    store.create(_rollout("fine"))
    failing = {"broken"}

    def flaky(rollout: Any, observed: Any, now: Any) -> Any:
        if rollout.name in failing:
            raise failure
        return real_reconcile(rollout, observed, now)

    monkeypatch.setattr(loop, "reconcile", flaky)
    controller = Controller(store=store)
    with caplog.at_level(logging.ERROR, logger="rollouts.controller"):
        asyncio.run(controller.run_once())
    try:
        condition = _condition(store, "broken")
        assert condition is not None and condition["status"] == "True"
        assert type(failure).__name__ in condition["message"]
        events = [e for e in store.list("Event") if e["involvedObject"]["name"] == "broken"]
        assert [(e["type"], e["reason"]) for e in events] == [("Warning", RECONCILE_ERROR)]
        assert any("reconcile failed" in r.getMessage() for r in caplog.records)
        # The other rollout was reconciled in the same pass.
        assert (store.get("Rollout", "default", "fine").get("status") or {}).get("currentPodHash")

        # The same failure again: one aggregated event, the condition not rewritten.
        version = store.get("Rollout", "default", "broken")["metadata"]["resourceVersion"]
        asyncio.run(controller.run_once())
        assert store.get("Rollout", "default", "broken")["metadata"]["resourceVersion"] == version
        events = [e for e in store.list("Event") if e["involvedObject"]["name"] == "broken"]
        assert len(events) == 1 and events[0]["count"] == 2

        # Once the reconcile works again the condition goes away.
        failing.clear()
        asyncio.run(controller.run_once())
        assert _condition(store, "broken") is None
        assert (store.get("Rollout", "default", "broken").get("status") or {}).get("currentPodHash")
    finally:
        store.close()


def test_reconcile_exception_in_runtime_sync_keeps_loop_running(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    calls = {"sync": 0}

    class BrokenRuntime:
        async def start(self) -> None: ...

        async def sync(self) -> None:
            calls["sync"] += 1
            raise RuntimeError("runtime sync failed")

        async def close(self) -> None: ...

    async def main() -> None:
        controller = Controller(store=store, runtime=BrokenRuntime(), poll_seconds=0.01)
        stop = asyncio.Event()
        task = asyncio.create_task(controller.run(stop))
        deadline = asyncio.get_running_loop().time() + 20
        while calls["sync"] < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await task

    try:
        asyncio.run(main())
    finally:
        store.close()
    assert calls["sync"] >= 2
