"""Renders the install manifests the way users do (`kubectl kustomize`), once per test session, and
gives the objects as dicts."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, require_tool

KUSTOMIZE = REPO / "deploy" / "kubernetes"
NAMESPACE = "rollouts"
VARIANTS = {"cluster": KUSTOMIZE, "namespaced": KUSTOMIZE / "namespaced"}


def kubectl() -> str:
    return require_tool("kubectl", "apt-get install kubernetes-client (Debian); kubectl >= 1.14 has kustomize built in")


@functools.cache
def _render_text(path: Path) -> str:
    done = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {path}: {done.stderr}"
    return done.stdout


def render_text(variant: str) -> str:
    return _render_text(VARIANTS[variant])


@functools.cache
def _render(variant: str) -> tuple[dict[str, Any], ...]:
    # The CRDs make the output about 3 MB: parse it once, with libyaml when PyYAML has it.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(render_text(variant), Loader=loader) if doc)


def render(variant: str) -> list[dict[str, Any]]:
    """The rendered objects, shared between tests: a test that changes one works on a copy.deepcopy."""
    return list(_render(variant))


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=LOADER)


def load_yaml_all(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=LOADER))


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def ident(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"
