"""The Deployment's probes against the controller as it runs today: started with the rendered
Deployment's arguments (less the operator flags still being built), its /healthz and /metrics answer on
the port the probes and the Service name, to a Host header carrying a pod IP as the kubelet and
Prometheus send it. The listen address is narrowed to 127.0.0.1 in the test (the manifest's 0.0.0.0 is
only checked statically)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.manifests import one, render
from tests.deploy.test_kustomize import OPERATOR_FLAGS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_deployment_probes_answer_on_the_metrics_port(tmp_path: Path) -> None:
    container = one(render("cluster"), "Deployment", "rollouts-controller")["spec"]["template"]["spec"]["containers"][0]
    port_name = container["livenessProbe"]["httpGet"]["port"]
    assert container["readinessProbe"]["httpGet"] == container["livenessProbe"]["httpGet"]
    assert {p["name"] for p in container["ports"]} == {port_name}

    port = _free_port()
    args = []
    for arg in container["args"][1:]:
        flag = arg.split("=", 1)[0]
        if flag in OPERATOR_FLAGS:
            continue
        args.append(f"--metrics-address=127.0.0.1:{port}" if flag == "--metrics-address" else arg)
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"] if "value" in e}}
    env["HOME"] = str(tmp_path)  # the Deployment's HOME is the /tmp emptyDir
    process = subprocess.Popen([sys.executable, "-m", "rollouts", "controller", "--home", str(tmp_path / "home"),
                                *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        headers = {"Host": f"10.244.1.7:{port}"}  # a pod IP, as the kubelet's probe sends it
        deadline = time.monotonic() + 45
        healthz = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                healthz = httpx.get(f"http://127.0.0.1:{port}/healthz", headers=headers, timeout=2)
                if healthz.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert process.poll() is None, f"the controller exited: {process.stderr.read() if process.stderr else ''}"
        assert healthz is not None and healthz.status_code == 200, healthz
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        # The operator started the home's local cluster (no kubeconfig given): stop it and its pods.
        subprocess.run([sys.executable, "-m", "rollouts", "cluster", "down", "--home", str(tmp_path / "home")],
                       env=env, capture_output=True, timeout=60, check=False)
