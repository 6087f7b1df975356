"""`rollouts scale rollout X --replicas 1000000000` does not wedge the operator: the local cluster it starts
with `--max-pods` runs at most that many pods, the rest stay Pending with a Warning event, and /healthz
keeps answering, also after an operator restart on the same home (the ReplicaSet still asks for a
billion; the cluster's pods run on through the restart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ControllerProcess, wait_until
from tests.e2e.processes import living

pytestmark = pytest.mark.integration

MAX_PODS = 4
MANIFEST = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: shop, image: "rollouts-demo:blue"}]
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
"""


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path / "home", extra_args=("--max-pods", str(MAX_PODS)))
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop_leaving_no_pods()


def healthy(ctl: ControllerProcess) -> bool:
    try:
        return httpx.get(f"http://{ctl.metrics_address}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def pending_warning(ctl: ControllerProcess) -> str | None:
    with ctl.store() as store:
        for event in store.list("Event", "default"):
            if event["reason"] == "FailedScheduling" and event["involvedObject"]["kind"] == "Rollout":
                return str(event["message"])
    return None


def test_max_pods_billion_replicas_controller_stays_responsive_across_restart(
        limited: ControllerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    limited.cli("apply", "-f", str(manifest))
    limited.cli("status", "shop", "--timeout", "60s")
    limited.cli("scale", "rollout", "shop", "--replicas", "1000000000")

    message = wait_until(lambda: pending_warning(limited), 30, "the FailedScheduling warning")
    assert f"at most {MAX_PODS} pods" in message and "of 1000000000 pods" in message
    for _ in range(10):
        assert wait_until(lambda: healthy(limited), 10, "/healthz to answer 200")
    assert len(limited.pod_pids()) <= MAX_PODS * 3  # a pod is a process (and its children)
    with limited.store() as store:
        assert len(store.list("Pod")) <= MAX_PODS

    pods = limited.pod_pids()
    limited.kill()
    limited.start()
    assert living(pods) == pods  # the cluster's pods outlive the operator
    for _ in range(10):
        assert wait_until(lambda: healthy(limited), 20, "/healthz to answer 200 after the restart")
    with limited.store() as store:
        assert len(store.list("Pod")) <= MAX_PODS
    assert "Traceback" not in limited.log.read_text()
