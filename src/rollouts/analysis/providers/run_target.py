"""What the traffic plugins (`rollouts/traffic`, `rollouts/sequential`) infer from the Rollout that owns an
analysis run: the service whose traffic to read, and the pod-template hash of each version, so a gate counts
only the requests the revision under test served.

- service: the logical service of the rollout's stable Ingress (`canary.trafficRouting.nginx.stableIngress`,
  or the first of `stableIngresses`): its `rollouts.io/service` annotation, else the Ingress's name, as the
  local ingress proxy labels its counts. A blue/green rollout: its active Service's name without the
  `-active` suffix (the name the local runtime counts direct `-active` / `-preview` traffic under).
- hashes: canary and preview are the run's own `rollouts-pod-template-hash` label (the revision the run was
  started for), else the rollout's `status.currentPodHash`; stable is `status.stableRS`; active is
  `status.blueGreen.activeSelector`, else `status.stableRS`.

Reads through a `get(kind, namespace, name)` callable (the object store's `get`); any lookup failure means
"nothing inferred", never an exception in a measurement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollouts.analysis.providers.base import MeasureContext

log = logging.getLogger(__name__)

POD_HASH_LABEL = "rollouts-pod-template-hash"
SERVICE_ANNOTATION = "rollouts.io/service"  # as runtime.local.routing.SERVICE_ANNOTATION

GetObject = Callable[[str, str, str], Mapping[str, Any]]


@dataclass(frozen=True)
class RunTarget:
    """The owning rollout's service (None when it has none to infer) and pod hash per version."""

    rollout: str
    service: str | None = None
    hashes: Mapping[str, str] = field(default_factory=dict)

    def pod_hash(self, version: str) -> str | None:
        return self.hashes.get(version) or None


RunTargetLookup = Callable[[MeasureContext], "RunTarget | None"]


def store_run_target(get: GetObject) -> RunTargetLookup:
    """A lookup of the run's owning rollout through `get` (e.g. `store.get`)."""

    def lookup(ctx: MeasureContext) -> RunTarget | None:
        if not ctx.owner:
            return None
        try:
            rollout = get("Rollout", ctx.namespace, ctx.owner)
        except Exception as exc:  # noqa: BLE001 - a store problem must not fail the measurement here
            log.debug("run %s/%s: owner Rollout %s not readable: %s", ctx.namespace, ctx.run_name, ctx.owner, exc)
            return None
        return target_of(rollout, ctx, get)

    return lookup


def target_of(rollout: Mapping[str, Any], ctx: MeasureContext, get: GetObject) -> RunTarget:
    spec = _map(rollout.get("spec"))
    status = _map(rollout.get("status"))
    strategy = _map(spec.get("strategy"))
    name = str(_map(rollout.get("metadata")).get("name") or ctx.owner or "")
    revision = ctx.labels.get(POD_HASH_LABEL) or str(status.get("currentPodHash") or "")
    stable = str(status.get("stableRS") or "")
    active = str(_map(status.get("blueGreen")).get("activeSelector") or "") or stable
    hashes = {"canary": revision, "preview": revision, "stable": stable, "active": active}
    return RunTarget(rollout=name, service=_service(strategy, ctx.namespace, get), hashes=hashes)


def _service(strategy: Mapping[str, Any], namespace: str, get: GetObject) -> str | None:
    canary = _map(strategy.get("canary"))
    nginx = _map(_map(canary.get("trafficRouting")).get("nginx"))
    ingress = nginx.get("stableIngress") or next(iter(nginx.get("stableIngresses") or []), None)
    if ingress:
        try:
            obj = get("Ingress", namespace, str(ingress))
        except Exception:  # noqa: BLE001 - not created yet: its name is what the proxy will label
            return str(ingress)
        annotations = _map(_map(obj.get("metadata")).get("annotations"))
        return str(annotations.get(SERVICE_ANNOTATION) or ingress)
    blue_green = _map(strategy.get("blueGreen"))
    active = str(blue_green.get("activeService") or "")
    if active:
        return active.removesuffix("-active")
    return None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
