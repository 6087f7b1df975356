"""`rollouts cluster up|status|kubeconfig|down` as a user runs them: the commands in-process, the API server
as the real background process they start and stop."""

from __future__ import annotations

from pathlib import Path

import yaml
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Namespace
from typer.testing import CliRunner

from rollouts.cli.cluster import cluster_app


def _rollouts(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cluster_app, [*args, "--home", str(home)])
    return result.exit_code, result.output


def test_cluster_up_status_kubeconfig_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        code, out = _rollouts(home, "up")
        assert code == 0, out
        assert f"kubeconfig: {home / 'kubeconfig'}" in out
        assert _rollouts(home, "status")[0] == 0
        assert _rollouts(home, "kubeconfig", "--path")[1] == f"{home / 'kubeconfig'}\n"
        printed = yaml.safe_load(_rollouts(home, "kubeconfig")[1])
        assert printed["current-context"] == "rollouts-local"
        assert oct((home / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        client = Client(config=KubeConfig.from_file(home / "kubeconfig"))
        # The cluster's own namespaces (prometheus, ingress-nginx) may be there too.
        assert "default" in [n.metadata.name for n in client.list(Namespace)]
        client.close()
        refused = _rollouts(home, "up", "--foreground")  # a second server for the same home
        assert refused[0] == 1 and "already running" in refused[1]
    finally:
        down = _rollouts(home, "down")
    assert down[1].strip() == "local cluster stopped"
    code, out = _rollouts(home, "status")
    assert code == 1 and "not running" in out
    assert not (home / "apiserver.json").exists()
