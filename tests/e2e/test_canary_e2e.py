"""A controller process, the CLI and real traffic: a healthy canary is promoted through its gates, a bad
one is aborted by its gate and all traffic returns to the stable version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import ControllerProcess, Load, sample_colors, wait_until
from tests.e2e.manifests import CANARY

pytestmark = pytest.mark.integration


def deploy(ctl: ControllerProcess, tmp_path: Path) -> int:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(CANARY)
    ctl.cli("apply", "-f", str(manifest))
    ctl.cli("status", "shop", "--timeout", "60s")
    return ctl.ingress_port("shop")


def test_good_canary_is_promoted_through_its_gates(controller: ControllerProcess, tmp_path: Path) -> None:
    port = deploy(controller, tmp_path)
    assert sample_colors(port, 20) == {"blue": 20}
    with Load(port):
        controller.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        result = controller.cli("status", "shop", "--timeout", "120s", check=False, timeout=150)
        assert result.returncode == 0, result.stdout + result.stderr + controller.tail()
    assert sample_colors(port, 50) == {"yellow": 50}
    status = controller.rollout("shop")["status"]
    assert status["stableRS"] == status["currentPodHash"]
    with controller.store() as store:
        reasons = [e["reason"] for e in store.list("Event", "default", field_selector="involvedObject.name=shop")]
        runs = store.list("AnalysisRun", "default")
    assert "RolloutCompleted" in reasons
    assert len(runs) >= 2 and all(r["status"]["phase"] == "Successful" for r in runs)
    # The release history the controller keeps: revision 2 promoted, with the completion message as cause.
    release = next(e for e in _history(controller) if e["revision"] == 2)
    assert release["outcome"] == "promoted" and "Completed all 4 canary steps" in str(release["cause"])


def test_bad_canary_is_aborted_by_its_gate(controller: ControllerProcess, tmp_path: Path) -> None:
    port = deploy(controller, tmp_path)
    with Load(port) as load:
        controller.cli("set", "image", "shop", "shop=rollouts-demo:bad-red")
        result = controller.cli("status", "shop", "--timeout", "120s", check=False, timeout=150)
        assert result.returncode == 1, result.stdout + result.stderr + controller.tail()
        assert "RolloutAborted" in result.stderr
    assert any(key.startswith("red:") for key in load.counts), "the canary never received traffic"
    status = controller.rollout("shop")["status"]
    assert status["abort"] is True
    assert status["canary"]["weights"]["canary"]["weight"] == 0
    # Measured, not read from status: the proxy converges to the stable version, then every request of a
    # long sample is answered by it.
    wait_until(lambda: sample_colors(port, 20) == {"blue": 20}, 10, "traffic back on the stable version")
    assert sample_colors(port, 200) == {"blue": 200}
    with controller.store() as store:
        runs = store.list("AnalysisRun", "default")
    assert any(r["status"]["phase"] == "Failed" for r in runs)
    release = next(e for e in _history(controller) if e["revision"] == 2)
    assert release["outcome"] == "aborted" and "success-rate" in str(release["cause"])


def _history(ctl: ControllerProcess) -> list[dict[str, object]]:
    return list(json.loads(ctl.cli("history", "shop", "-o", "json").stdout))
