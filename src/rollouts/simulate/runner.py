"""Runs one release of a rollout in virtual time: the engine's decisions applied to an in-memory world,
analysis runs measured with the scenario's values (or, with a traffic model, the traffic metrics computed
from simulated requests: simulate/requests.py) and judged by the templates' own conditions and limits,
operator actions applied when their time comes. Pure: no clock, no I/O (randomness seeded)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rollouts.analysis.advance import advance_run
from rollouts.analysis.args import ArgsError, resolve_args, substitute_metric
from rollouts.analysis.assessment import is_completed
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.schedule import metric_tasks, run_requeue_after
from rollouts.engine import intents
from rollouts.engine.types import Decision
from rollouts.engine.world import World
from rollouts.simulate.requests import (
    Routing,
    TrafficLedger,
    measure_from_traffic,
    measurement_ready_at,
    simulated_plugin,
)
from rollouts.simulate.scenario import OperatorAction, Scenario
from rollouts.simulate.traffic import LatencyModel, VersionTraffic
from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, Metric
from rollouts.spec.rollout import Rollout

# The release happens at T0; the first revision is deployed (and settles) before it.
T0 = datetime(2026, 1, 1, tzinfo=UTC)
_INITIAL_DEPLOY_SECONDS = 3600.0
_MAX_STEPS = 100_000
_TERMINAL = ("Healthy", "Degraded")


class SimulationError(ValueError):
    """Input that cannot be simulated (the text is one line for the CLI)."""


@dataclass(frozen=True)
class TimelineEvent:
    t: float
    reason: str
    phase: str
    step: int | None
    steps: int | None
    weight: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "t": _number(self.t),
            "reason": self.reason,
            "phase": self.phase,
            "step": self.step,
            "weight": self.weight,
            "message": self.message,
        }


@dataclass(frozen=True)
class Summary:
    phase: str
    aborted: bool
    stable_image: str | None
    current_step_index: int | None
    t: float
    # With a traffic model only: what the canary served, and seconds from the release to the first abort
    # or full promotion (None when neither happened).
    traffic: bool = False
    canary_requests: int = 0
    canary_failed_requests: int = 0
    time_to_decision: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "aborted": self.aborted,
            "stableImage": self.stable_image,
            "currentStepIndex": self.current_step_index,
            "t": _number(self.t),
        }
        if self.traffic:
            out.update(
                canaryRequests=self.canary_requests,
                canaryFailedRequests=self.canary_failed_requests,
                timeToDecision=None if self.time_to_decision is None else _number(self.time_to_decision),
            )
        return out


@dataclass(frozen=True)
class Simulation:
    rollout: str
    events: tuple[TimelineEvent, ...]
    summary: Summary


def _number(seconds: float) -> int | float:
    return int(seconds) if float(seconds).is_integer() else round(seconds, 3)


def _printed(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def with_image(rollout: Rollout, image: str) -> Rollout:
    """The rollout with its first container's image replaced."""
    body = rollout.model_dump(by_alias=True, exclude_none=True, mode="json")
    containers = body.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    if not containers:
        raise SimulationError(f"Rollout {rollout.name}: spec.template.spec.containers is empty; nothing to release")
    containers[0]["image"] = image
    return Rollout.model_validate(body)


