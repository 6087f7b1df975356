"""How a simulation is printed: JSON lines for machines, an aligned timeline for people."""

from __future__ import annotations

import json
from collections.abc import Iterator

from rollouts.simulate.runner import Simulation, TimelineEvent
from rollouts.spec.duration import format_duration


def json_lines(simulation: Simulation) -> Iterator[str]:
    for event in simulation.events:
        yield json.dumps(event.to_json())
    yield json.dumps({"summary": simulation.summary.to_json()})


def _step(event: TimelineEvent) -> str:
    if event.steps is None or event.step is None:
        return ""
    return f"step {event.step}/{event.steps}"


def text_lines(simulation: Simulation) -> Iterator[str]:
    width = max((len(e.reason) for e in simulation.events), default=0)
    for event in simulation.events:
        yield (
            f"+{format_duration(event.t):>8}  {event.reason:<{width}}  {_step(event):<10}  "
            f"weight {event.weight:>3}  {event.message}"
        )
    summary = simulation.summary
    outcome = f"{summary.phase} (aborted)" if summary.aborted else summary.phase
    yield ""
    yield (
        f"Rollout {simulation.rollout}: {outcome} after {format_duration(summary.t)} "
        f"(phase {summary.phase}, step index {summary.current_step_index}, stable image {summary.stable_image})"
    )
    if summary.traffic:
        decided = "no abort or full promotion" if summary.time_to_decision is None else (
            f"decided {format_duration(summary.time_to_decision)} after the release")
        yield (f"Canary served {summary.canary_requests} requests, {summary.canary_failed_requests} failed; "
               f"{decided}")
