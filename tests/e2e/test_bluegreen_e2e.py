"""Blue/green through the CLI against a controller process: the preview is analysed before the switch, the
switch waits for `rollouts promote`, and the active Service is analysed after it. Which color the active
Service serves is measured with requests to its own port."""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.bluegreen_manifests import blue_green, free_port
from tests.e2e.harness import ControllerProcess, wait_until

pytestmark = pytest.mark.integration


def colors(port: int, requests: int = 20) -> set[str]:
    seen = set()
    with httpx.Client(timeout=5) as client:
        for _ in range(requests):
            try:
                response = client.get(f"http://127.0.0.1:{port}/color")
                seen.add(response.json() if response.status_code == 200 else str(response.status_code))
            except httpx.HTTPError as exc:
                seen.add(type(exc).__name__)
    return seen


class ColorSampler:
    """Steady requests to a Service's own port in a background thread, counted per answered color."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.counts.update(colors(self.port, 1))

    def __enter__(self) -> ColorSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def deploy(ctl: ControllerProcess, tmp_path: Path, post_color: str) -> tuple[int, int]:
    active, preview = free_port(), free_port()
    manifest = tmp_path / "bg.yaml"
    manifest.write_text(blue_green(active, preview, post_color))
    ctl.cli("apply", "-f", str(manifest))
    ctl.cli("status", "bg", "--timeout", "60s")
    wait_until(lambda: colors(active, 5) == {"blue"}, 20, "the active Service to answer blue")
    return active, preview


def status(ctl: ControllerProcess) -> dict[str, Any]:
    return dict(ctl.rollout("bg").get("status") or {})


def runs_by_type(ctl: ControllerProcess) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with ctl.store() as store:
        for run in store.list("AnalysisRun", "default"):
            kind = run["metadata"]["labels"].get("rollout-type", "?")
            found.setdefault(kind, []).append(run["status"]["phase"])
    return found


def release_and_promote(ctl: ControllerProcess, active: int, preview: int) -> None:
    ctl.cli("set", "image", "bg", "bg=rollouts-demo:yellow")
    paused = wait_until(lambda: (s := status(ctl)).get("phase") == "Paused" and s, 60,
                        "the rollout to pause before the switch")
    assert [c["reason"] for c in paused.get("pauseConditions") or []] == ["BlueGreenPause"]
    # Paused only after the preview passed its analysis; the active Service still serves the old color.
    assert runs_by_type(ctl).get("PrePromotion") == ["Successful"], runs_by_type(ctl)
    assert colors(preview) == {"yellow"}
    assert colors(active) == {"blue"}
    with ColorSampler(active) as sampler:
        ctl.cli("promote", "bg")
        wait_until(lambda: sampler.counts["yellow"] >= 5 or status(ctl).get("phase") == "Degraded", 30,
                   "the active Service to answer yellow")
        # Requests are answered throughout the switch: no error and no other color.
        assert set(sampler.counts) <= {"blue", "yellow"}, sampler.counts
    # The switch happened for real: requests to the active port reached the new version.
    assert sampler.counts["yellow"] > 0, sampler.counts


def test_blue_green_with_pre_and_post_promotion_analysis(controller: ControllerProcess, tmp_path: Path) -> None:
    active, preview = deploy(controller, tmp_path, post_color="yellow")
    release_and_promote(controller, active, preview)
    result = controller.cli("status", "bg", "--timeout", "60s", check=False, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr + controller.tail()
    final = status(controller)
    assert final["stableRS"] == final["currentPodHash"]
    assert final["blueGreen"]["activeSelector"] == final["currentPodHash"]
    assert runs_by_type(controller) == {"PrePromotion": ["Successful"], "PostPromotion": ["Successful"]}
    assert colors(active, 50) == {"yellow"}
    with controller.store() as store:
        reasons = [e["reason"] for e in store.list("Event", "default", field_selector="involvedObject.name=bg")]
    assert reasons.count("RolloutCompleted") == 2, reasons  # the first release, then yellow


def test_failed_post_promotion_analysis_switches_back(controller: ControllerProcess, tmp_path: Path) -> None:
    # Post-promotion analysis expects a color the new version does not serve: it fails after the switch.
    active, preview = deploy(controller, tmp_path, post_color="purple")
    stable = status(controller)["stableRS"]
    release_and_promote(controller, active, preview)
    result = controller.cli("status", "bg", "--timeout", "60s", check=False, timeout=90)
    assert result.returncode == 1, result.stdout + result.stderr + controller.tail()
    final = status(controller)
    assert final["phase"] == "Degraded" and final["abort"] is True
    assert final["stableRS"] == stable
    assert final["blueGreen"]["activeSelector"] == stable
    assert runs_by_type(controller) == {"PrePromotion": ["Successful"], "PostPromotion": ["Failed"]}
    # Measured: the active Service's own port answers the old color again, every time.
    wait_until(lambda: colors(active, 5) == {"blue"}, 20, "the active Service to answer blue again")
    assert colors(active, 100) == {"blue"}
