"""Refreshes the copies kustomize needs inside deploy/kubernetes (it refuses files outside a
kustomization's root, symlinks included): Argo's CRDs from ../shared/argo-crds, the PrometheusRule from
deploy/prometheus and the Grafana dashboards from deploy/grafana; the same into charts/rollouts (Helm
reads no file outside a chart either). tests/deploy fails while a copy differs from its source, and says
to run this: `python deploy/kubernetes/sync_copies.py`."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def shared_crds() -> Path | None:
    root = Path(os.environ["ROLLOUTS_SHARED"]) if os.environ.get("ROLLOUTS_SHARED") else REPO.parent / "shared"
    crds = root / "argo-crds"
    return crds if crds.is_dir() else None


def copies() -> list[tuple[Path, Path]]:
    """(source, copy) pairs, for the kustomize base and the Helm chart; the CRDs only when the shared
    folder is present."""
    chart = REPO / "charts/rollouts"
    # The chart's RBAC rules are the kustomize ClusterRole's (themselves checked against the permission table).
    pairs = [(HERE / "base/rbac/clusterrole.yaml", chart / "files/clusterrole.yaml")]
    for rule in (HERE / "base/observability/prometheusrule.yaml", chart / "files/prometheusrule.yaml"):
        pairs.append((REPO / "deploy/prometheus/prometheusrule.yaml", rule))
    for folder in (HERE / "base/observability/dashboards", chart / "files/dashboards"):
        pairs += [(source, folder / source.name) for source in sorted((REPO / "deploy/grafana").glob("*.json"))]
    crds = shared_crds()
    if crds is not None:
        for folder in (HERE / "base/crds", chart / "crds"):
            pairs += [(source, folder / source.name) for source in sorted(crds.glob("*-crd.yaml"))]
    return pairs


def main() -> int:
    for source, copy in copies():
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy)
            os.chmod(copy, 0o644)  # the shared folder is read-only; the copies must stay editable by this script
            print(f"updated {copy.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
