"""`rollouts dashboard` as users run it: a process serving the page and API over the Kubernetes API of the
cluster it selects (here a seeded home served API-only by this test), never over the SQLite file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rollouts.cluster.store import SQLiteStore
from tests.cluster.conftest import start_cluster
from tests.dashboard.helpers import seed, seeded_db
from tests.e2e.harness import wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("select", ["home", "kubeconfig"], ids=["home-local-cluster", "explicit-kubeconfig"])
def test_dashboard_command_serves_over_the_selected_cluster(tmp_path: Path, select: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = seeded_db(home / "state.db", seed)
    cluster, stop = start_cluster(home)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_DASHBOARD_TOKEN",
                                                             "ROLLOUTS_HOME")}
    chosen = ["--home", str(home)] if select == "home" else [
        "--home", str(tmp_path / "other-home"), "--kubeconfig", str(cluster.kubeconfig)]
    log = (tmp_path / "dashboard.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "rollouts", "dashboard", "--port", str(port), *chosen],
                               env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/v1/namespaces", timeout=2).status_code == 401  # needs the token
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the dashboard")
        token_home = home if select == "home" else tmp_path / "other-home"
        token = (token_home / "dashboard.token").read_text().strip()
        assert httpx.get(f"{url}/api/v1/rollouts/default/shop", timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).json()["step"] == "1/4"
        answer = httpx.post(f"{url}/api/v1/rollouts/default/shop/abort",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200, answer.text
        with SQLiteStore(db) as store:
            assert store.get("Rollout", "default", "shop")["status"]["abort"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stop()
    log.seek(0)
    output = log.read()
    log.close()
    assert f"cluster: context rollouts-local ({cluster.url}, namespace default)" in output, output
    # The address printed holds no token (whatever captures the output would hold it); it says where it is.
    assert f"dashboard: http://127.0.0.1:{port}/  (the token is in {token_home / 'dashboard.token'}" in output, output
    assert token not in output
    assert "started the local cluster" not in output  # it was running: nothing was started
