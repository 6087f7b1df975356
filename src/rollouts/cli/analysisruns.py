"""`create analysisrun --from TEMPLATE` (a run made from a template like the controller makes one, then
measured by the controller) and `terminate analysisrun NAME`."""

from __future__ import annotations

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_or_default,
    open_store,
)
from rollouts.cli.main import app

terminate_app = typer.Typer(help="Stop a running analysis run.", no_args_is_help=True)
app.add_typer(terminate_app, name="terminate")


def create_analysisrun(template: str, cluster: bool, arguments: list[str], name: str | None,
                       namespace: str, home: str | None) -> None:
    """Store an AnalysisRun built from a (Cluster)AnalysisTemplate and `-a NAME=VALUE` arguments."""
    from rollouts.cli.analysis import _parse_args, build_standalone_run
    from rollouts.store.protocol import AlreadyExists, Invalid, NotFound

    kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
    store = open_store(home)
    try:
        doc = store.get(kind, "" if cluster else namespace, template)
    except NotFound as exc:
        hint = "" if cluster else " (add --global for a ClusterAnalysisTemplate)"
        fail(f"{exc}{hint}")
    run = build_standalone_run([doc], _parse_args(arguments), once=False, namespace=namespace)
    body = run.to_dict()
    meta = {"namespace": namespace, "labels": {"analysistemplate": template}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{template}-"
    body["metadata"] = meta
    body.pop("status", None)
    try:
        created = store.create(body)
    except (AlreadyExists, Invalid) as exc:
        fail(str(exc))
    typer.echo(f"analysisrun.argoproj.io/{created['metadata']['name']} created")


@terminate_app.command("analysisrun")
def terminate_analysisrun(
    name: str = typer.Argument(..., help="AnalysisRun name (or analysisrun/NAME)."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Terminate an analysis run: its measurements stop and it ends Successful unless a metric failed."""
    from rollouts.cli.patching import resolve_kind_name
    from rollouts.store.protocol import NotFound

    kind, run_name = resolve_kind_name(name) if "/" in name else ("AnalysisRun", name)
    if kind != "AnalysisRun":
        fail(f"{name!r} is a {kind}, not an AnalysisRun")
    ns = namespace_or_default(namespace)
    store = open_store(home)
    try:
        store.patch("AnalysisRun", ns, run_name, {"spec": {"terminate": True}})
    except NotFound as exc:
        fail(str(exc))
    typer.echo(f"analysisrun '{run_name}' terminated")
