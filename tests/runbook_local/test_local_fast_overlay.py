"""Item: the kustomize overlay infra/overlays/local-fast renders with `kubectl kustomize` and differs from the
shipped infra/rollouts ONLY in Rollout replicas and the PromQL gates' interval, count and [5m] rate windows:
same objects, same providers, addresses, conditions, limits and args, and queries whose only change is the
window. The base (infra/rollouts/Kustomization) renders exactly the shipped objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, require_tool

INFRA = REPO / "infra" / "rollouts"
OVERLAY = REPO / "infra" / "overlays" / "local-fast"
WINDOW = "[20s]"
Key = tuple[str, str, str]


def _key(doc: dict[str, Any]) -> Key:
    meta = doc["metadata"]
    return doc["kind"], meta.get("namespace", ""), meta["name"]


def shipped() -> dict[Key, dict[str, Any]]:
    docs: dict[Key, dict[str, Any]] = {}
    for path in sorted(INFRA.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "ImageMap":  # local runtime configuration, not rendered
                docs[_key(doc)] = doc
    return docs


def render(folder: Path) -> dict[Key, dict[str, Any]]:
    kubectl = require_tool("kubectl", "install kubectl (it carries kustomize)")
    done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {_key(doc): doc for doc in yaml.safe_load_all(done.stdout) if doc}


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """JSON-pointer-like paths where two documents differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in differences(old.get(k), new.get(k), f"{path}/{k}")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in differences(a, b, f"{path}/{i}")]
    return [] if old == new else [path]


def _allowed(kind: str, path: str) -> bool:
    if kind == "Rollout":
        return path == "/spec/replicas"
    if kind == "AnalysisTemplate":
        parts = path.split("/")
        return (len(parts) >= 5 and parts[1:3] == ["spec", "metrics"]
                and "/".join(parts[4:]) in ("interval", "count", "provider/prometheus/query"))
    return False


@pytest.fixture(scope="module")
def overlay() -> dict[Key, dict[str, Any]]:
    return render(OVERLAY)


def test_local_fast_base_renders_the_shipped_objects_unchanged() -> None:
    assert render(INFRA) == shipped()


def test_local_fast_overlay_has_the_same_objects(overlay: dict[Key, dict[str, Any]]) -> None:
    assert set(overlay) == set(shipped())


def test_local_fast_overlay_changes_only_replicas_and_gate_timing(overlay: dict[Key, dict[str, Any]]) -> None:
    unexpected = {key: [p for p in differences(doc, overlay[key]) if not _allowed(key[0], p)]
                  for key, doc in shipped().items()}
    assert {k: v for k, v in unexpected.items() if v} == {}


def test_local_fast_overlay_queries_differ_only_in_the_rate_window(overlay: dict[Key, dict[str, Any]]) -> None:
    checked = 0
    for key, doc in shipped().items():
        if key[0] != "AnalysisTemplate":
            continue
        for old, new in zip(doc["spec"]["metrics"], overlay[key]["spec"]["metrics"], strict=True):
            if "prometheus" not in old["provider"]:
                assert new == old, f"{key[2]}/{old['name']}: a non-PromQL gate is left as shipped"
                continue
            query = old["provider"]["prometheus"]["query"]
            assert new["provider"]["prometheus"]["query"] == query.replace("[5m]", WINDOW), f"{key[2]}/{old['name']}"
            checked += 1
    assert checked == 9  # every PromQL metric of the shipped file


@pytest.mark.parametrize(("kind", "field", "shipped_value", "local"), [
    pytest.param("Rollout", "replicas", {2, 3, 4, 6}, {1}, id="replicas"),
    pytest.param("AnalysisTemplate", "interval", {"1m"}, {"5s"}, id="promql-interval"),
    pytest.param("AnalysisTemplate", "count", {5, 10}, {3, 4}, id="promql-count"),
])
def test_local_fast_overlay_shortens_every_gate_and_rollout(
        overlay: dict[Key, dict[str, Any]], kind: str, field: str, shipped_value: set[Any], local: set[Any]) -> None:
    def values(docs: dict[Key, dict[str, Any]]) -> set[Any]:
        if kind == "Rollout":
            return {d["spec"][field] for k, d in docs.items() if k[0] == kind}
        return {m[field] for k, d in docs.items() if k[0] == kind for m in d["spec"]["metrics"]
                if "prometheus" in m["provider"]}

    assert values(shipped()) == shipped_value
    assert values(overlay) == local
