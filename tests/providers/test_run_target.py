"""What the traffic plugins infer from the Rollout that owns a run: its service and each version's pod hash."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.run_target import RunTarget, store_run_target


def _get(*objects: dict[str, Any]) -> Any:
    index = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}

    def get(kind: str, namespace: str, name: str) -> dict[str, Any]:
        if (kind, namespace, name) not in index:
            raise LookupError(name)
        return index[(kind, namespace, name)]

    return get


def _rollout(strategy: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "Rollout", "metadata": {"name": "app", "namespace": "ns"}, "spec": {"strategy": strategy},
            "status": status or {}}


def _ctx(owner: str | None = "app", labels: dict[str, str] | None = None) -> MeasureContext:
    return MeasureContext(namespace="ns", run_name="r", metric_name="m", measurement_index=1, owner=owner,
                          labels=labels or {})


NGINX = {"canary": {"trafficRouting": {"nginx": {"stableIngress": "web"}}}}
INGRESS = {"kind": "Ingress", "metadata": {"name": "web", "namespace": "ns",
                                           "annotations": {"rollouts.io/service": "web-svc"}}}
STATUS = {"currentPodHash": "c2", "stableRS": "s1", "blueGreen": {"activeSelector": "a1"}}

# (id, objects, ctx, expected target)
CASES = [
    ("stable-ingress-logical-service", [_rollout(NGINX, STATUS), INGRESS], _ctx(),
     RunTarget(rollout="app", service="web-svc",
               hashes={"canary": "c2", "preview": "c2", "stable": "s1", "active": "a1"})),
    ("ingress-not-created-yet-uses-its-name", [_rollout(NGINX, STATUS)], _ctx(),
     RunTarget(rollout="app", service="web",
               hashes={"canary": "c2", "preview": "c2", "stable": "s1", "active": "a1"})),
    ("stable-ingresses-list", [_rollout({"canary": {"trafficRouting": {"nginx": {"stableIngresses": ["web"]}}}}),
                               INGRESS], _ctx(),
     RunTarget(rollout="app", service="web-svc", hashes={"canary": "", "preview": "", "stable": "", "active": ""})),
    ("run-label-is-the-revision-under-test", [_rollout(NGINX, STATUS), INGRESS],
     _ctx(labels={"rollouts-pod-template-hash": "c1"}),
     RunTarget(rollout="app", service="web-svc",
               hashes={"canary": "c1", "preview": "c1", "stable": "s1", "active": "a1"})),
    ("blue-green-active-service", [_rollout({"blueGreen": {"activeService": "shop-active",
                                                          "previewService": "shop-preview"}},
                                            {"currentPodHash": "n", "stableRS": "o"})], _ctx(),
     RunTarget(rollout="app", service="shop", hashes={"canary": "n", "preview": "n", "stable": "o", "active": "o"})),
    ("basic-canary-has-no-service", [_rollout({"canary": {"steps": []}})], _ctx(),
     RunTarget(rollout="app", service=None, hashes={"canary": "", "preview": "", "stable": "", "active": ""})),
    ("standalone-run", [_rollout(NGINX, STATUS)], _ctx(owner=None), None),
    ("owner-gone", [], _ctx(), None),
]


@pytest.mark.parametrize(("objects", "ctx", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_run_target_infers_service_and_revisions_from_the_owning_rollout(
    objects: list[dict[str, Any]], ctx: MeasureContext, expected: RunTarget | None
) -> None:
    assert store_run_target(_get(*objects))(ctx) == expected


def test_run_target_empty_hash_means_unknown() -> None:
    assert RunTarget(rollout="a", service="s", hashes={"canary": ""}).pod_hash("canary") is None
