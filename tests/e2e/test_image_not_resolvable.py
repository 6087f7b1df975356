"""A container image the local runtime cannot resolve: the pod does not start, and a Warning event on the
Pod and on its Rollout says how to map the image to a command, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ControllerProcess, wait_until

pytestmark = pytest.mark.integration

ROLLOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ghost}
spec:
  replicas: 1
  selector: {matchLabels: {app: ghost}}
  template:
    metadata: {labels: {app: ghost}}
    spec:
      containers:
      - name: ghost
        image: registry.example/ghost:1.0
  strategy:
    canary:
      steps: [{setWeight: 50}]
"""


def warnings(ctl: ControllerProcess) -> list[dict[str, Any]]:
    with ctl.store() as store:
        return [e for e in store.list("Event", "default") if e["reason"] == "ImageNotResolvable"]


def test_unresolvable_image_fails_the_pod_with_a_warning(controller: ControllerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "ghost.yaml"
    manifest.write_text(ROLLOUT)
    controller.cli("apply", "-f", str(manifest))
    found = wait_until(lambda: {e["involvedObject"]["kind"] for e in warnings(controller)} == {"Pod", "Rollout"}
                       and warnings(controller), 30, "Warning events on the Pod and the Rollout")
    for event in found:
        assert event["type"] == "Warning"
        assert "registry.example/ghost:1.0" in event["message"]
        assert "images.yaml" in event["message"], event["message"]  # says where to map it
    with controller.store() as store:
        pods = store.list("Pod", "default")
    assert len(pods) == 1
    waiting = pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImageNotResolvable"
    assert pods[0]["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    # Later passes keep the pod in place without repeating the warning.
    wait_until(lambda: controller.rollout("ghost").get("status"), 10, "the rollout's status")
    assert len(warnings(controller)) == 2
    assert all(e.get("count", 1) == 1 for e in warnings(controller)), warnings(controller)
    result = controller.cli("status", "ghost", "--no-watch")
    assert "Healthy" not in result.stdout
