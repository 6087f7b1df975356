"""`rollouts cluster up|status|kubeconfig|down` as a user runs them: a real background server process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Namespace


def _rollouts(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ROLLOUTS_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "rollouts", "cluster", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_cluster_up_status_kubeconfig_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        up = _rollouts(home, "up")
        assert up.returncode == 0, up.stderr
        assert f"kubeconfig: {home / 'kubeconfig'}" in up.stdout
        assert _rollouts(home, "status").returncode == 0
        assert _rollouts(home, "kubeconfig", "--path").stdout == f"{home / 'kubeconfig'}\n"
        printed = yaml.safe_load(_rollouts(home, "kubeconfig").stdout)
        assert printed["current-context"] == "rollouts-local"
        assert oct((home / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        client = Client(config=KubeConfig.from_file(home / "kubeconfig"))
        assert [n.metadata.name for n in client.list(Namespace)] == ["default"]
        client.close()
    finally:
        down = _rollouts(home, "down")
    assert down.stdout.strip() == "local cluster stopped"
    status = _rollouts(home, "status")
    assert status.returncode == 1 and "not running" in status.stdout
    assert not (home / "apiserver.json").exists()
