"""Takes the measurements of analysis runs: decides with the pure schedule what is due, runs the
providers as asyncio tasks, and folds their outcomes back into the run with the pure assessment.

Shared by the controller (runs stored in the store) and `rollouts analyze` (one run in memory)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rollouts.analysis.advance import advance_run
from rollouts.analysis.args import ArgsError, SecretLookup, resolve_args, secret_values, substitute_metric
from rollouts.analysis.assessment import is_completed
from rollouts.analysis.messages import METRIC_TERMINATED
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext, Provider
from rollouts.analysis.providers.registry import ProviderNotSupported, provider_for
from rollouts.analysis.schedule import metric_tasks, run_requeue_after
from rollouts.spec.analysis import AnalysisRun

log = logging.getLogger(__name__)

# While a measurement is in flight the run is looked at again this often, so its result lands quickly.
IN_FLIGHT_POLL_SECONDS = 0.2


def no_secrets(namespace: str, name: str, key: str) -> str:
    raise LookupError(f'secrets "{name}" not found')


def store_secret_lookup(get_secret: Callable[[str, str], Mapping[str, object]]) -> SecretLookup:
    """A SecretLookup over v1 Secret objects (`data` base64-encoded, `stringData` plain)."""

    def lookup(namespace: str, name: str, key: str) -> str:
        try:
            secret = get_secret(namespace, name)
        except LookupError as exc:
            raise LookupError(f'secrets "{name}" not found') from exc
        string_data = secret.get("stringData") or {}
        data = secret.get("data") or {}
        if isinstance(string_data, Mapping) and key in string_data:
            return str(string_data[key])
        if isinstance(data, Mapping) and key in data:
            return base64.b64decode(str(data[key])).decode()
        raise LookupError(f"key '{key}' does not exist in secret '{name}'")

    return lookup


@dataclass
class _InFlight:
    task: asyncio.Task[MeasurementOutcome]
    metric: str


@dataclass
class AnalysisExecutor:
    """Measures runs. Call `step(run, now)` whenever a run may need attention; it returns the run as it
    should now be stored (or the same object when nothing changed) and when to call again."""

    secret_lookup: SecretLookup = no_secrets
    providers: Mapping[str, Provider] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    # Replaces the address of every prometheus metric: one set of templates serves the cluster (their own
    # address) and a local run against another Prometheus (`--prometheus-address`).
    prometheus_address: str | None = None
    _in_flight: dict[tuple[str, str], _InFlight] = field(default_factory=dict)
    _counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def _key(self, run: AnalysisRun) -> str:
        meta = run.metadata
        return meta.uid or f"{meta.namespace}/{meta.name}"

    def step(self, run: AnalysisRun, now: datetime) -> tuple[AnalysisRun, float | None]:
        run_key = self._key(run)
        namespace = run.metadata.namespace or "default"
        if run.status is not None and is_completed(run.status.phase):
            self.forget(run)
            return run, None
        args: dict[str, str] | None = None
        arg_error: str | None = None
        try:
            args = resolve_args(run.spec.args, self.secret_lookup, namespace=namespace)
        except ArgsError as exc:
            arg_error = str(exc)
        secrets = secret_values(run.spec.args, args or {})

        outcomes: dict[str, MeasurementOutcome] = {}
        for (key, metric), flight in list(self._in_flight.items()):
            if key == run_key and flight.task.done():
                del self._in_flight[(key, metric)]
                outcomes[metric] = _task_outcome(flight.task)

        for task in metric_tasks(run, now):
            slot = (run_key, task.metric)
            if task.kind == "terminate":
                stopped = self._in_flight.pop(slot, None)
                if stopped is not None:
                    stopped.task.cancel()
                outcomes.setdefault(task.metric, _terminated())
                continue
            if slot in self._in_flight or task.metric in outcomes:
                continue
            if arg_error is not None:
                outcomes[task.metric] = MeasurementOutcome(error=arg_error)
                continue
            self._start(run, task.metric, args or {}, secrets, now)

        updated = advance_run(run, now, outcomes, args=args, secret_values=secrets)
        if updated.status is not None and is_completed(updated.status.phase):
            self.forget(updated)
            return updated, None
        requeue = run_requeue_after(updated, now)
        if any(key == run_key for key, _ in self._in_flight):
            requeue = IN_FLIGHT_POLL_SECONDS if requeue is None else min(requeue, IN_FLIGHT_POLL_SECONDS)
        return updated, requeue

    def _start(
        self,
        run: AnalysisRun,
        metric_name: str,
        args: Mapping[str, str],
        secrets: frozenset[str],
        now: datetime,
    ) -> None:
        metric = next(m for m in run.spec.metrics if m.name == metric_name)
        run_key = self._key(run)
        # Numbered from the stored counts, so a restarted controller asks for the measurement in flight
        # under the same number (a job metric then finds its running job instead of starting another).
        stored = next((r for r in (run.status.metric_results if run.status else None) or [] if r.name == metric_name),
                      None)
        index = max(self._counts.get((run_key, metric_name), 0), stored.count + stored.error if stored else 0) + 1
        self._counts[(run_key, metric_name)] = index
        # The stored start (not this process's first look) so counts "since the run" survive a restart.
        started = run.status.started_at if run.status is not None and run.status.started_at else now
        ctx = MeasureContext(namespace=run.metadata.namespace or "default", run_name=run.metadata.name or "",
                             metric_name=metric_name, measurement_index=index, secrets=tuple(secrets),
                             env=self.env, run_started_at=started, args=dict(args),
                             owner=_owning_rollout(run), labels=dict(run.metadata.labels))

        async def measure() -> MeasurementOutcome:
            try:
                resolved = substitute_metric(metric, args)
                if self.prometheus_address and resolved.provider.prometheus is not None:
                    prometheus = resolved.provider.prometheus.model_copy(update={"address": self.prometheus_address})
                    resolved = resolved.model_copy(
                        update={"provider": resolved.provider.model_copy(update={"prometheus": prometheus})})
                provider = provider_for(resolved, extra=self.providers)
            except (ArgsError, ProviderNotSupported, ValueError) as exc:
                return ctx.error(str(exc))
            return await provider.measure(resolved, ctx)

        task = asyncio.get_running_loop().create_task(measure(), name=f"measure:{run.metadata.name}/{metric_name}")
        self._in_flight[(run_key, metric_name)] = _InFlight(task=task, metric=metric_name)

    def has_in_flight(self) -> bool:
        return bool(self._in_flight)

    async def wait_any(self, timeout: float) -> None:
        """Sleep until a measurement finishes or `timeout` passes."""
        tasks = [f.task for f in self._in_flight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(timeout)

    def forget(self, run: AnalysisRun) -> None:
        """Cancel whatever is still measuring for a run that is finished or deleted."""
        run_key = self._key(run)
        for slot in [s for s in self._in_flight if s[0] == run_key]:
            self._in_flight.pop(slot).task.cancel()
        for slot in [s for s in self._counts if s[0] == run_key]:
            del self._counts[slot]

    async def close(self) -> None:
        tasks = [f.task for f in self._in_flight.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._in_flight.clear()


def _owning_rollout(run: AnalysisRun) -> str | None:
    """The Rollout the run belongs to, so plugins can infer its service and revision."""
    for ref in run.metadata.owner_references or ():
        if ref.kind == "Rollout" and ref.name:
            return ref.name
    return None


def _terminated() -> MeasurementOutcome:
    return MeasurementOutcome(phase="Inconclusive", metadata={"reason": METRIC_TERMINATED})


def _task_outcome(task: asyncio.Task[MeasurementOutcome]) -> MeasurementOutcome:
    if task.cancelled():
        return _terminated()
    exc = task.exception()
    if exc is not None:
        log.error("measurement task failed: %r", exc)
        return MeasurementOutcome(error=f"measurement failed: {exc}")
    return task.result()
