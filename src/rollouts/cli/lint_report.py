"""The work behind `rollouts lint`, kept out of the verb module so the CLI starts without loading models:
the loader's and validator's problems, and warnings for fixed-threshold gates within noise of the live
baseline when a Prometheus answers (rollouts.analysis.gate_noise)."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from rollouts.spec.problems import Problem

if TYPE_CHECKING:
    from rollouts.kube.dns import ClusterResolver
    from rollouts.spec.loader import LoadedObject


@dataclass(frozen=True)
class GateCheck:
    """How lint estimates fixed-threshold gates against the live baseline (rollouts.analysis.gate_noise):
    only when a Prometheus answers at the template's address, or at `prometheus_address` instead."""

    prometheus_address: str | None = None
    lookback: str = "7d"
    enabled: bool = True


def noisy_gate_warnings(objects: Sequence[LoadedObject], check: GateCheck) -> dict[int, list[Problem]]:
    """id(object) -> a warning per fixed-threshold metric within noise of the live baseline."""
    from rollouts.analysis.gate_noise import TEMPLATE_KINDS, noisy_gates

    templates = {(o.kind, o.name): o for o in objects if o.kind in TEMPLATE_KINDS}
    if not check.enabled or not templates:
        return {}
    found: dict[int, list[Problem]] = {}
    resolver, close = local_cluster_resolver([o.data for o in templates.values()], check.prometheus_address)
    try:
        gates = noisy_gates([o.data for o in objects], prometheus_address=check.prometheus_address,
                            lookback=check.lookback, resolver=resolver)
    finally:
        close()
    for gate in gates:
        obj = templates.get((gate.kind, gate.template))
        if obj is None:
            continue
        line = obj.line_of(("spec", "metrics", gate.metric_index))
        found.setdefault(id(obj), []).append(
            Problem(obj.source, line, gate.kind, gate.template, gate.path, gate.message, "warning"))
    return found


def local_cluster_resolver(templates: list[dict[str, Any]], prometheus_address: str | None
                           ) -> tuple[ClusterResolver | None, Callable[[], None]]:
    """A resolver of cluster Service names (http://prometheus.prometheus.svc:9090) over the home's local
    cluster when the templates name one and that cluster is the one selected and already running (it is
    never started, and nothing is said when it is not), with what closes it."""
    import os
    from pathlib import Path

    from rollouts.cli.analysis import _cluster_addresses
    from rollouts.cli.connection import recorded_running, selected
    from rollouts.kube.config import LOCAL_CONTEXT, load_config, local_kubeconfig_path

    def nothing() -> None:
        return None

    if not _cluster_addresses(templates, prometheus_address):
        return None, nothing
    if selected.kubeconfig or os.environ.get("KUBECONFIG") or selected.context not in (None, LOCAL_CONTEXT):
        return None, nothing
    folder = Path(os.environ.get("ROLLOUTS_HOME") or "~/.rollouts").expanduser()
    if not (recorded_running(folder) and local_kubeconfig_path(folder).is_file()):
        return None, nothing
    from rollouts.kube.client import KubeStore
    from rollouts.kube.dns import ClusterResolver

    store = KubeStore(load_config(local_kubeconfig_path(folder)), timeout=5)
    return ClusterResolver(store), store.close


def lint_problems(paths: Sequence[str], gates: GateCheck | None = None) -> tuple[list[Problem], list[str]]:
    """Problems and, in input order, the text lines to print (one per problem, `ok` per valid object)."""
    from rollouts.spec.loader import load_paths
    from rollouts.spec.validation import validate_objects

    result = load_paths(paths)
    checked = {id(c.obj): c for c in validate_objects(result.objects)}
    noisy = noisy_gate_warnings([o for o in result.objects if checked[id(o)].ok], gates or GateCheck())
    problems: list[Problem] = []
    lines: list[str] = []
    for item in result.order:
        if isinstance(item, Problem):
            problems.append(item)
            lines.append(item.format())
            continue
        entry = checked[id(item)]
        if entry.ok:
            kind = item.kind or "<no kind>"
            lines.append(f"{item.source}:{item.line}: {kind}/{item.name or '<unnamed>'}: ok")
        for problem in [*entry.problems, *noisy.get(id(item), [])]:
            problems.append(problem)
            lines.append(problem.format())
    return problems, lines


def run_lint(paths: Sequence[str], output: str, out: TextIO | None = None, gates: GateCheck | None = None) -> int:
    """Print the report; the exit code (0 when no errors, 1 otherwise). Never raises."""
    out = out if out is not None else sys.stdout
    try:
        problems, lines = lint_problems(paths, gates)
    except Exception as exc:  # whatever the input, report it as a problem line rather than a traceback
        detail = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {detail.filename.rsplit('/', 1)[-1]}:{detail.lineno}" if detail else ""
        problem = Problem(
            ",".join(paths), 0, "", "", "", f"internal error{where}: {type(exc).__name__}: {exc}", "error"
        )
        problems, lines = [problem], [problem.format()]
    if output == "json":
        out.write(json.dumps([p.to_dict() for p in problems], indent=2) + "\n")
    else:
        for text in lines:
            out.write(text + "\n")
    return 1 if any(p.is_error for p in problems) else 0
