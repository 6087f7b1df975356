"""The local cluster's API server SIGKILLed and started again under a running operator, mid-canary: the
operator's watches drop, its requests are refused for a while, its informers list again when the server is
back, and the release goes on from where it was to the same end as an undisturbed one (every step completed
once, the new revision stable). Pods outlive the cluster process, so no pod is restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.apiserver.server import read_state
from rollouts.store.sqlite import SQLiteStore
from tests.e2e.harness import wait_until
from tests.e2e.processes import alive, home_processes, living
from tests.e2e.test_leader_failover import STEPPED

pytestmark = pytest.mark.integration


@dataclass
class Setup:
    home: Path
    kubeconfig: Path
    env: dict[str, str]
    log: Path
    operator: subprocess.Popen[bytes]

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rollouts", *args],
                                env={**self.env, "KUBECONFIG": str(self.kubeconfig)}, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"rollouts {' '.join(args)}: {result.stdout}{result.stderr}\n{self.tail()}"
        return result

    def status(self) -> dict[str, Any]:
        with SQLiteStore(self.home / "state.db") as store:  # test code reads the store; the operator does not
            found = [o for o in store.list("Rollout", "default") if o["metadata"]["name"] == "shop"]
        return dict((found[0].get("status") or {}) if found else {})

    def events(self) -> list[dict[str, Any]]:
        with SQLiteStore(self.home / "state.db") as store:
            return [e for e in store.list("Event", "default") if e["involvedObject"]["name"] == "shop"]

    def pod_pids(self) -> set[int]:
        with SQLiteStore(self.home / "state.db") as store:
            pods = store.list("Pod", "default")
        return {int((p["metadata"].get("annotations") or {}).get("rollouts.io/pid") or 0) for p in pods} - {0}

    def tail(self) -> str:
        return self.log.read_text()[-3000:]


def _up(home: Path, env: dict[str, str]) -> None:
    up = subprocess.run([sys.executable, "-m", "rollouts", "cluster", "up", "--home", str(home), "--probe-period",
                         "0.2"], env=env, capture_output=True, text=True, timeout=90)
    assert up.returncode == 0, up.stdout + up.stderr


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    home, user = tmp_path / "cluster-home", tmp_path / "user"
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME", "POD_NAME")}
    env["HOME"] = str(user)
    _up(home, env)
    log = tmp_path / "operator.log"
    with log.open("ab") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "rollouts", "controller", "--kubeconfig", str(home / "kubeconfig"),
             "--no-leader-elect", "--log-format", "text", "--metrics-address", ""],
            env=env, cwd=user, stdout=out, stderr=subprocess.STDOUT)
    found = Setup(home, home / "kubeconfig", env, log, operator)
    try:
        wait_until(lambda: "controller started" in log.read_text() or operator.poll() is not None, 40,
                   "the operator to start")
        assert operator.poll() is None, log.read_text()
        yield found
    finally:
        left = home_processes(home)
        if operator.poll() is None:
            operator.terminate()
            operator.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(home)], env=env,
                       capture_output=True, timeout=90, check=False)
        wait_until(lambda: not living(left | home_processes(home)), 30, "every process of the cluster to exit")


def test_api_server_killed_and_restarted_mid_canary_release_ends_right(setup: Setup, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(STEPPED)
    setup.cli("apply", "-f", str(manifest))
    wait_until(lambda: setup.status().get("phase") == "Healthy", 90, f"the first revision\n{setup.tail()}")
    setup.cli("set", "image", "shop", "shop=rollouts-demo:green")
    wait_until(lambda: int(setup.status().get("currentStepIndex") or 0) >= 1, 60, f"the first step\n{setup.tail()}")

    running = read_state(setup.home)
    assert running is not None
    pods = setup.pod_pids()
    os.kill(running.pid, signal.SIGKILL)
    wait_until(lambda: not alive(running.pid), 10, "the API server process to die")
    assert all(alive(pid) for pid in pods)  # pods are not the API server's to take down
    _up(setup.home, setup.env)
    restarted = read_state(setup.home)
    assert restarted is not None and restarted.port == running.port  # the kubeconfig the operator holds stays valid

    wait_until(lambda: (s := setup.status()).get("phase") == "Healthy" and int(s.get("currentStepIndex") or 0) == 6,
               150, f"the release to complete after the restart\n{setup.tail()}")
    status = setup.status()
    assert status["stableRS"] == status["currentPodHash"]
    assert setup.operator.poll() is None, "the operator exited while its API server was away"
    completed = [e for e in setup.events() if e["reason"] == "RolloutStepCompleted" and "/6" in e["message"]]
    messages = [e["message"] for e in completed]
    assert len(messages) == len(set(messages)) == 6, messages
    assert all(int(e.get("count") or 1) == 1 for e in completed), completed
    assert "Traceback" not in setup.log.read_text()
