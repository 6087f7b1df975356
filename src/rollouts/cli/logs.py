"""`rollouts logs`: the output of local pods (HOME/logs/<pod>.log) picked by name, label selector or
rollout (its canary or stable pods), and `logs ingress` for the ingress proxy's access log; -f follows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
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
from rollouts.views.info import POD_HASH_LABEL as HASH_LABEL

if TYPE_CHECKING:
    from rollouts.store.protocol import ObjectStore

INGRESS = "ingress"


@dataclass
class LogSource:
    """One file being read: its label (pod name) and how far it has been printed."""

    label: str
    path: Path
    offset: int = 0
    partial: bytes = field(default=b"", repr=False)


def _pod_log(home: Path, pod: dict[str, Any]) -> Path:
    annotations = pod["metadata"].get("annotations") or {}
    return Path(annotations.get("rollouts.io/log") or home / "logs" / f"{pod['metadata']['name']}.log")


def _rollout_hash(store: ObjectStore, namespace: str, name: str, canary: bool) -> str:
    from rollouts.store.protocol import NotFound

    try:
        rollout = store.get("Rollout", namespace, name)
    except NotFound as exc:
        fail(str(exc))
    status = rollout.get("status") or {}
    pod_hash = status.get("currentPodHash") if canary else status.get("stableRS")
    if not pod_hash:
        fail(f'rollout "{name}" has no {"canary" if canary else "stable"} pods yet (status has no pod hash)')
    return str(pod_hash)


def select_sources(store: ObjectStore, home: Path, namespace: str, name: str | None, selector: str | None,
                   canary: bool, stable: bool) -> list[LogSource]:
    """The log files a `logs` invocation reads, in pod-name order."""
    from rollouts.store.protocol import NotFound

    if name == INGRESS and selector is None:
        return [LogSource(INGRESS, home / "logs" / "ingress.log")]
    kind = "Pod"
    if name is not None and "/" in name:
        from rollouts.spec.kinds import UnknownKindError, resolve_resource

        prefix, name = name.split("/", 1)
        try:
            kind = resolve_resource(prefix)
        except UnknownKindError as exc:
            fail(str(exc))
        if kind not in ("Pod", "Rollout"):
            fail(f"logs are kept for pods and rollouts, not for {kind} (use pod/NAME, rollout/NAME or -l)")
    if name is not None and kind == "Pod" and not (canary or stable):
        try:
            pod = store.get("Pod", namespace, name)
        except NotFound:
            path = home / "logs" / f"{name}.log"
            if path.exists():  # a pod that is gone still has its log
                return [LogSource(name, path)]
            if store.list("Rollout", namespace, field_selector=f"metadata.name={name}"):
                kind = "Rollout"
            else:
                fail(f'pods "{name}" in namespace "{namespace}" not found (nor a rollout of that name)')
        else:
            return [LogSource(name, _pod_log(home, pod))]
    labels = [selector] if selector else []
    if name is not None:
        rollout_obj = store.list("Rollout", namespace, field_selector=f"metadata.name={name}")
        if not rollout_obj:
            fail(f'rollouts "{name}" in namespace "{namespace}" not found')
        match = (rollout_obj[0]["spec"].get("selector") or {}).get("matchLabels") or {}
        labels += [f"{k}={v}" for k, v in match.items()]
    if canary or stable:
        if name is None:
            fail("--canary/--stable need the rollout: rollouts logs ROLLOUT --canary")
        labels.append(f"{HASH_LABEL}={_rollout_hash(store, namespace, name, canary)}")
    if not labels:
        fail("say which logs: a pod or rollout NAME, -l SELECTOR, or 'ingress'")
    pods = store.list("Pod", namespace, label_selector=",".join(labels))
    sources = [LogSource(p["metadata"]["name"], _pod_log(home, p)) for p in pods]
    return sources + _gone_pods(home, ",".join(labels), {s.path for s in sources})


def _gone_pods(home: Path, selector: str, known: set[Path]) -> list[LogSource]:
    """Logs of deleted pods of one ReplicaSet: an aborted canary's pods are removed soon after the abort,
    and their output is what an incident needs. Pod names are `<rollout>-<hash>-<suffix>`."""
    hashes = [part.split("=", 1)[1].strip() for part in selector.split(",")
              if part.split("=", 1)[0].strip() == HASH_LABEL and "=" in part and "!=" not in part]
    if len(hashes) != 1 or not hashes[0]:
        return []
    found = sorted(p for p in (home / "logs").glob(f"*-{hashes[0]}-?????.log") if p not in known)
    return [LogSource(p.name[: -len(".log")], p) for p in found]


def _read_new(source: LogSource, prefix: bool) -> list[str]:
    try:
        with source.path.open("rb") as handle:
            handle.seek(source.offset)
            data = handle.read()
    except OSError:
        return []
    source.offset += len(data)
    data = source.partial + data
    *complete, source.partial = data.split(b"\n")
    head = f"[{source.label}] " if prefix else ""
    return [head + line.decode(errors="replace") for line in complete]


def _tail_start(path: Path, lines: int) -> int:
    """Offset where the last `lines` complete lines of a file begin (-1: the start, 0: the end)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    if lines < 0:
        return 0
    end = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1
    start = end
    for _ in range(lines):
        if start == 0:
            break
        start = data.rfind(b"\n", 0, start - 1) + 1
    return start


@app.command()
def logs(
    name: str | None = typer.Argument(None, help="Pod, rollout (its pods), pod/NAME, rollout/NAME or 'ingress'."),
    selector: str | None = typer.Option(None, "--selector", "-l", help="Label selector, e.g. app=x,tier=web."),
    canary: bool = typer.Option(False, "--canary", help="Only the rollout's canary (newest) pods."),
    stable: bool = typer.Option(False, "--stable", help="Only the rollout's stable pods."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until Ctrl-C."),
    tail: int = typer.Option(-1, "--tail", help="Lines of recent output to show per pod (-1: all)."),
    prefix: bool | None = typer.Option(None, "--prefix/--no-prefix", help="Prefix lines with the pod name."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Print pods' output (or the ingress proxy's access log with `logs ingress`)."""
    from rollouts.store.home import rollouts_home

    if canary and stable:
        fail("--canary and --stable exclude each other")
    folder = rollouts_home(home)
    ns = namespace_or_default(namespace)
    store = open_store(home)
    sources = select_sources(store, folder, ns, name, selector, canary, stable)
    if not sources and not follow:
        typer.echo(f'No resources found in {ns} namespace.', err=True)
        return
    show_prefix = prefix if prefix is not None else len(sources) > 1 or selector is not None
    for source in sources:
        source.offset = _tail_start(source.path, tail)
        for line in _read_new(source, show_prefix):
            typer.echo(line)
    if not follow:
        return
    refresh = time.monotonic() + 1.0
    try:
        while True:
            time.sleep(0.2)
            if name != INGRESS and time.monotonic() >= refresh:
                # Pods come and go during a release: pick up new ones, from their start.
                known = {s.path for s in sources}
                sources += [s for s in select_sources(store, folder, ns, name, selector, canary, stable)
                            if s.path not in known]
                refresh = time.monotonic() + 1.0
            for source in sources:
                for line in _read_new(source, show_prefix):
                    typer.echo(line)
    except KeyboardInterrupt:
        return