class _SimWorld(World):
    """The engine's World with analysis measured from the scenario and every event stamped with the
    rollout's state right after the decision that emitted it."""

    def __init__(self, rollout: Rollout, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(rollout, ready_after=scenario.ready_after, **kwargs)
        self.scenario = scenario
        self.timeline: list[TimelineEvent] = []
        self.recording = False
        self._measured: list[tuple[str, str]] = []
        # (run, metric) -> when its due measurement lands: a traffic gate waits until its window lies
        # inside the run, as the provider's in-flight measurement does in a cluster.
        self._waiting: dict[tuple[str, str], datetime] = {}
        self.ledger: TrafficLedger | None = None
        if scenario.traffic is not None:
            versions = {
                image: VersionTraffic(v.error_rate, LatencyModel(v.latency_ms.p50, v.latency_ms.p95))
                for image, v in scenario.traffic.versions.items()
            }
            self.ledger = TrafficLedger(scenario.traffic.rps, versions, scenario.seed)

    def seconds(self) -> float:
        return (self.now - T0).total_seconds()

    def record(self, reason: str, message: str) -> None:
        if not self.recording:
            return
        status = self.rollout.status
        canary = self.rollout.spec.strategy.canary
        steps = len(canary.steps or []) if canary is not None else None
        self.timeline.append(
            TimelineEvent(
                t=self.seconds(),
                reason=reason,
                phase=(status.phase if status else None) or "",
                step=status.current_step_index if status else None,
                steps=steps or None,
                weight=self.release_weight(),
                message=message,
            )
        )

    def release_weight(self) -> int:
        """The share of traffic (percent) the rollout's current revision receives."""
        status = self.rollout.status
        if status is None or status.current_pod_hash is None:
            return 0
        if status.current_pod_hash == status.stable_rs:
            return 100
        canary = self.rollout.spec.strategy.canary
        if canary is not None and canary.traffic_routing is not None:
            return self.canary_weight
        ready = {rs.pod_hash: sum(1 for p in rs.pods if p.ready_at <= self.now) for rs in self.replica_sets.values()}
        total = sum(ready.values())
        return round(100 * ready.get(status.current_pod_hash, 0) / total) if total else 0

    def apply(self, decision: Decision) -> None:
        seen = len(self.events)
        super().apply(decision)
        for event in self.events[seen:]:
            self.record(event.reason, event.message)
        self._flush_measurements()

    def advance_to(self, when: datetime) -> None:
        if self.ledger is not None and self.recording and when > self.now:
            # The routing holds from now until `when`: it only changes when the world does.
            try:
                self.ledger.generate_until((when - T0).total_seconds(), self.routing())
            except LookupError as exc:
                raise SimulationError(f"scenario: {exc.args[0]}") from None
        super().advance_to(when)
        self._flush_measurements()

    def routing(self) -> Routing:
        """Who serves the traffic now: the released revision is the canary while it is not the stable one
        and has a ready pod to send requests to."""
        stable = self.stable_image() or ""
        status = self.rollout.status
        if status is None or status.current_pod_hash is None or status.current_pod_hash == status.stable_rs:
            return Routing(stable)
        hash_ = status.current_pod_hash
        current = next((rs for rs in self.replica_sets.values() if rs.pod_hash == hash_), None)
        if current is None or not any(p.ready_at <= self.now for p in current.pods):
            return Routing(stable)
        containers = current.template.spec.containers if current.template.spec is not None else None
        image = containers[0].image if containers else None
        return Routing(stable, image, float(self.release_weight()))

    def _flush_measurements(self) -> None:
        # Measurements are taken while the engine's actions are applied; they show after its events.
        measured, self._measured = self._measured, []
        for reason, message in measured:
            self.record(reason, message)

    def _judge_runs(self) -> None:
        now = self.now
        self._waiting = {}
        for name, run in list(self.runs.items()):
            if run.status is None or is_completed(run.status.phase) or run.spec.terminate:
                continue
            due = [task.metric for task in metric_tasks(run, now) if task.kind == "measure"]
            for metric in list(due):
                ready = self._ready_at(metric, run)
                if ready is not None and ready > now:
                    self._waiting[(name, metric)] = ready
                    due.remove(metric)
            if not due:
                continue
            taken = {metric: self.measure(metric, run) for metric in due}
            advanced = advance_run(run, now, taken)
            self.runs[name] = advanced
            self._observed = None
            results = {r.name: r for r in (advanced.status.metric_results if advanced.status else [])}
            for metric, outcome in taken.items():
                result = results.get(metric)
                last = result.measurements[-1] if result and result.measurements else None
                verdict = last.phase if last else "?"
                shown = f"error {outcome.error!r}" if outcome.error else f"= {outcome.printed}"
                if not outcome.error and not outcome.printed and outcome.message:
                    shown = f"- {outcome.message}"  # no value, only the provider's reason (too few requests)
                self._measured.append(("AnalysisMeasurement", f"{name}: {metric} {shown} ({verdict})"))

    def measure(self, metric: str, run: AnalysisRun | None = None) -> MeasurementOutcome:
        changes = self.scenario.timeline(metric)
        if not changes and self.ledger is not None and run is not None:
            simulated = self._measure_traffic(metric, run)
            if simulated is not None:
                return simulated
        if not changes:
            return MeasurementOutcome(error=f'no scenario value for metric "{metric}"')
        current = [c for c in changes if c.from_ <= self.seconds()]
        if not current:
            return MeasurementOutcome(error=f'no scenario value for metric "{metric}" before t={changes[0].from_:g}s')
        change = current[-1]
        if change.error is not None:
            return MeasurementOutcome(error=change.error)
        return MeasurementOutcome(value=change.value, printed=_printed(change.value))

    def _traffic_metric(self, name: str, run: AnalysisRun) -> Metric | None:
        """The run's metric `name` with its arguments, when simulated traffic measures it."""
        if self.ledger is None or self.scenario.timeline(name):
            return None  # no traffic model, or scenario values win
        metric = next((m for m in run.spec.metrics if m.name == name), None)
        if metric is None or simulated_plugin(metric) is None:
            return None
        try:
            return substitute_metric(metric, resolve_args(run.spec.args, _no_secrets))
        except (ArgsError, LookupError, ValueError):
            return metric  # measured with the placeholders left in; the simulated traffic has one service anyway

    def _run_started(self, run: AnalysisRun) -> float:
        started = run.status.started_at if run.status is not None and run.status.started_at else self.now
        return (started - T0).total_seconds()

    def _ready_at(self, name: str, run: AnalysisRun) -> datetime | None:
        metric = self._traffic_metric(name, run)
        ready = measurement_ready_at(metric, self._run_started(run)) if metric is not None else None
        return T0 + timedelta(seconds=ready) if ready is not None else None

    def _measure_traffic(self, name: str, run: AnalysisRun) -> MeasurementOutcome | None:
        assert self.ledger is not None
        metric = self._traffic_metric(name, run)
        if metric is None:
            return None
        return measure_from_traffic(self.ledger, metric, self.seconds(), self._run_started(run))

    def next_wakeup(self) -> datetime | None:
        now = self.now
        candidates: list[datetime] = []
        if self.requeue_at is not None and self.requeue_at > now:
            candidates.append(self.requeue_at)
        for rs in self.replica_sets.values():
            candidates.extend(p.ready_at for p in rs.pods if p.ready_at > now)
        for name, run in self.runs.items():
            if run.status is None or is_completed(run.status.phase) or run.spec.terminate:
                continue
            waiting = {metric: at for (run_name, metric), at in self._waiting.items() if run_name == name}
            if waiting:
                # Its waiting measurements land at their own time; the others are scheduled as usual.
                candidates.extend(waiting.values())
                others = [m for m in run.spec.metrics if m.name not in waiting]
                if not others:
                    continue
                run = run.model_copy(update={"spec": run.spec.model_copy(update={"metrics": others})})
            after = run_requeue_after(run, now)
            if after is not None:
                candidates.append(now + timedelta(seconds=max(after, 0.001)))
        return min(candidates) if candidates else None

    def stable_image(self) -> str | None:
        status = self.rollout.status
        stable = status.stable_rs if status else None
        for rs in self.replica_sets.values():
            if rs.pod_hash == stable and rs.template.spec is not None and rs.template.spec.containers:
                return rs.template.spec.containers[0].image
        return None


def _no_secrets(namespace: str, name: str, key: str) -> str:
    raise LookupError(f'secrets "{name}" are not available in a simulation')


def _check_images(rollout: Rollout, scenario: Scenario) -> None:
    if scenario.traffic is None:
        return
    template = rollout.spec.template
    containers = template.spec.containers if template is not None and template.spec is not None else None
    images = [containers[0].image] if containers else []
    images += [scenario.release] if scenario.release else []
    images += [a.image for a in scenario.operator if a.action == "set-image" and a.image]
    missing = sorted({i for i in images if i and i not in scenario.traffic.versions})
    if missing:
        raise SimulationError(f"scenario: traffic.versions has no entry for image {missing[0]!r} "
                              f"(given: {', '.join(sorted(scenario.traffic.versions))})")


def _operate(world: _SimWorld, action: OperatorAction) -> None:
    rollout = world.rollout
    try:
        if action.action == "set-image":
            assert action.image is not None
            image = action.image
            world.edit(lambda r: with_image(r, image))
            world.record("OperatorAction", f"set-image {image}")
            return
        if action.action == "undo":
            result = intents.undo(rollout, world.observe().replica_sets, action.to_revision)
            if result.template is not None:
                world.patch(result.patch)
            world.record("OperatorAction", f"undo: {result.message}")
            return
        patch = {
            "promote": lambda: intents.promote(rollout),
            "promote-full": lambda: intents.promote(rollout, full=True),
            "abort": lambda: intents.abort(rollout),
            "retry": lambda: intents.retry(rollout),
            "pause": lambda: intents.pause(rollout),
            "resume": lambda: intents.resume(rollout),
        }[action.action]()
        world.patch(patch)
        world.record("OperatorAction", f"{action.action}: {patch.message}")
    except intents.IntentError as exc:
        world.record("OperatorActionFailed", f"{action.action}: {exc}")


def simulate(
    rollout: Rollout,
    scenario: Scenario,
    *,
    templates: Iterable[AnalysisTemplate] = (),
    cluster_templates: Iterable[ClusterAnalysisTemplate] = (),
) -> Simulation:
    """Deploy the rollout's current template as the stable revision, release `scenario.release` at t=0,
    and follow the rollout until it is Healthy or Degraded with nothing left to happen, or `until`."""
    _check_images(rollout, scenario)
    fresh = rollout.model_copy(
        update={"status": None, "metadata": rollout.metadata.model_copy(update={"generation": 1})}
    )
    world = _SimWorld(
        fresh,
        scenario,
        now=T0 - timedelta(seconds=_INITIAL_DEPLOY_SECONDS),
        templates=tuple(templates),
        cluster_templates=tuple(cluster_templates),
    )
    if not world.run(until=lambda w: w.phase == "Healthy", max_seconds=_INITIAL_DEPLOY_SECONDS):
        status = world.rollout.status
        why = (status.message if status else None) or f"phase {world.phase}"
        raise SimulationError(f"Rollout {rollout.name}: the initial deploy did not become Healthy ({why})")
    world.advance_to(T0)
    world.settle()
    world.recording = True
    if scenario.release is not None:
        image = scenario.release
        world.edit(lambda r: with_image(r, image))

    actions = sorted(scenario.operator, key=lambda a: a.at)
    end = T0 + timedelta(seconds=scenario.until)
    for _ in range(_MAX_STEPS):
        while actions and T0 + timedelta(seconds=actions[0].at) <= world.now:
            _operate(world, actions.pop(0))
        world.settle()
        wake = world.next_wakeup()
        if not actions and world.phase in _TERMINAL and wake is None:
            break
        if actions:
            at = T0 + timedelta(seconds=actions[0].at)
            wake = at if wake is None else min(wake, at)
        if wake is None or wake > end:
            if wake is not None:
                world.advance_to(end)
                world.settle()
            break
        world.advance_to(wake)
    else:
        raise SimulationError(f"Rollout {rollout.name}: the simulation did not finish within {_MAX_STEPS} steps")

    status = world.rollout.status
    canary_requests, canary_failed = world.ledger.totals("canary") if world.ledger is not None else (0, 0)
    decided = next((e.t for e in world.timeline if e.reason in ("RolloutAborted", "RolloutCompleted")), None)
    summary = Summary(
        phase=world.phase or "",
        aborted=bool(status.abort) if status else False,
        stable_image=world.stable_image(),
        current_step_index=status.current_step_index if status else None,
        t=world.seconds(),
        traffic=world.ledger is not None,
        canary_requests=canary_requests,
        canary_failed_requests=canary_failed,
        time_to_decision=decided,
    )
    return Simulation(rollout=rollout.name, events=tuple(world.timeline), summary=summary)


__all__ = ["T0", "Simulation", "SimulationError", "Summary", "TimelineEvent", "simulate", "with_image"]
