"""`rollouts doctor`: one PASS/FAIL/SKIP line per check of the pre-release checklist, exit 1 on a failure."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rollouts.cli.main import app
from tests.cli.serving import serve, stop_all
from tests.cli.verbs_support import run, seeded_home, store

MANIFEST = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args: [{name: service-name}, {name: hash}]
  metrics:
  - name: success-rate
    interval: 1m
    count: 5
    successCondition: result[0] >= 0.995
    failureCondition: result[0] < 0.995
    provider:
      prometheus:
        address: http://127.0.0.1:9
        query: 'rate{service="{{args.service-name}}",hash="{{args.hash}}"}'
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      containers: [{name: shop, image: rollouts-demo:blue}]
  strategy:
    canary:
      steps:
      - setWeight: 50
      - analysis:
          templates: [{templateName: success-rate}]
          args:
          - {name: service-name, value: shop}
          - {name: hash, valueFrom: {podTemplateHashValue: Latest}}
"""


class FakePrometheus:
    def __init__(self) -> None:
        self.value = "0.999"
        self.healthy = 200
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.do_POST()

            def do_POST(self) -> None:  # noqa: N802
                from urllib.parse import parse_qs, urlparse

                url = urlparse(self.path)
                if url.path == "/-/healthy":
                    self._send(outer.healthy, b"Prometheus Server is Healthy.")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else parse_qs(url.query)
                outer.queries.append(form.get("query", [""])[0])
                body = {"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {}, "value": [1, outer.value]}]}}
                self._send(200, json.dumps(body).encode())

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def controller_pid(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    # Any live process whose command line says "controller" stands in for one.
    # An empty --metrics-address: it serves no /healthz, so the health check is a SKIP.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "controller",
                             "--metrics-address="])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def home(tmp_path: Path, controller_pid: subprocess.Popen[bytes]) -> Path:
    home = seeded_home(tmp_path, MANIFEST)
    (home / "controller.lock").write_text(f"{controller_pid.pid}\n")
    with store(home) as s:
        s.patch("Rollout", "default", "shop", {"status": {"stableRS": "abc123"}}, subresource="status")
    return home


