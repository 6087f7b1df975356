"""The controller loop: observe ► reconcile ► apply ► persist ► requeue, for every rollout and analysis
run in the store, until stopped.

All decisions are the engine's and the analysis assessment's; this module only moves data between the
store, the runtime and those pure functions, and decides when to look again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from rollouts.analysis.executor import AnalysisExecutor
from rollouts.controller.apply import ActionFailed, apply_action, record_outcome
from rollouts.controller.clock import Clock, SystemClock
from rollouts.controller.observe import observe_rollout
from rollouts.controller.parsed import ModelCache
from rollouts.engine import reconcile
from rollouts.engine.types import Decision, EmitEvent
from rollouts.spec.analysis import AnalysisRun
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import Conflict, NotFound, ObjectStore, StoreError

log = logging.getLogger("rollouts.controller")

# How often the loop looks at the store even when nothing asked it to: the bound on how long a write
# made by another process (the CLI) waits to be noticed.
POLL_SECONDS = 0.5
# When a reconcile raised: the condition type and event reason that say so, and when to try again.
RECONCILE_ERROR = "ReconcileError"
FAILURE_RETRY_SECONDS = 5.0
# An error message longer than this is cut (a status is read by people and by every watcher).
MESSAGE_LIMIT = 1024


class Runtime(Protocol):
    async def start(self) -> None: ...

    async def sync(self) -> None: ...

    async def close(self) -> None: ...


class DecisionObserver(Protocol):
    def observe_decision(self, rollout: Rollout, decision: Decision, seconds: float) -> None: ...

    def observe_error(self, rollout: Rollout) -> None: ...


@dataclass
class Controller:
    store: ObjectStore
    runtime: Runtime | None = None
    clock: Clock = field(default_factory=SystemClock)
    executor: AnalysisExecutor = field(default_factory=AnalysisExecutor)
    observers: list[DecisionObserver] = field(default_factory=list)
    poll_seconds: float = POLL_SECONDS
    # Parsed models of unchanged objects are reused across passes (see controller.parsed for why).
    models: ModelCache = field(default_factory=ModelCache)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _acted: bool = False
    # clock.monotonic() when the last pass over the store finished: the liveness signal for /healthz.
    last_pass: float | None = None

    def wake(self) -> None:
        """Ask for a pass as soon as possible (pod readiness changed, a write arrived...)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self.runtime is not None:
            await self.runtime.start()
        try:
            while not stop.is_set():
                try:
                    delay = await self.run_once()
                except Exception:
                    # A failure outside any one object (the runtime's sync): say so and keep looping.
                    log.exception("controller pass failed")
                    delay = FAILURE_RETRY_SECONDS
                self._wake.clear()
                wait = min(self.poll_seconds, delay if delay is not None else self.poll_seconds)
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waiters, timeout=max(wait, 0.01), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            await self.executor.close()
            if self.runtime is not None:
                await self.runtime.close()

    async def run_once(self) -> float | None:
        """One pass over everything; returns the seconds until something is due (None: nothing planned)."""
        if self.runtime is not None:
            await self.runtime.sync()
        delays: list[float] = []
        for obj in self.store.list("AnalysisRun"):
            delay = self.step_analysis_run(obj)
            if delay is not None:
                delays.append(delay)
        self._acted = False
        for obj in self.store.list("Rollout"):
            delay = self.reconcile_rollout(obj)
            if delay is not None:
                delays.append(delay)
        if self._acted and self.runtime is not None:
            # Carry the decisions out now (traffic back to stable after an abort), not one poll later.
            await self.runtime.sync()
        self.last_pass = self.clock.monotonic()
        return min(delays) if delays else None

    # -- analysis runs -----------------------------------------------------------------------------------

    def step_analysis_run(self, obj: Mapping[str, Any]) -> float | None:
        try:
            run = self.models.parse(AnalysisRun, obj)
        except ValidationError as exc:
            log.warning("AnalysisRun %s: cannot be read: %s", obj.get("metadata", {}).get("name"), exc)
            return None
        try:
            return self._step_analysis_run(obj, run)
        except Exception as exc:
            self._report_failure(obj, exc, condition=False)
            return FAILURE_RETRY_SECONDS

    def _step_analysis_run(self, obj: Mapping[str, Any], run: AnalysisRun) -> float | None:
        updated, delay = self.executor.step(run, self.clock.now())
        if updated.status != run.status and updated.status is not None:
            try:
                self.store.update_status({**dict(obj), "status": updated.status.to_dict()})
            except Conflict:
                return 0.0
            except NotFound:
                self.executor.forget(run)
                return None
            if updated.status.phase != (run.status.phase if run.status else None):
                self._log_run(updated)
        return delay

    def _log_run(self, run: AnalysisRun) -> None:
        status = run.status
        assert status is not None
        log.info("analysis run %s", status.phase, extra={"fields": {
            "analysisrun": run.metadata.name, "namespace": run.metadata.namespace, "phase": status.phase,
            "message": status.message or ""}})

    # -- rollouts ----------------------------------------------------------------------------------------

    def reconcile_rollout(self, obj: Mapping[str, Any]) -> float | None:
        """Reconcile one rollout. Whatever goes wrong is reported on the rollout itself (a Warning event and
        a ReconcileError condition) and in the log, and retried: the pass goes on with the other rollouts."""
        meta = obj.get("metadata", {})
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            rollout = self.models.parse(Rollout, obj)
        except ValidationError as exc:
            log.warning("Rollout %s: cannot be read: %s", name, exc.errors()[0].get("msg"))
            return None
        try:
            return self._reconcile_rollout(obj, rollout, name)
        except Exception as exc:
            for observer in self.observers:
                observer.observe_error(rollout)
            self._report_failure(obj, exc, condition=True)
            return FAILURE_RETRY_SECONDS

    def _report_failure(self, obj: Mapping[str, Any], exc: Exception, *, condition: bool) -> None:
        meta = obj.get("metadata") or {}
        kind = str(obj.get("kind") or "Rollout")
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        message = f"reconcile failed: {type(exc).__name__}: {exc}"
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 3] + "..."
        # A store's own error (the API unreachable, a refused write) is told in one line and retried; a
        # traceback is for what nobody planned.
        log.error("reconcile failed", exc_info=None if isinstance(exc, StoreError) else exc,
                  extra={"fields": {kind.lower(): f"{namespace}/{name}", "error": message}})
        involved = {"kind": kind, "namespace": namespace, "name": name, "uid": meta.get("uid") or "",
                    "apiVersion": obj.get("apiVersion") or ""}
        try:
            self.store.record_event(involved, "Warning", RECONCILE_ERROR, message)
            if condition:
                self._set_error_condition(obj, kind, namespace, name, message)
        except Exception as failed:  # the store itself failing: the log line above is all that can be done
            log.error("cannot record the reconcile failure",
                      exc_info=None if isinstance(failed, StoreError) else failed,
                      extra={"fields": {"object": f"{namespace}/{name}", "error": str(failed)[:MESSAGE_LIMIT]}})

    def _set_error_condition(self, obj: Mapping[str, Any], kind: str, namespace: str, name: str,
                             message: str) -> None:
        conditions = list((obj.get("status") or {}).get("conditions") or [])
        previous = next((c for c in conditions if c.get("type") == RECONCILE_ERROR), None)
        if previous is not None and previous.get("message") == message:
            return  # already said; rewriting would only move timestamps and wake every watcher
        now = self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        kept = [c for c in conditions if c.get("type") != RECONCILE_ERROR]
        kept.append({"type": RECONCILE_ERROR, "status": "True", "reason": RECONCILE_ERROR, "message": message,
                     "lastUpdateTime": now,
                     "lastTransitionTime": previous.get("lastTransitionTime", now) if previous else now})
        self.store.patch(kind, namespace, name, {"status": {"conditions": kept}}, subresource="status")

    def _reconcile_rollout(self, obj: Mapping[str, Any], rollout: Rollout, name: str) -> float | None:
        started = self.clock.monotonic()
        now = self.clock.now()
        observed = observe_rollout(self.store, rollout, self.models)
        decision = reconcile(rollout, observed, now)
        self._acted = self._acted or bool(decision.actions)
        try:
            for action in decision.actions:
                apply_action(self.store, rollout, action)
                if isinstance(action, EmitEvent):
                    record_outcome(self.store, rollout, decision.status.current_pod_hash, action)
        except ActionFailed as exc:
            log.warning(str(exc), extra={"fields": {"rollout": name}})
            self.store.record_event(_involved(rollout), "Warning", "ActionFailed", str(exc))
            return FAILURE_RETRY_SECONDS
        except Conflict:
            return 0.0
        new_status = decision.status.to_dict()
        if any(c.get("type") == RECONCILE_ERROR for c in new_status.get("conditions") or []):
            # The engine carries conditions over; this one is the controller's and is over now.
            new_status["conditions"] = [c for c in new_status["conditions"] if c.get("type") != RECONCILE_ERROR]
        if new_status != (obj.get("status") or {}):
            try:
                self.store.update_status({**dict(obj), "status": new_status})
            except Conflict:
                return 0.0
            except NotFound:
                return None
        seconds = self.clock.monotonic() - started
        for observer in self.observers:
            observer.observe_decision(rollout, decision, seconds)
        if decision.actions or new_status != (obj.get("status") or {}):
            self._log_decision(rollout, decision)
        return decision.requeue_after

    def _log_decision(self, rollout: Rollout, decision: Decision) -> None:
        status = decision.status
        weights = status.canary.weights if status.canary else None
        log.info("reconciled", extra={"fields": {
            "rollout": rollout.name,
            "namespace": rollout.namespace,
            "revision": status.current_pod_hash,
            "step": status.current_step_index,
            "phase": status.phase,
            "weight": weights.canary.weight if weights else None,
            "message": status.message,
            "actions": [a.describe() for a in decision.actions],
        }})


def _involved(rollout: Rollout) -> dict[str, Any]:
    return {"kind": "Rollout", "namespace": rollout.namespace, "name": rollout.name,
            "uid": rollout.metadata.uid, "apiVersion": rollout.api_version}
