"""`rollouts report`: release metrics per rollout and the service it fronts (deployment frequency, lead
time, change failure rate, time to restore), as a table with a daily sparkline or as JSON.

Read through the Kubernetes API of the selected cluster: the Rollouts, their Events, and each rollout's
release history from its `<rollout>.rollout-history` ConfigMap (`ObjectStore.list_revisions`), so it
works on any cluster, not only the local one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from rollouts.report.releases import ReleaseReport


def _service(obj: dict[str, Any]) -> str:
    strategy = (obj.get("spec") or {}).get("strategy") or {}
    canary, blue_green = strategy.get("canary") or {}, strategy.get("blueGreen") or {}
    return str(canary.get("stableService") or blue_green.get("activeService") or "")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


@app.command()
def report(
    since: str = typer.Option("30d", "--since", help="Look-back window, e.g. 30d, 2w, 12h."),
    namespace: str | None = NAMESPACE_OPTION,
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Every namespace."),
    output: str | None = typer.Option(None, "--output", "-o", help="json for machine-readable output."),
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Release metrics per rollout: deployment frequency, lead time, change failure rate, time to restore."""
    from rollouts.report.releases import assess_releases, build_releases, parse_window

    if output not in (None, "json"):
        fail(f'--output: "{output}" is not one of json')
    if all_namespaces and namespace:
        fail("--namespace and --all-namespaces exclude each other")
    try:
        window = parse_window(since)
    except ValueError as exc:
        fail(str(exc))
    now = datetime.now(UTC)
    store = open_store(home)
    try:
        ns = None if all_namespaces else namespace_or_default(namespace)
        rollouts = sorted(store.list("Rollout", ns), key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
        events = [e for e in store.list("Event", ns) if (e.get("involvedObject") or {}).get("kind") == "Rollout"]
        reports = []
        for obj in rollouts:
            meta = obj["metadata"]
            mine = [e for e in events if e["involvedObject"].get("name") == meta["name"]
                    and e["metadata"]["namespace"] == meta["namespace"]]
            releases = build_releases(store.list_revisions(meta["namespace"], meta["name"]), mine)
            reports.append(assess_releases(meta["namespace"], meta["name"], releases, since=window, now=now,
                                           service=_service(obj)))
    finally:
        store.close()
    if output == "json":
        typer.echo(json.dumps({"since": since, "until": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "rollouts": [r.to_dict() for r in reports]}, indent=2))
        return
    if not reports:
        where = "any namespace" if all_namespaces else f"namespace {ns}"
        typer.echo(f"No rollouts in {where}.")
        return
    _print_table(reports, since, all_namespaces)


def _print_table(reports: list[ReleaseReport], since: str, all_namespaces: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from rollouts.report.releases import format_seconds, sparkline

    table = Table(title=f"Releases in the last {since}", title_justify="left", box=None, pad_edge=False)
    if all_namespaces:
        table.add_column("NAMESPACE")
    for header in ("ROLLOUT", "SERVICE", "RELEASES", "PER DAY", "LEAD TIME (P50)", "FAILURE RATE",
                   "TIME TO RESTORE (P50)", "DAILY"):
        table.add_column(header, justify="right" if header in ("RELEASES", "PER DAY") else "left")
    for r in reports:
        rate = _percent(r.change_failure_rate)
        if r.aborted:
            rate = f"[red]{rate}[/red] ({r.aborted}/{r.releases})"
        restore = format_seconds(r.time_to_restore.median)
        if r.unrestored:
            restore += f" ({r.unrestored} open)"
        row = [r.rollout, r.service or "-", str(r.releases), f"{r.deployment_frequency:.2f}",
               format_seconds(r.lead_time.median), rate, restore, f"[cyan]{sparkline(r.daily)}[/cyan]"]
        table.add_row(*([r.namespace, *row] if all_namespaces else row))
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 200)  # a pipe gets whole rows, not rows cut at 80 columns
    console.print(table)
