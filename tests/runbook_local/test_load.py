"""Item: `rollouts load NAME` sends a steady bounded rate to a rollout's service, through its Ingress (the
local ingress's `rollouts.io/port`) else its active Service, printing a summary per interval and a total
on Ctrl-C. Objects are read through a real API server (API-only, seeded SQLite store); the requests go to
a real HTTP server on the annotated port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rollouts.cli.load import LoadStats, parse_header, percentile, summary
from rollouts.cli.load_target import LoadTarget, TargetError, resolve_target
from rollouts.cluster.store import SQLiteStore
from rollouts.kube.client import KubeStore
from tests.cluster.conftest import Cluster, start_cluster

NS = "aivo-system"


class Recorder:
    """A real HTTP server that answers GET with 200 (every `fail_every`-th with 500) and records headers."""

    def __init__(self, fail_every: int = 0) -> None:
        self.seen: list[dict[str, str]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with recorder.lock:
                    recorder.seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
                    n = len(recorder.seen)
                status = 500 if fail_every and n % fail_every == 0 else 200
                self.send_response(status)
                self.send_header("X-Version", "1.1.0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - fixed by base
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _service(name: str, selector: dict[str, str], port: int | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if port is not None:
        meta["annotations"] = {"rollouts.io/port": str(port)}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def _rollout(name: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "strategy": strategy,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": f"{name}:1.0.0"}]}}}}


def _ingress(name: str, service: str, port: int | None, host: str = "auth-svc.aivo.dev",
             path: str = "/") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if port is not None:
        meta["annotations"] = {"rollouts.io/port": str(port)}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


def seed(store: SQLiteStore, port: int) -> None:
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    canary = {"canary": {"stableService": "auth-svc-stable", "canaryService": "auth-svc-canary",
                         "trafficRouting": {"nginx": {"stableIngress": "auth-svc"}}, "steps": [{"setWeight": 10}]}}
    for obj in [
        _service("auth-svc-stable", {"app": "auth-svc"}, port + 1),
        _service("auth-svc-canary", {"app": "auth-svc"}, port + 2),
        _ingress("auth-svc", "auth-svc-stable", port),
        _rollout("auth-svc", canary),
        _service("analytics-svc-active", {"app": "analytics-svc"}, port),
        _service("analytics-svc-preview", {"app": "analytics-svc"}, port + 3),
        _rollout("analytics-svc", {"blueGreen": {"activeService": "analytics-svc-active",
                                                 "previewService": "analytics-svc-preview"}}),
        _service("plain-svc", {"app": "plain-svc"}, port + 4),
        _rollout("plain-svc", {"canary": {"steps": [{"setWeight": 50}]}}),
        _ingress("web", "web-stable", None, host="web.aivo.dev"),
        _rollout("web", {"canary": {"stableService": "web-stable", "canaryService": "web-canary",
                                    "trafficRouting": {"nginx": {"stableIngress": "web"}}}}),
        _rollout("lost", {"canary": {"trafficRouting": {"nginx": {"stableIngress": "nowhere"}}}}),
    ]:
        store.create(obj)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Recorder]]:
    recorder = Recorder(fail_every=10)
    found, stop = start_cluster(tmp_path_factory.mktemp("home"))
    try:
        seed(found.store, recorder.port)
        yield found, recorder
    finally:
        stop()
        recorder.close()


@pytest.fixture
def cluster(world: tuple[Cluster, Recorder], monkeypatch: pytest.MonkeyPatch) -> Cluster:
    monkeypatch.delenv("KUBECONFIG", raising=False)  # the test's own API server is the cluster in use
    return world[0]


@pytest.fixture
def server(world: tuple[Cluster, Recorder]) -> Recorder:
    world[1].seen.clear()
    return world[1]


def kube(cluster: Cluster) -> KubeStore:
    from rollouts.cli.common import open_store

    return open_store(str(cluster.home))


@pytest.mark.parametrize(("name", "preview", "expected"), [
    pytest.param("auth-svc", False, ("ingress/auth-svc", 0, "auth-svc.aivo.dev"), id="canary-through-its-ingress"),
    pytest.param("analytics-svc", False, ("service/analytics-svc-active", 0, None), id="bluegreen-active-service"),
    pytest.param("analytics-svc", True, ("service/analytics-svc-preview", 3, None), id="bluegreen-preview"),
    pytest.param("plain-svc", False, ("service/plain-svc", 4, None), id="canary-without-ingress-service-of-its-pods"),
])
def test_load_target_ingress_else_active_service(cluster: Cluster, server: Recorder, name: str, preview: bool,
                                                  expected: tuple[str, int, str | None]) -> None:
    store = kube(cluster)
    try:
        target = resolve_target(store, NS, name, preview=preview)
    finally:
        store.close()
    what, offset, host = expected
    assert target == LoadTarget(url=f"http://127.0.0.1:{server.port + offset}/", host_header=host, what=what)


@pytest.mark.parametrize(("name", "preview", "words"), [
    pytest.param("auth-svc", True, ("not blue/green", "X-Canary"), id="preview-of-a-canary"),
    pytest.param("web", False, ("ingress/web", "rollouts.io/port", "rollouts cluster up"), id="ingress-without-port"),
    pytest.param("lost", False, ("'nowhere'", "trafficRouting.nginx"), id="stable-ingress-missing"),
    pytest.param("ghost", False, ('rollout "ghost" not found', NS), id="no-such-rollout"),
])
def test_load_target_errors_name_the_object_and_field(cluster: Cluster, name: str, preview: bool,
                                                      words: tuple[str, ...]) -> None:
    store = kube(cluster)
    try:
        with pytest.raises(TargetError) as caught:
            resolve_target(store, NS, name, preview=preview)
    finally:
        store.close()
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(("text", "parsed"), [
    pytest.param("X-Canary: true", ("X-Canary", "true"), id="name-colon-value"),
    pytest.param("X-Empty:", ("X-Empty", ""), id="empty-value"),
    pytest.param("no colon", None, id="no-colon"),
    pytest.param("Bad Name: x", None, id="space-in-name"),
])
def test_load_header_parsing(text: str, parsed: tuple[str, str] | None) -> None:
    if parsed is None:
        with pytest.raises(ValueError, match="Name: value"):
            parse_header(text)
    else:
        assert parse_header(text) == parsed


def test_load_summary_counts_errors_and_p95() -> None:
    stats = LoadStats()
    for i in range(1, 101):
        stats.record(500 if i <= 3 else 200, i / 1000, "v1")
    stats.record(None, 10.0, None)  # no answer: an error, no latency
    window = stats.take_window()
    assert (window.requests, window.errors, window.p95()) == (101, 4, 0.095)
    assert percentile([], 0.95) is None
    assert 0.095 <= (stats.latency.percentile(0.95) or 0) <= 0.095 * 1.02
    assert summary(window.requests, window.errors, 0, window.p95(), window.versions) == \
        "requests 101  errors 4 (4.0%)  p95 95 ms  versions (no answer)=1 v1=100"


def _load(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_NAMESPACE")}
    return subprocess.Popen([sys.executable, "-m", "rollouts", "load", *args, "--home", str(cluster.home)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_load_steady_rate_through_the_ingress_with_headers_and_summaries(cluster: Cluster, server: Recorder) -> None:
    process = _load(cluster, "auth-svc", "-n", NS, "--rps", "40", "--duration", "3s", "--interval", "1s",
                    "--header", "X-Canary: true")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"sending 40 requests/s to ingress/auth-svc (http://127.0.0.1:{server.port}/, "
                               "Host auth-svc.aivo.dev) for 3s")
    summaries = [line for line in lines if line.startswith("[")]
    assert 2 <= len(summaries) <= 3, out  # one per interval
    total = lines[-1]
    assert total.startswith("total 3s (done): requests ")
    sent = len(server.seen)
    # Steady and bounded: 40/s for 3 s, whatever the machine's load, never a burst above the schedule.
    assert 100 <= sent <= 121, out
    assert f"requests {sent} " in total and f"errors {sent // 10} " in total and "versions 1.1.0=" in total
    assert {(h["host"], h["x-canary"], h[":path"]) for h in server.seen} == {("auth-svc.aivo.dev", "true", "/")}


def test_load_ctrl_c_prints_the_total(cluster: Cluster, server: Recorder) -> None:
    process = _load(cluster, "analytics-svc", "-n", NS, "--rps", "20", "--duration", "0")
    deadline = time.monotonic() + 30
    while len(server.seen) < 10:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "until Ctrl-C" in out.splitlines()[0]
    total = out.splitlines()[-1]
    assert total.startswith("total ") and "(stopped): requests " in total, out
    assert f"requests {len(server.seen)} " in total


def test_load_missing_listener_is_one_error_line(cluster: Cluster) -> None:
    process = _load(cluster, "web", "-n", NS, "--duration", "1s")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1 and out == ""
    assert err.startswith("error: ingress/web in aivo-system has no local listener yet") and err.count("\n") == 1
