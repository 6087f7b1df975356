"""What `apply` and `create` check beyond lint: every analysis `templateName` names a template that is in
the input or already in the store. Lint only warns (it cannot see the cluster); once the store is known, a
missing template is an error, since the rollout could never pass the step that runs it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollouts.store.protocol import ObjectStore

Obj = dict[str, Any]
Path = tuple[str | int, ...]


def _refs_of(analysis: Any, path: Path) -> Iterator[tuple[Path, Obj]]:
    if not isinstance(analysis, dict):
        return
    for index, ref in enumerate(analysis.get("templates") or []):
        if isinstance(ref, dict) and ref.get("templateName"):
            yield (*path, "templates", index, "templateName"), ref


def template_refs(obj: Obj) -> Iterator[tuple[Path, Obj]]:
    """(field path, reference) of each template an object names: a Rollout's step, background and
    blue/green analyses, and an AnalysisTemplate's nested templates."""
    spec = obj.get("spec") or {}
    if obj.get("kind") in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
        yield from _refs_of(spec, ("spec",))
        return
    if obj.get("kind") != "Rollout":
        return
    strategy = spec.get("strategy") or {}
    canary = strategy.get("canary") or {}
    yield from _refs_of(canary.get("analysis"), ("spec", "strategy", "canary", "analysis"))
    for index, step in enumerate(canary.get("steps") or []):
        if isinstance(step, dict):
            yield from _refs_of(step.get("analysis"), ("spec", "strategy", "canary", "steps", index, "analysis"))
    blue_green = strategy.get("blueGreen") or {}
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        yield from _refs_of(blue_green.get(key), ("spec", "strategy", "blueGreen", key))


def _format(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def missing_templates(objects: list[Obj], store: ObjectStore) -> list[str]:
    """One message per reference to a template found neither in `objects` nor in the store."""
    from rollouts.store.protocol import NotFound

    given = {(str(o.get("kind")), str((o.get("metadata") or {}).get("namespace") or ""),
              str((o.get("metadata") or {}).get("name"))) for o in objects}
    problems: list[str] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        for path, ref in template_refs(obj):
            cluster = bool(ref.get("clusterScope"))
            kind = "ClusterAnalysisTemplate" if cluster else "AnalysisTemplate"
            where = "" if cluster else namespace
            name = str(ref["templateName"])
            if (kind, where, name) in given:
                continue
            try:
                store.get(kind, where, name)
                continue
            except NotFound:
                pass
            known = sorted(str(t["metadata"]["name"]) for t in store.list(kind, where or None)) + sorted(
                n for k, ns, n in given if k == kind and ns == where)
            scope = "the cluster" if cluster else f'namespace "{namespace}"'
            valid = f"known: {', '.join(known)}" if known else f"there is no {kind} in {scope} yet"
            problems.append(f'{obj.get("kind")}/{meta.get("name")}: {_format(path)}: {kind} "{name}" is neither '
                            f"in the input nor in {scope} ({valid}); the rollout could never pass this analysis")
    return problems
