"""The operator SIGKILLed in the middle of a rollout and restarted on the same home ends where an
uninterrupted run ends: no promotion repeated, no step skipped, no abort forgotten. The pods, Service
listeners and ingress proxy are the local cluster's, so a killed operator is no outage: not one request
fails across a kill and a restart, and no pod is replaced. Also: one operator per home, and SIGTERM stops
it cleanly, leaving the services serving."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.bluegreen_manifests import free_port
from tests.e2e.harness import ControllerProcess, Load, sample_colors, wait_until
from tests.e2e.processes import living
from tests.e2e.restart_manifests import STEPS, canary

pytestmark = pytest.mark.integration


class StepMonitor:
    """Polls the store in a background thread (across controller restarts) and keeps every step index the
    rollout shows for the release's revision."""

    def __init__(self, ctl: ControllerProcess, old_hash: str) -> None:
        self.ctl = ctl
        self.old_hash = old_hash
        self.indexes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.ctl.store() as store:
            while not self._stop.wait(0.05):
                status = store.get("Rollout", "default", "shop").get("status") or {}
                index = status.get("currentStepIndex")
                new = status.get("currentPodHash") != self.old_hash and isinstance(index, int)
                if new and (not self.indexes or self.indexes[-1] != index):
                    self.indexes.append(index)

    def __enter__(self) -> StepMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def answers(port: int, requests: int) -> dict[str, int]:
    """Colors answered through the ingress; "unreachable" if the proxy does not answer at all."""
    try:
        return dict(sample_colors(port, requests))
    except httpx.HTTPError:
        return {"unreachable": requests}


def deploy(ctl: ControllerProcess, tmp_path: Path) -> tuple[int, str]:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(canary(free_port()))
    ctl.cli("apply", "-f", str(manifest))
    ctl.cli("status", "shop", "--timeout", "60s")
    return ctl.ingress_port("shop"), str(ctl.rollout("shop")["status"]["stableRS"])


def restart(ctl: ControllerProcess) -> None:
    """SIGKILL the operator, then a new one on the same home; the local cluster and its pods run on."""
    assert ctl.process is not None
    ctl.kill()
    ctl.start()


def status(ctl: ControllerProcess) -> dict[str, Any]:
    return dict(ctl.rollout("shop").get("status") or {})


def wait_paused(ctl: ControllerProcess) -> None:
    wait_until(lambda: status(ctl).get("phase") == "Paused" and status(ctl).get("currentStepIndex") == 1, 60,
               "the rollout to pause at step 2")


def wait_measuring(ctl: ControllerProcess) -> str:
    """The name of the step's AnalysisRun once it is Running with a first measurement taken."""
    def running() -> str | None:
        with ctl.store() as store:
            for run in store.list("AnalysisRun", "default"):
                state = run.get("status") or {}
                taken = sum(len(m.get("measurements") or []) for m in state.get("metricResults") or [])
                if state.get("phase") == "Running" and taken >= 1:
                    return str(run["metadata"]["name"])
        return None

    return str(wait_until(running, 30, "the analysis run to be measuring", interval=0.05))


def outcome(ctl: ControllerProcess, port: int, old_hash: str) -> dict[str, Any]:
    """What a finished release left, in terms that do not depend on timing."""
    state = status(ctl)
    with ctl.store() as store:
        events = store.list("Event", "default", field_selector="involvedObject.name=shop")
        runs = store.list("AnalysisRun", "default")
    new_hash = state["currentPodHash"]
    image = ctl.rollout("shop")["spec"]["template"]["spec"]["containers"][0]["image"]
    return {
        "phase": state["phase"],
        "abort": bool(state.get("abort")),
        "stable": "new" if state["stableRS"] == new_hash else "old" if state["stableRS"] == old_hash else "?",
        "weight": state["canary"]["weights"]["canary"]["weight"],
        "image": image,
        "steps": sorted((e["message"], e.get("count", 1)) for e in events if e["reason"] == "RolloutStepCompleted"),
        "completed": sum(e.get("count", 1) for e in events
                         if e["reason"] == "RolloutCompleted" and new_hash in e["message"]),
        "aborted": sum(e.get("count", 1) for e in events if e["reason"] == "RolloutAborted"),
        "runs": sorted((r["metadata"]["labels"].get("rollout-type", "?"), r["status"]["phase"]) for r in runs),
        "answers": answers(port, 40),
    }


def step_messages(*numbers: int) -> list[tuple[str, int]]:
    kinds = {1: "setWeight: 30", 2: "pause", 3: "analysis", 4: "setWeight: 60", 5: "pause: 2s"}
    return [(f"Rollout step {n}/{STEPS} completed ({kinds[n]})", 1) for n in numbers]


