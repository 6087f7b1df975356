"""`rollouts controller --dashboard-address`: the controller serves the dashboard with the home's token,
and stops promptly on SIGTERM even while a browser holds an event stream open."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_controller_serves_the_dashboard_and_logs_its_address(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = {k: v for k, v in os.environ.items() if k != "ROLLOUTS_DASHBOARD_TOKEN"} | {"ROLLOUTS_HOME": str(home)}
    log = (tmp_path / "controller.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "rollouts", "controller", "--dashboard-address", f"127.0.0.1:{port}",
         "--metrics-address", "127.0.0.1:0", "--log-format", "text"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{url}/api/v1/namespaces", timeout=2).status_code == 401  # needs the token
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the controller's dashboard")
        token = (home / "dashboard.token").read_text().strip()
        assert httpx.get(f"{url}/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"},
                         timeout=10).status_code == 200
        assert stat.S_IMODE((home / "dashboard.token").stat().st_mode) == 0o600  # 20.12: never world-readable
        assert httpx.post(f"{url}/api/v1/rollouts/default/x/abort").status_code == 401
        assert httpx.post(f"{url}/api/v1/rollouts/default/x/abort",
                          headers={"Authorization": f"Bearer {token}"}).status_code == 404
        opened = threading.Event()

        def hold_stream() -> None:
            try:
                with httpx.stream("GET", f"{url}/api/v1/rollouts/default/watch", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"}) as response:
                    for _ in response.iter_lines():
                        opened.set()
            except httpx.HTTPError:
                pass

        threading.Thread(target=hold_stream, daemon=True).start()
        assert opened.wait(10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, (tmp_path / "controller.log").read_text()
        # 12.14: the controller's log says where the dashboard is.
        output = (tmp_path / "controller.log").read_text()
        assert f"dashboard listening on http://127.0.0.1:{port}/" in output
        assert token not in output  # the address it logs never carries the token
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        # The operator started the home's local cluster, which outlives it by design: stop it too.
        subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(home)], env=env,
                       capture_output=True, timeout=60, check=False)
    assert not (home / "apiserver.json").exists()


def test_controller_refuses_a_bad_dashboard_address(tmp_path: Path) -> None:
    # The metrics address is checked (bound) first: on its default, 127.0.0.1:8090, another process on the host
    # may listen, and the refusal would then be about that port. Port 0 is never checked.
    run = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--home", str(tmp_path),
                          "--metrics-address", "127.0.0.1:0", "--dashboard-address", "127.0.0.1:notaport"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "--dashboard-address: '127.0.0.1:notaport': the port must be a number" in run.stderr
    # Refused before anything started: no local cluster was left running for the home.
    assert not (tmp_path / "apiserver.json").exists() and not (tmp_path / "kubeconfig").exists()
