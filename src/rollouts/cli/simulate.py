"""The `simulate` verb: load manifests and a scenario, replay the release in virtual time, print it."""

from __future__ import annotations

import typer

from rollouts.cli.common import fail
from rollouts.cli.main import app


@app.command()
def simulate(
    files: list[str] = typer.Option(..., "--filename", "-f", help="Manifests: the Rollout and its templates."),
    scenario: str = typer.Option(..., "--scenario", help="Scenario YAML: release, analysis values, operator."),
    rollout: str | None = typer.Option(None, "--rollout", help="Which Rollout, when the files hold several."),
    output: str | None = typer.Option(None, "--output", "-o", help="json: one JSON object per line."),
) -> None:
    """Replay a release in virtual time with metric values from a scenario, and print the timeline."""
    from pydantic import BaseModel, ValidationError

    from rollouts.simulate.render import json_lines, text_lines
    from rollouts.simulate.runner import SimulationError
    from rollouts.simulate.runner import simulate as run_simulation
    from rollouts.simulate.scenario import ScenarioError, load_scenario
    from rollouts.spec.analysis import AnalysisTemplate, ClusterAnalysisTemplate
    from rollouts.spec.kinds import UnknownKindError, parse_object
    from rollouts.spec.loader import load_paths
    from rollouts.spec.rollout import Rollout

    if output not in (None, "json"):
        fail(f"--output {output!r} is not supported (valid: json)", 2)
    try:
        plan = load_scenario(scenario)
    except ScenarioError as exc:
        fail(str(exc), 2)
    loaded = load_paths(files)
    if loaded.problems:
        problem = loaded.problems[0]
        fail(f"{problem.file}: {problem.message}", 2)
    wanted = ("Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate")
    objects: list[BaseModel] = []
    for obj in loaded.objects:
        if obj.kind not in wanted:
            continue
        try:
            objects.append(parse_object(obj.data))
        except (ValidationError, UnknownKindError) as exc:
            first = str(exc).splitlines()[0]
            fail(f"{obj.source}:{obj.line}: {obj.kind} {obj.name}: {first}", 2)
    rollouts = [o for o in objects if isinstance(o, Rollout)]
    if rollout is not None:
        rollouts = [r for r in rollouts if r.name == rollout]
    if len(rollouts) != 1:
        names = ", ".join(r.name for r in rollouts) or "none"
        hint = f" named {rollout!r}" if rollout else ""
        fail(f"expected exactly one Rollout{hint} in {', '.join(files)} (found: {names}); choose with --rollout", 2)
    try:
        result = run_simulation(
            rollouts[0],
            plan,
            templates=[o for o in objects if isinstance(o, AnalysisTemplate)],
            cluster_templates=[o for o in objects if isinstance(o, ClusterAnalysisTemplate)],
        )
    except SimulationError as exc:
        fail(str(exc), 2)
    for line in json_lines(result) if output == "json" else text_lines(result):
        typer.echo(line)
