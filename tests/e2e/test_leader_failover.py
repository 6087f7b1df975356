"""Two operator processes on one cluster with leader election, as two replicas of the Deployment run: only the
holder of the `argo-rollouts-controller-lock` Lease acts; SIGKILL it mid-canary and the other takes over within
the lease duration (15 s, plus its 2 s retry), and the release ends as an undisturbed one does: every step
completed exactly once, each weight set exactly once, nothing skipped and nothing done twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rollouts.store.sqlite import SQLiteStore
from tests.e2e.harness import wait_until
from tests.e2e.manifests import shop_services
from tests.e2e.processes import home_processes, living

pytestmark = pytest.mark.integration

LEASE = "argo-rollouts-controller-lock"
LEASE_SECONDS, RETRY_SECONDS = 15.0, 2.0
# A slow CI machine may need a moment beyond the lease arithmetic to notice and write the Lease.
TAKEOVER_SLACK_SECONDS = 5.0

STEPPED = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: shop
        image: rollouts-demo:blue
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      scaleDownDelaySeconds: 2
      trafficRouting:
        nginx: {stableIngress: shop}
      steps:
      - setWeight: 20
      - pause: {duration: 6s}
      - setWeight: 50
      - pause: {duration: 6s}
      - setWeight: 80
      - pause: {duration: 6s}
""" + shop_services()


@dataclass
class Pair:
    home: Path
    kubeconfig: Path
    env: dict[str, str]
    logs: dict[str, Path]
    operators: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "rollouts", *args],
                                env={**self.env, "KUBECONFIG": str(self.kubeconfig)}, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"rollouts {' '.join(args)}: {result.stdout}{result.stderr}\n{self.tails()}"
        return result

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        with SQLiteStore(self.home / "state.db") as store:  # test code reads the store; the operators do not
            found = [o for o in store.list(kind, "default") if o["metadata"]["name"] == name]
        return found[0] if found else None

    def events(self, involved: str) -> list[dict[str, Any]]:
        with SQLiteStore(self.home / "state.db") as store:
            return [e for e in store.list("Event", "default") if e["involvedObject"]["name"] == involved]

    def holder(self) -> str:
        lease = self.read("Lease", LEASE) or {}
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{log.read_text()[-2500:]}" for name, log in self.logs.items())


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    home, user = tmp_path / "cluster-home", tmp_path / "user"
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME", "POD_NAME")}
    env["HOME"] = str(user)
    up = subprocess.run([sys.executable, "-m", "rollouts", "cluster", "up", "--home", str(home), "--probe-period",
                         "0.2"], env=env, capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stdout + up.stderr
    found = Pair(home, home / "kubeconfig", env, {name: tmp_path / f"{name}.log" for name in ("op-a", "op-b")})
    try:
        for name, log in found.logs.items():
            with log.open("ab") as out:
                found.operators[name] = subprocess.Popen(
                    [sys.executable, "-m", "rollouts", "controller", "--kubeconfig", str(found.kubeconfig),
                     "--leader-elect", "--log-format", "text", "--metrics-address", ""],
                    env={**env, "POD_NAME": name}, cwd=user, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: found.holder() in found.operators, 40, "one operator to hold the Lease")
        yield found
    finally:
        left = home_processes(home)
        for operator in found.operators.values():
            if operator.poll() is None:
                operator.terminate()
                operator.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(home)], env=env,
                       capture_output=True, timeout=90, check=False)
        wait_until(lambda: not living(left | home_processes(home)), 30, "every process of the cluster to exit")


def _phase(pair: Pair) -> str:
    rollout = pair.read("Rollout", "shop") or {}
    return str((rollout.get("status") or {}).get("phase") or "")


def _step(pair: Pair) -> int:
    rollout = pair.read("Rollout", "shop") or {}
    return int((rollout.get("status") or {}).get("currentStepIndex") or 0)


def test_sigkill_of_the_leader_mid_canary_hands_over_within_the_lease_and_acts_once(
        pair: Pair, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(STEPPED)
    pair.cli("apply", "-f", str(manifest))
    wait_until(lambda: _phase(pair) == "Healthy", 90, f"the first revision to be Healthy\n{pair.tails()}")
    standby_logs = {name: log.read_text() for name, log in pair.logs.items() if name != pair.holder()}
    assert all("reconciled" not in text for text in standby_logs.values()), "a standby acted"

    pair.cli("set", "image", "shop", "shop=rollouts-demo:green")
    wait_until(lambda: _step(pair) >= 1, 60, f"the canary's first step\n{pair.tails()}")
    leader = pair.holder()
    other = next(name for name in pair.operators if name != leader)
    pair.operators[leader].send_signal(signal.SIGKILL)
    pair.operators[leader].wait(timeout=10)
    killed_at = time.monotonic()
    wait_until(lambda: pair.holder() == other, LEASE_SECONDS + RETRY_SECONDS + TAKEOVER_SLACK_SECONDS,
               f"{other} to take the Lease\n{pair.tails()}")
    takeover = time.monotonic() - killed_at
    print(f"\nleader {leader} SIGKILLed at step {_step(pair)}; {other} holds the Lease {takeover:.1f}s later")

    wait_until(lambda: _phase(pair) == "Healthy" and _step(pair) == 6, 120,
               f"the release to complete under {other}\n{pair.tails()}")
    status = (pair.read("Rollout", "shop") or {})["status"]
    assert status["stableRS"] == status["currentPodHash"]

    events = pair.events("shop")
    completed = sorted(e["message"] for e in events if e["reason"] == "RolloutStepCompleted")
    # Each step of each release completed once: the second release's six steps, none repeated (count 1).
    second = [m for m in completed if "/6" in m]
    assert len(second) == len(set(second)) == 6, completed
    assert all(int(e.get("count") or 1) == 1 for e in events if e["reason"] == "RolloutStepCompleted"), events
    weights = [e for e in events if e["reason"] == "TrafficWeightUpdated"]
    messages = [e["message"] for e in weights]
    assert len(messages) == len(set(messages)), messages  # no weight set twice
    assert all(int(e.get("count") or 1) == 1 for e in weights), weights
    for weight in (20, 50, 80):
        assert any(f"{weight}" in m for m in messages), (weight, messages)
