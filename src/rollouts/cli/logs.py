"""`rollouts logs`: pods' output through the Kubernetes API (the pods/log subresource, `-f` following it),
picked by name, label selector or rollout (its canary or stable pods), `-c` for a container.

On the local cluster (a kubeconfig that is a rollouts home's own) two things have no API object and are
read from the home's log folder instead: the output of pods already deleted (an aborted canary's pods
are removed soon after the abort, and their output is what an incident needs) and `logs ingress`, the
ingress proxy's access log."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
)
from rollouts.cli.main import app
from rollouts.views.info import POD_HASH_LABEL as HASH_LABEL

if TYPE_CHECKING:
    from rollouts.kube.client import KubeStore
    from rollouts.store.protocol import ObjectStore

INGRESS = "ingress"


@dataclass
class LogSource:
    """One pod read through the API (`pod` set), or a local log file (`path` set); `offset` is how far a
    file has been printed, `partial` an unfinished last line."""

    label: str
    pod: str | None = None
    path: Path | None = None
    offset: int = 0
    partial: bytes = field(default=b"", repr=False)

    @property
    def key(self) -> str:
        return f"pod:{self.pod}" if self.pod is not None else f"file:{self.path}"


def local_logs(store: ObjectStore) -> Path | None:
    """The log folder of the rollouts home whose own kubeconfig the store uses, else None."""
    config = getattr(store, "config", None)
    if config is None or not config.is_local or not config.source:
        return None
    source = Path(config.source)
    if source.name != "kubeconfig":
        return None
    return source.parent / "logs"


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


def select_sources(store: ObjectStore, namespace: str, name: str | None, selector: str | None,
                   canary: bool, stable: bool) -> list[LogSource]:
    """What a `logs` invocation reads, in pod-name order (then deleted pods' files on the local cluster)."""
    from rollouts.store.protocol import NotFound

    logs_dir = local_logs(store)
    if name == INGRESS and selector is None:
        if logs_dir is None:
            fail("logs ingress reads the local cluster's ingress proxy log; on other clusters read the "
                 "ingress controller's pods (rollouts logs -n NAMESPACE -l SELECTOR)")
        return [LogSource(INGRESS, path=logs_dir / "ingress.log")]
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
            store.get("Pod", namespace, name)
        except NotFound:
            path = logs_dir / f"{name}.log" if logs_dir is not None else None
            if path is not None and path.exists():  # a pod that is gone still has its log
                return [LogSource(name, path=path)]
            if store.list("Rollout", namespace, field_selector=f"metadata.name={name}"):
                kind = "Rollout"
            else:
                fail(f'pods "{name}" in namespace "{namespace}" not found (nor a rollout of that name)')
        else:
            return [LogSource(name, pod=name)]
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
    pods = sorted(p["metadata"]["name"] for p in store.list("Pod", namespace, label_selector=",".join(labels)))
    sources = [LogSource(pod, pod=pod) for pod in pods]
    if logs_dir is None:
        return sources
    return sources + _gone_pods(logs_dir, ",".join(labels), set(pods))


def _gone_pods(logs_dir: Path, selector: str, known: set[str]) -> list[LogSource]:
    """Log files of deleted pods of one ReplicaSet (pod names are `<rollout>-<hash>-<suffix>`)."""
    hashes = [part.split("=", 1)[1].strip() for part in selector.split(",")
              if part.split("=", 1)[0].strip() == HASH_LABEL and "=" in part and "!=" not in part]
    if len(hashes) != 1 or not hashes[0]:
        return []
    found = sorted(p for p in logs_dir.glob(f"*-{hashes[0]}-?????.log") if p.name[: -len(".log")] not in known)
    return [LogSource(p.name[: -len(".log")], path=p) for p in found]


def _lines(source: LogSource, data: bytes, prefix: bool) -> list[str]:
    data = source.partial + data
    *complete, source.partial = data.split(b"\n")
    head = f"[{source.label}] " if prefix else ""
    return [head + line.decode(errors="replace") for line in complete]


def _read_file(source: LogSource, prefix: bool) -> list[str]:
    assert source.path is not None
    try:
        with source.path.open("rb") as handle:
            handle.seek(source.offset)
            data = handle.read()
    except OSError:
        return []
    source.offset += len(data)
    return _lines(source, data, prefix)


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


def _read_pod(store: KubeStore, namespace: str, source: LogSource, container: str | None, tail: int,
              prefix: bool) -> list[str]:
    from rollouts.store.protocol import Invalid, NotFound

    assert source.pod is not None
    try:
        data = store.pod_log(namespace, source.pod, container, tail if tail >= 0 else None)
    except NotFound:
        return []  # deleted between the list and the read
    except Invalid as exc:
        if "has no log" in str(exc):
            return []  # not started yet: nothing written
        fail(str(exc))
    if data and not data.endswith(b"\n"):
        data += b"\n"  # a pod's unfinished last line is still shown, as kubectl does
    return _lines(source, data, prefix)


def _follow_pod(store: KubeStore, namespace: str, source: LogSource, container: str | None, tail: int,
                prefix: bool, out: queue.Queue[str], failed: Callable[[], None]) -> None:
    from rollouts.store.protocol import StoreError

    assert source.pod is not None
    try:
        for chunk in store.follow_pod_log(namespace, source.pod, container, tail if tail >= 0 else None):
            for line in _lines(source, chunk, prefix):
                out.put(line)
    except StoreError:
        failed()  # gone, or no log yet: a later refresh starts it again if the pod is (still) there


@app.command()
def logs(
    name: str | None = typer.Argument(None, help="Pod, rollout (its pods), pod/NAME, rollout/NAME or 'ingress'."),
    selector: str | None = typer.Option(None, "--selector", "-l", help="Label selector, e.g. app=x,tier=web."),
    container: str | None = typer.Option(None, "--container", "-c", help="Container of the pods to read."),
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
    """Print pods' output (or the local ingress proxy's access log with `logs ingress`)."""
    if canary and stable:
        fail("--canary and --stable exclude each other")
    ns = namespace_or_default(namespace)
    store = open_store(home)
    sources = select_sources(store, ns, name, selector, canary, stable)
    if not sources and not follow:
        typer.echo(f'No resources found in {ns} namespace.', err=True)
        return
    show_prefix = prefix if prefix is not None else len(sources) > 1 or selector is not None
    if not follow:
        for source in sources:
            if source.path is not None:
                source.offset = _tail_start(source.path, tail)
                lines = _read_file(source, show_prefix)
            else:
                lines = _read_pod(store, ns, source, container, tail, show_prefix)
            for line in lines:
                typer.echo(line)
        return
    _follow(store, ns, name, selector, canary, stable, container, tail, show_prefix, sources)


def _follow(store: KubeStore, ns: str, name: str | None, selector: str | None, canary: bool, stable: bool,
            container: str | None, tail: int, show_prefix: bool, sources: list[LogSource]) -> None:
    """-f: one reader thread per pod on its log stream; files polled; new pods picked up every second."""
    out: queue.Queue[str] = queue.Queue()
    known: set[str] = set()

    def start(source: LogSource, lines: int) -> None:
        known.add(source.key)
        if source.path is not None:
            source.offset = _tail_start(source.path, lines)
            return
        threading.Thread(target=_follow_pod, args=(store, ns, source, container, lines, show_prefix, out,
                                                   lambda: known.discard(source.key)),
                         daemon=True, name=f"logs-{source.pod}").start()

    for source in sources:
        start(source, tail)
    files = [s for s in sources if s.path is not None]
    refresh = time.monotonic() + 1.0
    try:
        while True:
            try:
                typer.echo(out.get(timeout=0.2))
                while True:
                    typer.echo(out.get_nowait())
            except queue.Empty:
                pass
            for source in files:
                for line in _read_file(source, show_prefix):
                    typer.echo(line)
            if name != INGRESS and time.monotonic() >= refresh:
                # Pods come and go during a release: pick up new ones, from their start.
                for source in select_sources(store, ns, name, selector, canary, stable):
                    if source.key not in known:
                        start(source, -1)
                        if source.path is not None:
                            files.append(source)
                refresh = time.monotonic() + 1.0
    except KeyboardInterrupt:
        return
