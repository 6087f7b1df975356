"""Draws the demo: a live panel (release, step, weights, requests per version, gate values) and the
closing summary lines, one per release."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from rollouts.demo.runner import DemoState, ReleaseResult

_COLORS = {"blue": "blue", "yellow": "yellow", "bad-red": "red"}


def render(state: DemoState) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("stage", state.stage)
    if state.release is not None:
        head.add_row("release", f"{state.release.label}: {state.release.image} (expect: {state.release.expected})")
    head.add_row("step", state.step or "-")
    weight = "-" if state.set_weight is None else f"{state.set_weight} %"
    head.add_row("set weight", f"{weight}  (canary now at {state.canary_weight} %)")
    phase = state.phase + (f": {state.message}" if state.message else "")
    head.add_row("phase", phase or "-")
    gate = state.gate_run and f"{state.gate_run} {state.gate_phase}"
    head.add_row("gate", gate or "-")
    if state.last_gate:
        head.add_row("last analysis", state.last_gate)
    port = f"127.0.0.1:{state.port}" if state.port else "-"
    head.add_row("ingress", f"{port}  load {state.rate:.0f} req/s  elapsed {state.elapsed:.0f}s")

    parts: list[RenderableType] = [head]
    if state.gates:
        gates = Table(title="gate values (last measurement)", title_justify="left", expand=False)
        for column in ("metric", "value", "phase"):
            gates.add_column(column)
        for value in state.gates:
            style = {"Successful": "green", "Failed": "red", "Error": "red"}.get(value.phase, "")
            gates.add_row(value.metric, value.value or "-", Text(value.phase or "-", style=style))
        parts.append(gates)
    if state.load.by_version:
        counts = Table(title="requests per version", title_justify="left", expand=False)
        for column in ("version", "answered", "failed"):
            counts.add_column(column, justify="right" if column != "version" else "left")
        for version, count in sorted(state.load.by_version.items()):
            counts.add_row(Text(version, style=_COLORS.get(version, "")), str(count),
                           str(state.load.failed_by_version.get(version, 0)))
        parts.append(counts)
    for result in state.results:
        parts.append(Text(summary_line(result), style="green" if result.as_expected else "red"))
    return Panel(Group(*parts), title="rollouts demo", border_style="cyan")


def summary_line(result: ReleaseResult) -> str:
    release = result.release
    verdict = "as expected" if result.as_expected else f"UNEXPECTED (expected: {release.expected})"
    line = (f"{release.label} release {release.image}: {result.outcome} after {result.seconds:.1f}s; "
            f"canary served {result.canary_requests} requests; {result.failed_requests} failed requests; "
            f"{verdict}")
    return line + (f" ({result.detail})" if result.detail else "")
