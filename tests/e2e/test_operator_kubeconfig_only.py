"""The operator as it runs against a remote cluster: a separate process given only `--kubeconfig F` (no
home, no $KUBECONFIG, no ~/.kube/config), on a local cluster started first by `rollouts cluster up`. It
completes a canary through its analysis, then a second release is aborted and traffic returns to the new
stable version; the operator never opens the cluster's SQLite file nor takes the home's lock."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from tests.e2e.harness import Load, sample_colors, wait_until
from tests.e2e.manifests import CANARY
from tests.e2e.processes import home_processes, living
from tests.integration.prometheus_server import free_port

pytestmark = pytest.mark.integration


@dataclass
class Remote:
    home: Path  # the cluster's home: only the cluster process (and this test's reads) use it
    kubeconfig: Path
    env: dict[str, str]  # what the operator and the CLI see: no home, no kubeconfig but --kubeconfig/KUBECONFIG
    operator: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run([sys.executable, "-m", "rollouts", *args], env=env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"rollouts {' '.join(args)} failed ({result.returncode}): {result.stdout}"
                                 f"{result.stderr}\n--- operator log ---\n{self.log.read_text()[-3000:]}")
        return result

    def get(self, kind: str, name: str) -> dict[str, Any]:
        with SQLiteStore(self.home / "state.db") as store:  # test code reads the store; the operator does not
            return store.get(kind, "default", name)

    def list(self, kind: str) -> list[dict[str, Any]]:
        with SQLiteStore(self.home / "state.db") as store:
            return store.list(kind, "default")


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    home = tmp_path / "cluster-home"
    user = tmp_path / "user"  # an empty $HOME: no ~/.kube/config, no ~/.rollouts
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME")}
    env["HOME"] = str(user)
    up = subprocess.run([sys.executable, "-m", "rollouts", "cluster", "up", "--home", str(home)], env=env,
                        capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stdout + up.stderr
    kubeconfig = home / "kubeconfig"
    log = tmp_path / "operator.log"
    with log.open("ab") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "rollouts", "controller", "--kubeconfig", str(kubeconfig), "--log-format", "text",
             "--metrics-address", f"127.0.0.1:{free_port()}"],
            env=env, cwd=user, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "controller started" in log.read_text() or operator.poll() is not None, 30,
                   "the operator to start")
        assert operator.poll() is None, log.read_text()
        yield Remote(home, kubeconfig, env, operator, log)
    finally:
        left = home_processes(home)
        operator.terminate()
        operator.wait(timeout=30)
        subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(home)], env=env,
                       capture_output=True, timeout=90, check=False)
        wait_until(lambda: not living(left | home_processes(home)), 30, "every process of the cluster to exit")


def _opened_files(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.add(str(fd.readlink()))
        except OSError:
            continue
    return found


def _state_db_open(remote: Remote) -> list[str]:
    return [f for f in _opened_files(remote.operator.pid) if f.startswith(str(remote.home.resolve()))]


def test_operator_with_only_a_kubeconfig_completes_a_canary_with_analysis_and_an_abort(
        remote: Remote, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(CANARY)
    remote.cli("apply", "-f", str(manifest))
    remote.cli("status", "shop", "--timeout", "60s")
    port = int(wait_until(lambda: (remote.get("Ingress", "shop")["metadata"].get("annotations") or {})
                          .get("rollouts.io/port"), 20, "the ingress port"))
    assert sample_colors(port, 20) == {"blue": 20}

    # A canary through both analysis steps, measured on the cluster's own traffic statistics.
    with Load(port):
        remote.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        done = remote.cli("status", "shop", "--timeout", "120s", check=False, timeout=150)
        assert done.returncode == 0, done.stdout + done.stderr + remote.log.read_text()[-3000:]
        assert _state_db_open(remote) == []
    status = remote.get("Rollout", "shop")["status"]
    assert status["stableRS"] == status["currentPodHash"] and status["phase"] == "Healthy"
    runs = remote.list("AnalysisRun")
    assert len(runs) == 2 and {r["status"]["phase"] for r in runs} == {"Successful"}, runs
    assert all(int(r["status"]["metricResults"][0]["measurements"][-1]["metadata"]["requests"]) >= 20 for r in runs)
    assert sample_colors(port, 30) == {"yellow": 30}

    # A second release, aborted while its canary serves: all traffic back on the new stable (yellow).
    remote.cli("set", "image", "shop", "shop=rollouts-demo:green")
    wait_until(lambda: "green" in sample_colors(port, 30), 60, "the canary to serve")
    remote.cli("abort", "shop")
    wait_until(lambda: (remote.get("Rollout", "shop").get("status") or {}).get("phase") == "Degraded", 30,
               "the rollout to be Degraded")
    wait_until(lambda: sample_colors(port, 20) == {"yellow": 20}, 15, "traffic back on the stable version")
    assert sample_colors(port, 100) == {"yellow": 100}
    status = remote.get("Rollout", "shop")["status"]
    assert status["abort"] is True and status["canary"]["weights"]["canary"]["weight"] == 0
    reasons = [e["reason"] for e in remote.list("Event") if e["involvedObject"]["name"] == "shop"]
    assert "RolloutCompleted" in reasons and "RolloutAborted" in reasons

    # Only the API: the operator holds no file of the cluster's home, and took no home lock anywhere.
    assert _state_db_open(remote) == []
    assert not (remote.home / "controller.lock").exists() or remote.operator.pid != _lock_holder(remote.home)
    assert not list(Path(remote.env["HOME"]).rglob("controller.lock"))
    assert "Traceback" not in remote.log.read_text()


def _lock_holder(home: Path) -> int | None:
    text = (home / "controller.lock").read_text().strip()
    return int(text) if text.isdigit() else None
