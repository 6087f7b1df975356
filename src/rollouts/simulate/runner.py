"""Runs one release of a rollout in virtual time: the engine's decisions applied to an in-memory world,
analysis runs measured with the scenario's values and judged by the templates' own conditions and limits,
operator actions applied when their time comes. Pure: no clock, no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rollouts.analysis.advance import advance_run
from rollouts.analysis.assessment import is_completed
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.schedule import metric_tasks, run_requeue_after
from rollouts.engine import intents
from rollouts.engine.types import Decision
from rollouts.engine.world import World
from rollouts.simulate.scenario import OperatorAction, Scenario
from rollouts.spec.analysis import AnalysisTemplate, ClusterAnalysisTemplate
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

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "aborted": self.aborted,
            "stableImage": self.stable_image,
            "currentStepIndex": self.current_step_index,
            "t": _number(self.t),
        }


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
        super().advance_to(when)
        self._flush_measurements()

    def _flush_measurements(self) -> None:
        # Measurements are taken while the engine's actions are applied; they show after its events.
        measured, self._measured = self._measured, []
        for reason, message in measured:
            self.record(reason, message)

    def _judge_runs(self) -> None:
        now = self.now
        for name, run in list(self.runs.items()):
            if run.status is None or is_completed(run.status.phase) or run.spec.terminate:
                continue
            due = [task.metric for task in metric_tasks(run, now) if task.kind == "measure"]
            if not due:
                continue
            taken = {metric: self.measure(metric) for metric in due}
            advanced = advance_run(run, now, taken)
            self.runs[name] = advanced
            self._observed = None
            results = {r.name: r for r in (advanced.status.metric_results if advanced.status else [])}
            for metric, outcome in taken.items():
                result = results.get(metric)
                last = result.measurements[-1] if result and result.measurements else None
                verdict = last.phase if last else "?"
                shown = f"error {outcome.error!r}" if outcome.error else f"= {outcome.printed}"
                self._measured.append(("AnalysisMeasurement", f"{name}: {metric} {shown} ({verdict})"))

    def measure(self, metric: str) -> MeasurementOutcome:
        changes = self.scenario.timeline(metric)
        if not changes:
            return MeasurementOutcome(error=f'no scenario value for metric "{metric}"')
        current = [c for c in changes if c.from_ <= self.seconds()]
        if not current:
            return MeasurementOutcome(error=f'no scenario value for metric "{metric}" before t={changes[0].from_:g}s')
        change = current[-1]
        if change.error is not None:
            return MeasurementOutcome(error=change.error)
        return MeasurementOutcome(value=change.value, printed=_printed(change.value))

    def next_wakeup(self) -> datetime | None:
        now = self.now
        candidates: list[datetime] = []
        if self.requeue_at is not None and self.requeue_at > now:
            candidates.append(self.requeue_at)
        for rs in self.replica_sets.values():
            candidates.extend(p.ready_at for p in rs.pods if p.ready_at > now)
        for run in self.runs.values():
            if run.status is None or is_completed(run.status.phase) or run.spec.terminate:
                continue
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
    summary = Summary(
        phase=world.phase or "",
        aborted=bool(status.abort) if status else False,
        stable_image=world.stable_image(),
        current_step_index=status.current_step_index if status else None,
        t=world.seconds(),
    )
    return Simulation(rollout=rollout.name, events=tuple(world.timeline), summary=summary)


__all__ = ["T0", "Simulation", "SimulationError", "Summary", "TimelineEvent", "simulate", "with_image"]