def good_release(ctl: ControllerProcess, tmp_path: Path, kill: bool) -> tuple[dict[str, Any], list[int]]:
    port, old_hash = deploy(ctl, tmp_path)
    with StepMonitor(ctl, old_hash) as monitor:
        ctl.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        wait_paused(ctl)
        if kill:
            restart(ctl)
            wait_paused(ctl)  # still waiting for the promotion after the restart
        ctl.cli("promote", "shop")
        wait_measuring(ctl)
        if kill:
            restart(ctl)
        result = ctl.cli("status", "shop", "--timeout", "60s", check=False, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr + ctl.tail()
    return outcome(ctl, port, old_hash), monitor.indexes


GOOD = {
    "phase": "Healthy", "abort": False, "stable": "new", "weight": 0, "image": "rollouts-demo:yellow",
    "completed": 1, "aborted": 0, "runs": [("Step", "Successful")], "answers": {"yellow": 40},
}


@pytest.mark.parametrize("kill", [False, True], ids=["uninterrupted", "killed-at-pause-and-in-analysis"])
def test_good_release_ends_promoted(controller: ControllerProcess, tmp_path: Path, kill: bool) -> None:
    final, indexes = good_release(controller, tmp_path, kill)
    assert {k: v for k, v in final.items() if k != "steps"} == GOOD
    # Each step completed exactly once: none repeated (count 1), none skipped; the indefinite pause
    # (step 2) included, its event written when `rollouts promote` releases it (as Argo does).
    assert final["steps"] == step_messages(1, 2, 3, 4, 5)
    assert indexes == sorted(indexes) and indexes[-1] == STEPS, indexes


def test_bad_release_killed_during_its_analysis_is_still_aborted(controller: ControllerProcess,
                                                                 tmp_path: Path) -> None:
    port, old_hash = deploy(controller, tmp_path)
    with StepMonitor(controller, old_hash) as monitor:
        controller.cli("set", "image", "shop", "shop=rollouts-demo:red")
        wait_paused(controller)
        controller.cli("promote", "shop")
        run = wait_measuring(controller)
        restart(controller)
        result = controller.cli("status", "shop", "--timeout", "60s", check=False, timeout=90)
        assert result.returncode == 1, result.stdout + result.stderr + controller.tail()
    wait_until(lambda: answers(port, 10) == {"blue": 10}, 15, "traffic back on the stable version")
    final = outcome(controller, port, old_hash)
    assert final == {
        "phase": "Degraded", "abort": True, "stable": "old", "weight": 0, "image": "rollouts-demo:red",
        "steps": step_messages(1, 2), "completed": 0, "aborted": 1, "runs": [("Step", "Failed")],
        "answers": {"blue": 40},
    }
    with controller.store() as store:  # the run measured before the kill was continued, not started again
        measured = store.get("AnalysisRun", "default", run)["status"]["metricResults"][0]
    assert measured["failed"] == 3 and measured["count"] == 3, measured
    # Forward only up to the analysis step, then the abort resets the index to 0 (as Argo does).
    *progress, after_abort = monitor.indexes
    assert progress == sorted(progress) and progress[-1] == 2 and after_abort == 0, monitor.indexes


def test_abort_requested_just_before_a_kill_is_not_forgotten(controller: ControllerProcess,
                                                             tmp_path: Path) -> None:
    port, old_hash = deploy(controller, tmp_path)
    controller.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
    wait_paused(controller)
    assert answers(port, 60).keys() == {"blue", "yellow"}  # the canary serves its 30 %
    controller.cli("abort", "shop")
    restart(controller)  # at once: the controller may not have acted on the abort yet
    wait_until(lambda: status(controller).get("phase") == "Degraded", 30, "the rollout to be Degraded")
    wait_until(lambda: answers(port, 10) == {"blue": 10}, 15, "traffic back on the stable version")
    # Another restart later: still aborted, still on the stable version, no step taken meanwhile.
    restart(controller)
    wait_until(lambda: controller.ingress_port("shop") and answers(port, 5) == {"blue": 5}, 30,
               "the proxy to serve again")
    final = outcome(controller, port, old_hash)
    assert final == {
        "phase": "Degraded", "abort": True, "stable": "old", "weight": 0, "image": "rollouts-demo:yellow",
        "steps": step_messages(1), "completed": 0, "aborted": 1, "runs": [], "answers": {"blue": 40},
    }
    assert status(controller)["currentStepIndex"] == 0


def test_operator_kill_and_restart_fails_no_request(controller: ControllerProcess, tmp_path: Path) -> None:
    port, _ = deploy(controller, tmp_path)
    pods = controller.pod_pids()
    assert pods
    with Load(port, rate=40.0) as load:
        wait_until(lambda: sum(load.counts.values()) >= 20, 10, "requests before the kill")
        restart(controller)
        wait_until(lambda: controller.log.read_text().count("controller started") == 2, 20, "the new operator")
        served = sum(load.counts.values())
        wait_until(lambda: sum(load.counts.values()) >= served + 40, 15, "requests after the restart")
    counts = dict(load.counts)
    print(f"\nrequests through the ingress across an operator SIGKILL and restart: {counts}")
    assert set(counts) == {"blue:200"}, counts  # before: 41 x 503 while the proxy restarted with the controller
    assert controller.pod_pids() == pods  # no pod process replaced
    assert status(controller)["phase"] == "Healthy"


def test_one_controller_per_home_and_sigterm_leaves_pods_serving(controller: ControllerProcess,
                                                                 tmp_path: Path) -> None:
    port, _ = deploy(controller, tmp_path)
    assert controller.process is not None
    holder = controller.process.pid
    second = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--metrics-address", ""],
                            env=controller.env, capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert str(holder) in second.stderr, second.stderr
    assert controller.process.poll() is None  # the first one is untouched

    pods = wait_until(controller.pod_pids, 10, "the pod processes")
    controller.process.send_signal(signal.SIGTERM)
    assert controller.process.wait(timeout=30) == 0, controller.tail()
    assert "controller stopped" in controller.log.read_text()
    assert living(pods) == pods, "the operator's exit stopped pods of the local cluster"
    assert answers(port, 10) == {"blue": 10}
