"""`rollouts get` and `rollouts list rollouts`: Argo's `get rollout` tree (live with -w), kubectl tables for
every kind (-n/-A, -l, --field-selector, -w) and the json/yaml/name/wide outputs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
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
    from rollouts.store.protocol import ObjectStore

Obj = dict[str, Any]
OUTPUTS = ("json", "yaml", "name", "wide")
TREE_KINDS = {"Rollout", "ReplicaSet", "Pod", "AnalysisRun"}


def _kind_and_name(kind: str, name: str | None) -> tuple[str, str | None]:
    from rollouts.cli.common import split_kind_name
    from rollouts.spec.kinds import UnknownKindError

    try:
        return split_kind_name(kind, name)
    except UnknownKindError as exc:
        fail(str(exc))


def _check_output(output: str | None) -> None:
    if output is not None and output not in OUTPUTS:
        fail(f'--output: "{output}" is not one of {", ".join(OUTPUTS)}')


def print_objects(objs: list[Obj], output: str, single: bool) -> None:
    """json/yaml of one object, or of a v1 List; `name` lines as `kind.group/name`."""
    from rollouts.views.tables import object_name

    if output == "name":
        for obj in objs:
            typer.echo(object_name(str(obj.get("kind")), str(obj["metadata"]["name"])))
        return
    doc: Obj = objs[0] if single else {"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {}}
    if output == "json":
        typer.echo(json.dumps(doc, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), nl=False)


def _row_text(row: list[str], widths: list[int]) -> str:
    """A table row with its cells padded to the column widths (kubectl's layout: the last cell unpadded)."""
    return ("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1]).rstrip()


def _matches(obj: Obj, name: str | None, label_selector: str | None, field_selector: str | None) -> bool:
    from rollouts.store.selectors import parse_field_selector, parse_label_selector

    meta = obj.get("metadata") or {}
    if name is not None and meta.get("name") != name:
        return False
    return parse_label_selector(label_selector).matches(meta.get("labels")) and \
        parse_field_selector(field_selector).matches(obj)


def _watch_rows(store: ObjectStore, kind: str, namespace: str | None, name: str | None, label: str | None,
                field: str | None, widths: list[int], row_of: Any, timeout: float | None, since: int) -> None:
    """kubectl --watch: after the table, one new row per change of a matching object after `since`."""
    from rollouts.store.protocol import Expired

    watched = {"Service", "Pod"} if kind == "Endpoints" else {kind}
    deadline = time.monotonic() + timeout if timeout else None
    while deadline is None or time.monotonic() < deadline:
        try:
            changes = store.watch(since, kinds=watched, timeout=1.0)
        except Expired:
            since = store.current_version()
            continue
        if not changes:
            continue
        since = changes[-1].resource_version
        if kind == "Endpoints":
            from rollouts.cli.show import fetch

            objs = fetch(store, kind, namespace, name, label, field)
        else:
            objs = [c.object for c in changes if (namespace is None or
                    (c.object.get("metadata") or {}).get("namespace", "") in (namespace, ""))
                    and _matches(c.object, name, label, field)]
        for obj in objs:
            typer.echo(_row_text(row_of(obj), widths))
        sys.stdout.flush()


def _watch_tree(store: ObjectStore, namespace: str, name: str, color: bool, timeout: float | None,
                since: int) -> None:
    """Redraw the tree on every change after `since` (in place on a terminal; a new copy per change otherwise)."""
    from rollouts.cli.show import rollout_text

    deadline = time.monotonic() + timeout if timeout else None
    text = rollout_text(store, namespace, name, color)
    if not sys.stdout.isatty():
        typer.echo(text, nl=False)
        sys.stdout.flush()
        for changed in _tree_changes(store, since, deadline):
            if changed:
                new = rollout_text(store, namespace, name, color)
                if new != text:
                    text = new
                    typer.echo("\n" + text, nl=False)
                    sys.stdout.flush()
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(no_color=not color, highlight=False)
    with Live(Text.from_ansi(text), console=console, auto_refresh=False, transient=False) as live:
        for _ in _tree_changes(store, since, deadline):
            live.update(Text.from_ansi(rollout_text(store, namespace, name, color)), refresh=True)


def _tree_changes(store: ObjectStore, since: int, deadline: float | None) -> Iterator[bool]:
    """Waits up to a second at a time for changes to a rollout's tree after `since`, until the deadline;
    yields after each wait whether anything changed (a compacted history restarts from the current version)."""
    from rollouts.store.protocol import Expired

    while deadline is None or time.monotonic() < deadline:
        try:
            changes = store.watch(since, kinds=TREE_KINDS, timeout=1.0)
        except Expired:
            changes, since = [], store.current_version()
        if changes:
            since = changes[-1].resource_version
        yield bool(changes)


def _ordered(objs: list[Obj], kind: str, sort_by: str | None) -> list[Obj]:
    """The rows in --sort-by order; events default to kubectl's order (by last timestamp)."""
    from rollouts.views.sorting import SortError, parse_sort_by, sort_events, sort_objects

    if sort_by is None:
        return sort_events(objs) if kind == "Event" else objs
    try:
        return sort_objects(objs, parse_sort_by(sort_by))
    except SortError as exc:
        fail(str(exc))


@app.command()
def get(
    kind: str = typer.Argument(..., help="Kind: rollout(ro), analysisrun(ar), analysistemplate(at), "
                               "clusteranalysistemplate(cat), replicaset(rs), pod(po), service(svc), "
                               "endpoints(ep), ingress(ing), event(ev), secret, configmap(cm); or KIND/NAME."),
    name: str | None = typer.Argument(None, help="Object name."),
    namespace: str | None = NAMESPACE_OPTION,
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Every namespace."),
    selector: str | None = typer.Option(None, "--selector", "-l", help="Label selector, e.g. app=web."),
    field_selector: str | None = typer.Option(None, "--field-selector", help="e.g. involvedObject.name=X."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Keep watching and show changes."),
    output: str | None = typer.Option(None, "--output", "-o", help="json, yaml, name or wide."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours in the rollout tree."),
    timeout_seconds: int = typer.Option(0, "--timeout-seconds", help="Stop watching after N seconds (0: never)."),
    sort_by: str | None = typer.Option(None, "--sort-by", help="Sort rows by a field path, e.g. "
                                       ".metadata.creationTimestamp (events: .lastTimestamp by default)."),
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Show objects: `get rollout NAME` draws Argo's tree; other forms print kubectl-style tables."""
    from rollouts.cli.show import fetch, rollout_text, use_color
    from rollouts.views.tables import table_header, table_row

    kind_name, name = _kind_and_name(kind, name)
    _check_output(output)
    _ordered([], kind_name, sort_by)  # a bad --sort-by fails before anything is read
    ns: str | None = None if all_namespaces else namespace_or_default(namespace)
    store = open_store(home)
    color = use_color(no_color)
    timeout = float(timeout_seconds) or None
    # Read before the first answer is printed: a change made while it is drawn is then not missed.
    since = store.current_version() if watch else 0
    if kind_name == "Rollout" and name is not None and output is None:
        assert ns is not None
        try:
            text = rollout_text(store, ns, name, color)
        except LookupError as exc:
            fail(str(exc.args[0]))
        if watch:
            _watch_tree(store, ns, name, color, timeout, since)
        else:
            typer.echo(text, nl=False)
        return
    try:
        objs = fetch(store, kind_name, ns, name, selector, field_selector)
    except LookupError as exc:
        fail(str(exc.args[0]))
    except ValueError as exc:  # a bad selector
        fail(str(exc))
    objs = _ordered(objs, kind_name, sort_by)
    if output in ("json", "yaml", "name"):
        # A named object that is missing failed above, so `single` always has its one object.
        print_objects(objs, output, single=name is not None)
        return
    wide = output == "wide"
    now = datetime.now(UTC)
    header = table_header(kind_name, wide=wide, all_namespaces=all_namespaces)
    rows = [table_row(kind_name, obj, now, wide=wide, all_namespaces=all_namespaces) for obj in objs]
    if not rows and not watch:
        where = "" if all_namespaces else f" in {ns} namespace"
        typer.echo(f"No resources found{where}.", err=True)
        return
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    for row in [header, *rows]:
        typer.echo(_row_text(row, widths))
    if watch:
        sys.stdout.flush()
        _watch_rows(store, kind_name, ns, name, selector, field_selector, widths,
                    lambda obj: table_row(kind_name, obj, datetime.now(UTC), wide=wide,
                                          all_namespaces=all_namespaces), timeout, since)


@app.command("list")
def list_(
    resource: str = typer.Argument("rollouts", help="rollouts (ro)."),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="Every namespace."),
    name: str | None = typer.Option(None, "--name", help="Only the rollout with this name."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Print a new line whenever a rollout changes."),
    timeout_seconds: int = typer.Option(0, "--timeout-seconds", help="Stop watching after N seconds (0: never)."),
    timestamps: bool = typer.Option(False, "--timestamps", help="Start each line with the time it was printed."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """List rollouts: NAME STRATEGY STATUS STEP SET-WEIGHT READY DESIRED UP-TO-DATE AVAILABLE."""
    from rollouts.store.protocol import Expired
    from rollouts.views.info import list_rollout_infos
    from rollouts.views.tables import LIST_HEADER, list_row

    if _kind_and_name(resource, None)[0] != "Rollout":
        fail(f'list: "{resource}" is not a listable resource (valid: rollouts)')
    ns = None if all_namespaces else namespace_or_default(namespace)
    store = open_store(home)

    def rows() -> list[list[str]]:
        infos = [i for i in list_rollout_infos(store, ns) if name is None or i.name == name]
        return [list_row(i, all_namespaces=all_namespaces) for i in infos]

    def stamped(row: list[str]) -> list[str]:
        # Argo's --timestamps: the UTC second each line was printed, in the first column.
        return [datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), *row] if timestamps else row

    header = (["TIMESTAMP"] if timestamps else []) + (["NAMESPACE"] if all_namespaces else []) + LIST_HEADER
    current = [stamped(row) for row in rows()]
    if not current and not watch:
        typer.echo("No resources found." if all_namespaces else f"No resources found in {ns} namespace.", err=True)
        return
    widths = [max(len(r[c]) for r in [header, *current]) for c in range(len(header))]
    for row in [header, *current]:
        typer.echo(_row_text(row, widths))
    if not watch:
        return
    sys.stdout.flush()
    since = store.current_version()
    deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
    seen = {tuple(r[1:] if timestamps else r) for r in current}
    while deadline is None or time.monotonic() < deadline:
        try:
            changes = store.watch(since, kinds={"Rollout", "ReplicaSet"}, timeout=1.0)
        except Expired:
            changes, since = [], store.current_version()
        if not changes:
            continue
        since = changes[-1].resource_version
        for row in rows():
            if tuple(row) not in seen:
                seen.add(tuple(row))
                typer.echo(_row_text(stamped(row), widths))
        sys.stdout.flush()
