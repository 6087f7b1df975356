"""The runbook's rollout verbs: promote, abort, retry, pause, resume, undo, restart, set image, status.

Each verb is a patch on the Rollout, computed by the engine's pure intent functions and written to the
store by the actions the dashboard API uses too (rollouts.api.actions); the controller reacts to it like Argo's controller reacts to the kubectl plugin's patches."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_or_default,
    open_store,
    rollout_name,
)
from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.api.actions import ActionResult
    from rollouts.engine.intents import Patch
    from rollouts.spec.rollout import Rollout
    from rollouts.store.protocol import ObjectStore

set_app = typer.Typer(help="Change a rollout's spec (set image).", no_args_is_help=True)
retry_app = typer.Typer(help="Retry an aborted rollout.", no_args_is_help=True)
app.add_typer(set_app, name="set")
app.add_typer(retry_app, name="retry")


def _run(name: str, namespace: str | None, home: str | None, verb: Callable[[ObjectStore, str, str], ActionResult],
         message: Callable[[str], str] | None = None, suffix: list[str] | None = None) -> None:
    """Runs a shared action (rollouts.api.actions) on the named rollout and prints its message (or the
    kubectl plugin's own wording, `message(name)`, where the shared text differs); `suffix` is filled
    by the verb with what the user should know about the outcome."""
    from rollouts.api.actions import ActionError, RolloutNotFound
    from rollouts.store.protocol import Conflict

    ns = namespace_or_default(namespace)
    name = rollout_name(name)
    store = open_store(home)
    try:
        result = verb(store, ns, name)
    except (ActionError, RolloutNotFound, Conflict) as exc:  # Conflict: changed since read; run it again
        fail(str(exc))
    text = message(name) if message is not None else result.message
    typer.echo(": ".join([text, *(suffix or [])]))


@app.command()
def promote(
    name: str = typer.Argument(..., help="Rollout name."),
    full: bool = typer.Option(False, "--full", help="Skip all remaining steps, pauses and analysis."),
    skip_current_step: bool = typer.Option(False, "--skip-current-step", "-c", help="Skip the current step."),
    skip_all_steps: bool = typer.Option(False, "--skip-all-steps", "-a",
                                        help="Skip the remaining steps (Argo's deprecated flag; prefer --full)."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Promote a rollout: finish the current pause or step (or all steps with --full)."""
    from rollouts.api import actions

    if skip_current_step and skip_all_steps:
        fail("Cannot use skip-current-step and skip-all-steps flags at the same time")
    if skip_all_steps:
        _run(name, namespace, home, lambda store, ns, n: actions.apply_intent(store, ns, n, _skip_all_steps))
        return
    note: list[str] = []

    def run(store: ObjectStore, ns: str, n: str) -> ActionResult:
        if not full and not skip_current_step:
            note.extend(_rerun_note(store, ns, n))
        return actions.promote(store, ns, n, full=full, skip_current_step=skip_current_step)

    _run(name, namespace, home, run, suffix=note)


def _skip_all_steps(rollout: Rollout) -> Patch:
    """Argo's `promote --skip-all-steps`: the step index jumps past the last step (analysis still runs)."""
    from rollouts.engine.intents import IntentError, Patch

    canary = rollout.spec.strategy.canary
    if canary is None:
        raise IntentError("Cannot skip steps of a bluegreen rollout. Run without a flags")
    if not canary.steps:
        raise IntentError("Cannot skip steps of a rollout without steps")
    return Patch(status={"currentStepIndex": len(canary.steps)}, message=f"rollout '{rollout.name}' promoted")


def _rerun_note(store: ObjectStore, namespace: str, name: str) -> list[str]:
    """What a plain promote of a blue/green rollout paused on an Inconclusive analysis leads to: the engine
    clears the pause and starts a new run of that analysis (Argo's semantics), it does not skip it."""
    from rollouts.api.actions import RolloutNotFound, load_rollout

    try:
        _, rollout = load_rollout(store, namespace, name)
    except RolloutNotFound:
        return []
    status = rollout.status
    if rollout.spec.strategy.blue_green is None or status is None or status.blue_green is None:
        return []
    if not any(c.reason == "InconclusiveAnalysisRun" for c in status.pause_conditions or []):
        return []
    for which, run in (("pre-promotion", status.blue_green.pre_promotion_analysis_run_status),
                       ("post-promotion", status.blue_green.post_promotion_analysis_run_status)):
        if run is not None and run.status == "Inconclusive":
            return [f"a new {which} analysis run starts; use --full to skip it"]
    return []


@app.command()
def abort(
    name: str | None = typer.Argument(None, help="Rollout name."),
    all_: bool = typer.Option(False, "--all", help="Abort every rollout of the namespace (mass rollback)."),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="With --all: every namespace."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Abort a rollout: traffic and replicas go back to the stable version."""
    from rollouts.api import actions

    if all_ == (name is not None):
        fail("give a rollout name or --all (not both)")
    if all_namespaces and not all_:
        fail("-A/--all-namespaces only goes with --all")
    if name is not None:
        _run(name, namespace, home, actions.abort)
        return
    from rollouts.cli.mass import abort_all

    raise typer.Exit(abort_all(open_store(home), None if all_namespaces else namespace_or_default(namespace)))


@retry_app.command("rollout")
def retry_rollout(
    name: str = typer.Argument(..., help="Rollout name."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Retry an aborted rollout from its first step."""
    from rollouts.api import actions

    _run(name, namespace, home, actions.retry, message=lambda n: f"rollout '{n}' retried")


@app.command()
def pause(
    name: str = typer.Argument(..., help="Rollout name."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Pause a rollout: steps stop advancing until it is resumed or promoted."""
    from rollouts.api import actions

    _run(name, namespace, home, actions.pause)


@app.command()
def resume(
    name: str = typer.Argument(..., help="Rollout name."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Resume a paused rollout without skipping the step it is on."""
    from rollouts.api import actions

    def run(store: ObjectStore, ns: str, n: str) -> ActionResult:
        _, rollout = actions.load_rollout(store, ns, n)
        status = rollout.status
        if not rollout.spec.paused and not (status is not None and status.pause_conditions):
            # Nothing is holding it: writing the patch would change nothing, say so instead.
            return actions.ActionResult(f"rollout '{n}' is not paused: nothing to resume", False)
        return actions.resume(store, ns, n)

    _run(name, namespace, home, run)


@app.command()
def restart(
    name: str = typer.Argument(..., help="Rollout name."),
    in_: str = typer.Option("0s", "--in", "-i", help="Restart after this long, e.g. 30s."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Restart the rollout's pods (a few at a time)."""
    from datetime import UTC, datetime, timedelta

    from rollouts.api import actions
    from rollouts.spec.duration import DurationError, parse_duration

    try:
        delay = parse_duration(in_)
    except DurationError as exc:
        fail(f"--in: {exc}")
    at = datetime.now(UTC) + timedelta(seconds=delay)
    _run(name, namespace, home, lambda store, ns, n: actions.restart(store, ns, n, at))


@app.command()
def undo(
    name: str = typer.Argument(..., help="Rollout name."),
    to_revision: int = typer.Option(0, "--to-revision", help="Revision to go back to (0: the previous one)."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Roll back to an earlier revision's pod template."""
    from rollouts.api import actions

    _run(name, namespace, home, lambda store, ns, n: actions.undo(store, ns, n, to_revision))


@set_app.command("image")
def set_image(
    name: str = typer.Argument(..., help="Rollout name."),
    container_image: str = typer.Argument(..., metavar="CONTAINER=IMAGE", help="'*=IMAGE' sets every container."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Update a container's image: starts a new release."""
    container, sep, image = container_image.partition("=")
    if not sep or not container or not image:
        fail(f"{container_image!r} is not CONTAINER=IMAGE (use '*=IMAGE' for every container)")
    from rollouts.api import actions

    _run(name, namespace, home, lambda store, ns, n: actions.set_image(store, ns, n, container, image),
         message=lambda n: f'rollout "{n}" image updated')


@app.command()
def status(
    name: str = typer.Argument(..., help="Rollout name."),
    watch: bool = typer.Option(True, "--watch/--no-watch", "-w", help="Wait until Healthy or Degraded."),
    timeout: str = typer.Option("0s", "--timeout", "-t", help="Give up after this long (0: never)."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Print the rollout's status; with --watch, wait until Healthy (exit 0) or Degraded (exit 1)."""
    import time

    from rollouts.api.actions import RolloutNotFound, load_rollout
    from rollouts.spec.duration import DurationError, parse_duration

    try:
        limit = parse_duration(timeout)
    except DurationError as exc:
        fail(f"--timeout: {exc}")
    ns = namespace_or_default(namespace)
    name = rollout_name(name)
    store = open_store(home)
    deadline = time.monotonic() + limit if limit > 0 else None
    last = ""
    while True:
        try:
            _, rollout = load_rollout(store, ns, name)
        except RolloutNotFound as exc:
            fail(str(exc))
        state = rollout.status
        phase = (state.phase if state else None) or "Progressing"
        message = (state.message if state else None) or ""
        generation_seen = state is not None and state.observed_generation == str(rollout.metadata.generation)
        line = phase if not message or phase in ("Healthy",) else f"{phase} - {message}"
        if not watch:
            typer.echo(line)
            raise typer.Exit(0)
        if generation_seen and phase == "Healthy":
            typer.echo("Healthy")
            raise typer.Exit(0)
        if generation_seen and phase == "Degraded":
            fail(f"The rollout is in a degraded state with message: {message}")
        if line != last:
            typer.echo(line)
            last = line
        if deadline is not None and time.monotonic() > deadline:
            fail("Rollout status watch exceeded timeout", code=2)
        time.sleep(0.2)
