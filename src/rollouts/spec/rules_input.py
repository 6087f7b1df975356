"""Rules on the raw object that every stored kind shares, checked as Kubernetes' API server checks them:
label and annotation keys (qualified names), label values, ownerReferences (which also drive deletion
here, so an owner must be a kind that owns objects), and NUL characters in any text. They run on the plain
object, so they hold for `apply` and for a patched object alike."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from rollouts.spec.problems import FieldPath, Finding, error

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")

# Kinds that own objects in this project (a Rollout its ReplicaSets, AnalysisRuns and Experiments; an
# Experiment its AnalysisRuns), with their apiVersion. Deleting an owner deletes what it owns.
OWNER_KINDS = {"Rollout": "argoproj.io/v1alpha1", "Experiment": "argoproj.io/v1alpha1"}

# Maps of labels inside each kind, besides metadata.labels.
_LABEL_MAPS: dict[str, tuple[FieldPath, ...]] = {
    "Rollout": (("spec", "selector", "matchLabels"), ("spec", "template", "metadata", "labels")),
    "Service": (("spec", "selector"),),
}


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes qualified name (`[prefix/]name`), or None when it is one."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "the prefix before / is empty"
    if slash and (len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        return f'the prefix "{_short(prefix)}" is not a DNS subdomain (lowercase letters, digits, "-", ".")'
    if not name:
        return "the name is empty"
    if len(name) > 63:
        return f"the name is {len(name)} characters (at most 63)"
    if not _NAME.fullmatch(name):
        return ('the name must be letters, digits, "-", "_" or ".", starting and ending with a letter or digit '
                '(with an optional "prefix/" before it)')
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63:
        return f"is {len(value)} characters (a label value has at most 63)"
    if not _VALUE.fullmatch(value):
        return 'must be empty or letters, digits, "-", "_" or ".", starting and ending with a letter or digit'
    return None


def _at(data: Any, path: FieldPath) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _label_findings(labels: Any, path: FieldPath) -> Iterator[Finding]:
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        why = qualified_name_problem(key) if isinstance(key, str) else "keys must be strings"
        if why:
            yield error((*path, key), f'"{_short(str(key))}" is not a valid label key: {why}')
        elif isinstance(value, str):
            why = label_value_problem(value)
            if why:
                yield error((*path, key), f'label value "{_short(value)}" {why}')


def _annotation_findings(annotations: Any, path: FieldPath) -> Iterator[Finding]:
    if not isinstance(annotations, dict):
        return
    for key in annotations:
        why = qualified_name_problem(key) if isinstance(key, str) else "keys must be strings"
        if why:
            yield error((*path, key), f'"{_short(str(key))}" is not a valid annotation key: {why}')


def _owner_findings(refs: Any) -> Iterator[Finding]:
    if not isinstance(refs, list):
        return
    owners = " and ".join(OWNER_KINDS)
    for index, ref in enumerate(refs):
        where: FieldPath = ("metadata", "ownerReferences", index)
        if not isinstance(ref, dict):
            continue  # the structural pass reports the type
        for key in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref.get(key), str) or not ref.get(key):
                yield error((*where, key), "required (an owner reference names apiVersion, kind, name and uid)")
        kind = ref.get("kind")
        if isinstance(kind, str) and kind and kind not in OWNER_KINDS:
            yield error((*where, "kind"), f"a {_short(kind)} cannot own objects here (owners are {owners}; "
                        "deleting an owner deletes what it owns)")
        elif isinstance(kind, str) and kind in OWNER_KINDS and ref.get("apiVersion") not in (None, "",
                                                                                                 OWNER_KINDS[kind]):
            yield error((*where, "apiVersion"), f'"{_short(str(ref.get("apiVersion")))}" is not the apiVersion '
                        f"of {kind} (use {OWNER_KINDS[kind]})")


def _nul_findings(data: Any) -> Iterator[Finding]:
    """Every key or string holding a NUL character (no Kubernetes text field can hold one)."""
    try:
        # The C encoder finds out whether there is any NUL at all far faster than a walk in Python.
        if "\\u0000" not in json.dumps(data, default=str):
            return
    except (TypeError, ValueError, RecursionError):
        pass  # not plain JSON (odd keys, a cycle): walk it
    stack: list[tuple[Any, FieldPath]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str) and "\x00" in key:
                    yield error((*path, key), "the key contains a NUL character (\\u0000); remove it")
                stack.append((item, (*path, key)))
        elif isinstance(node, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            yield error(path, "contains a NUL character (\\u0000); text fields cannot hold one")


def check_input(data: dict[str, Any]) -> list[Finding]:
    """Findings on a stored kind's raw object: metadata keys and owners, label maps, NUL characters."""
    findings = list(_nul_findings(data))
    meta = data.get("metadata")
    if isinstance(meta, dict):
        findings += _label_findings(meta.get("labels"), ("metadata", "labels"))
        findings += _annotation_findings(meta.get("annotations"), ("metadata", "annotations"))
        findings += _owner_findings(meta.get("ownerReferences"))
    kind = data.get("kind")
    for path in _LABEL_MAPS.get(kind, ()) if isinstance(kind, str) else ():
        findings += _label_findings(_at(data, path), path)
    return findings


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."