def lines(result: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in result.stdout.splitlines():  # type: ignore[attr-defined]
        verdict, _, rest = line.partition(" ")
        name, _, detail = rest.partition(": ")
        out[name] = f"{verdict} {detail}"
    return out


def test_all_checks_pass(home: Path, prometheus: FakePrometheus, controller_pid: subprocess.Popen[bytes]) -> None:
    result = run(home, "doctor", "--prometheus-address", prometheus.address)
    assert result.exit_code == 0, result.stdout
    got = lines(result)
    assert list(got) == ["controller", "version", "cluster", "controller-health", "analysis-templates", "prometheus",
                         "gate-noise", "gates shop"]
    assert got["gate-noise"].split()[0] in ("PASS", "SKIP"), got["gate-noise"]  # this fake has no traffic history
    assert got["controller"].startswith(f"PASS running (pid {controller_pid.pid})")
    # Read through the home's local cluster (served by this test), named with the server it answered from.
    url = serve(home).url
    assert got["cluster"].startswith(f"PASS context rollouts-local ({url}, namespace default) from "
                                     f"{home / 'kubeconfig'}"), got["cluster"]
    assert " answers (Kubernetes v" in got["cluster"], got["cluster"]
    assert got["controller-health"].startswith("SKIP")
    assert got["analysis-templates"] == "PASS 1 valid (success-rate); 1 used by the rollouts"
    assert got["gates shop"] == "PASS stable abc123: success-rate Successful value=[0.999]"
    # The gate was measured against the stable version with the rollout's own arguments.
    assert prometheus.queries == ['rate{service="shop",hash="abc123"}']


def test_breached_gate_fails(home: Path, prometheus: FakePrometheus) -> None:
    prometheus.value = "0.9"
    result = run(home, "doctor", "shop", "--prometheus-address", prometheus.address)
    assert result.exit_code == 1
    assert lines(result)["gates shop"].startswith("FAIL stable abc123: success-rate Failed value=[0.9]")


def test_unreachable_prometheus_fails(home: Path, prometheus: FakePrometheus) -> None:
    result = run(home, "doctor")
    assert result.exit_code == 1
    assert lines(result)["prometheus"].startswith("FAIL http://127.0.0.1:9/-/healthy")
    prometheus.healthy = 503
    result = run(home, "doctor", "--prometheus-address", prometheus.address)
    assert lines(result)["prometheus"] == f"FAIL {prometheus.address}/-/healthy answered 503"


def test_no_controller(home: Path, prometheus: FakePrometheus) -> None:
    (home / "controller.lock").write_text("")
    result = run(home, "doctor", "--prometheus-address", prometheus.address)
    assert result.exit_code == 1 and lines(result)["controller"].startswith("FAIL not running")


def test_missing_and_invalid_templates(home: Path, prometheus: FakePrometheus) -> None:
    with store(home) as s:
        template = s.get("AnalysisTemplate", "default", "success-rate")
        template["spec"]["metrics"][0]["successCondition"] = "result[0] >>> 1"
        s.update(template)
    result = run(home, "doctor", "--prometheus-address", prometheus.address)
    assert result.exit_code == 1
    assert lines(result)["analysis-templates"].startswith("FAIL analysistemplate/success-rate")
    with store(home) as s:
        s.delete("AnalysisTemplate", "default", "success-rate")
    result = run(home, "doctor")
    assert lines(result)["analysis-templates"] == ("FAIL missing in default: success-rate (apply them: rollouts "
                                                   "apply -f FILE -n default, e.g. "
                                                   "infra/rollouts/analysis-templates.yaml)")


def test_unknown_rollout(home: Path) -> None:
    result = run(home, "doctor", "nope")
    assert result.exit_code == 1
    assert lines(result)["rollout"] == 'FAIL rollouts "nope" in namespace "default" not found'


def test_controller_health_probe(home: Path, prometheus: FakePrometheus) -> None:
    result = run(home, "doctor", "--controller-address", "127.0.0.1:9", "--prometheus-address", prometheus.address)
    assert result.exit_code == 1 and lines(result)["controller-health"].startswith("FAIL http://127.0.0.1:9/healthz")


SERVE_HEALTHZ = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/healthz" else b"no"
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
other = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # not /healthz
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("port_zero", [False, True], ids=["metrics-address", "metrics-address-port-0"])
def test_doctor_checks_the_controller_of_the_home_without_controller_address(
        home: Path, prometheus: FakePrometheus, port_zero: bool) -> None:
    port = 0 if port_zero else _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE_HEALTHZ, str(port), "controller", "--metrics-address",
                             f"127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        bound = int(proc.stdout.readline())
        (home / "controller.lock").write_text(f"{proc.pid}\n")
        result = run(home, "doctor", "--prometheus-address", prometheus.address)
        got = lines(result)
        assert got["controller"].startswith(f"PASS running (pid {proc.pid})")
        assert got["controller-health"] == (f"PASS http://127.0.0.1:{bound}/healthz (the address of pid "
                                            f"{proc.pid}) answered 200"), result.stdout
        assert result.exit_code == 0, result.stdout
    finally:
        proc.kill()
        proc.wait()


def test_doctor_counts_every_template_of_the_namespace(home: Path, prometheus: FakePrometheus) -> None:
    with store(home) as s:
        extra = s.get("AnalysisTemplate", "default", "success-rate")
        s.create({**extra, "metadata": {"name": "unused-gate", "namespace": "default"}})
    got = lines(run(home, "doctor", "--prometheus-address", prometheus.address))
    assert got["analysis-templates"] == "PASS 2 valid (success-rate, unused-gate); 1 used by the rollouts"


def test_doctor_says_how_to_install_what_is_missing(home: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "controller.lock").write_text("")
    empty = tmp_path / "no-programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a machine without a prometheus binary
    got = lines(run(home, "doctor"))
    assert got["controller"] == f"FAIL not running on {home} (start it: rollouts controller --home {home})"
    assert "Prometheus is not installed: `sudo apt-get install prometheus`" in got["prometheus"], got["prometheus"]


def test_doctor_names_a_cluster_that_does_not_answer_and_reads_nothing(home: Path, prometheus: FakePrometheus) -> None:
    """The home's local cluster is down (its server stopped, its kubeconfig left): doctor says which cluster
    it tried and that it does not answer, starts nothing, and skips every check that needs the API."""
    serve(home)
    state = (home / "apiserver.json").read_text()
    stop_all()
    (home / "apiserver.json").write_text(state)  # still recorded as running by this process: a crashed server
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--home", str(home), "--prometheus-address", prometheus.address],
                           env={"ROLLOUTS_NAMESPACE": "", "NO_COLOR": "1"}, catch_exceptions=False)
    got = lines(result)
    assert result.exit_code == 1
    assert list(got) == ["controller", "version", "cluster", "controller-health"], result.stdout
    assert got["cluster"].startswith("FAIL context rollouts-local (https://127.0.0.1:"), got["cluster"]
    assert "does not answer: cannot reach the Kubernetes API" in got["cluster"]


def test_doctor_with_a_kubeconfig_uses_that_cluster(home: Path, prometheus: FakePrometheus, tmp_path: Path) -> None:
    """--kubeconfig wins over the home: the checks read the cluster it names (here the same server, reached
    through a copy of its kubeconfig in another folder)."""
    cluster = serve(home)
    other = tmp_path / "elsewhere" / "config"
    other.parent.mkdir()
    other.write_text(cluster.kubeconfig.read_text())
    result = run(home, "doctor", "--kubeconfig", str(other), "--prometheus-address", prometheus.address)
    got = lines(result)
    assert got["cluster"].startswith(f"PASS context rollouts-local ({cluster.url}, namespace default) from {other}")
    assert got["analysis-templates"] == "PASS 1 valid (success-rate); 1 used by the rollouts"
