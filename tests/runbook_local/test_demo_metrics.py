"""Item: the demo application exports real request metrics at /metrics (Prometheus text format), labelled
with the service it is deployed as. Real processes over real HTTP; the scrape is parsed with
prometheus_client's parser and linted by promtool when it is installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from rollouts.demo.http_metrics import BUCKETS, RequestMetrics
from rollouts.demo.prometheus import free_port
from rollouts.demo.service import DemoConfig
from rollouts.runtime.local.images import ImageMap, ImageResolver
from rollouts.runtime.local.supervisor import PodSupervisor
from rollouts.spec.pod import Container


def wait_healthy(url: str, process: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"demo service exited with {process.returncode}"
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} did not become healthy within {deadline_s}s")


@pytest.fixture
def demo_service() -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def run(**env: str) -> str:
        port = free_port()
        base = {k: v for k, v in os.environ.items() if k not in ("SERVICE_NAME", "POD_LABEL_APP")}
        process = subprocess.Popen([sys.executable, "-m", "rollouts.demo.service"],
                                   env={**base, "PORT": str(port), **env},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        url = f"http://{env.get('POD_IP') or '127.0.0.1'}:{port}"
        wait_healthy(url, process)
        return url

    yield run
    for process in started:
        process.kill()
        process.wait()


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    found = [s.value for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples in\n{text}"
    return found[0]


@pytest.mark.parametrize(("env", "service"), [
    pytest.param({"SERVICE_NAME": "auth-svc", "POD_LABEL_APP": "other"}, "auth-svc", id="service-name-wins"),
    pytest.param({"POD_LABEL_APP": "analytics-svc"}, "analytics-svc", id="pod-app-label"),
    pytest.param({}, "rollouts-demo", id="default"),
])
def test_metrics_service_label_from_service_name_then_pod_app_label(env: dict[str, str], service: str) -> None:
    assert DemoConfig.from_env({"PORT": "8080", **env}).service == service


def test_metrics_counts_requests_by_code_and_method_and_histogram_parses(demo_service: object) -> None:
    url = demo_service(SERVICE_NAME="auth-svc", ERROR_RATE="0.5", SEED="7", LATENCY_MS="30")  # type: ignore[operator]
    codes = [httpx.get(url + "/").status_code for _ in range(20)]
    codes.append(httpx.get(url + "/nope").status_code)
    for _ in range(3):  # probes and scrapes are not the service's traffic: they are not counted
        httpx.get(url + "/healthz")
        httpx.get(url + "/metrics")
    scrape = httpx.get(url + "/metrics")
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scrape.text
    ok, failed = codes.count(200), codes.count(500)
    assert ok and failed, codes  # the seed gives both answers
    assert value(text, "http_requests_total", service="auth-svc", code="200", method="GET") == ok
    assert value(text, "http_requests_total", service="auth-svc", code="500", method="GET") == failed
    assert value(text, "http_requests_total", service="auth-svc", code="404", method="GET") == 1
    total = sum(s.value for s in samples(text) if s.name == "http_requests_total")
    assert total == len(codes)
    # Histogram: cumulative buckets at the default bounds, +Inf = count, and the 30 ms latency shows.
    labels = {"service": "auth-svc", "code": "200", "method": "GET"}
    buckets = [(s.labels["le"], s.value) for s in samples(text)
               if s.name == "http_request_duration_seconds_bucket" and all(s.labels[k] == v for k, v in labels.items())]
    assert [float(le) for le, _ in buckets] == [*BUCKETS, float("inf")]
    counts = [c for _, c in buckets]
    assert counts == sorted(counts) and counts[-1] == ok
    assert value(text, "http_request_duration_seconds_count", **labels) == ok
    assert dict(buckets)["0.025"] == 0 and dict(buckets)["0.1"] == ok  # 30 ms +- 5 %, plus overhead
    assert 0.0285 * ok <= value(text, "http_request_duration_seconds_sum", **labels) < 0.1 * ok


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_metrics_exposition_passes_promtool_check(tmp_path: Path) -> None:
    metrics = RequestMetrics('we"ird\\svc\n')  # a label value that needs every escape
    for method, code, seconds in [("GET", 200, 0.003), ("GET", 500, 0.7), ("BREW", 404, 20.0)]:
        metrics.observe(method, code, seconds)
    body = metrics.render()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    parsed = samples(body.decode())
    assert {s.labels["service"] for s in parsed} == {'we"ird\\svc\n'}
    assert {s.labels["method"] for s in parsed} == {"GET", "OTHER"}
    assert value(body.decode(), "http_request_duration_seconds_bucket", code="404", le="10") == 0
    assert value(body.decode(), "http_request_duration_seconds_bucket", code="404", le="+Inf") == 1


def test_metrics_demo_service_does_not_import_prometheus_client() -> None:
    # Start-up cost: the service must start in well under half a second on a loaded machine.
    code = "import sys, rollouts.demo.service; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "False"


def test_metrics_local_pod_labelled_with_its_app_label(tmp_path: Path) -> None:
    async def scenario() -> str:
        sup = PodSupervisor(tmp_path / "logs", images=ImageResolver(image_map=ImageMap()), probe_period=0.1)
        try:
            pod = await sup.ensure_pod("auth-svc-abc12-x1", {"app": "auth-svc", "rollouts-pod-template-hash": "abc12"},
                                       Container.model_validate({"name": "app", "image": "rollouts-demo:blue"}))
            deadline = time.monotonic() + 15
            while not (state := sup.pod(pod.name)) or not state.ready:
                assert time.monotonic() < deadline, f"pod never ready: {state}"
                await asyncio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://{state.ip}:{state.port}", timeout=5) as client:
                await client.get("/")
                return (await client.get("/metrics")).text
        finally:
            await sup.close()

    text = asyncio.run(scenario())
    assert value(text, "http_requests_total", service="auth-svc", code="200", method="GET") == 1


@pytest.mark.parametrize(("env", "host"), [
    pytest.param({"HOST": "127.0.0.2", "POD_IP": "127.1.0.5"}, "127.0.0.2", id="host-wins"),
    pytest.param({"POD_IP": "127.1.0.5"}, "127.1.0.5", id="pod-ip"),
    pytest.param({}, "127.0.0.1", id="loopback"),
])
def test_demo_service_listens_on_the_pods_own_address(env: dict[str, str], host: str) -> None:
    assert DemoConfig.from_env({"PORT": "8080", **env}).host == host


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="all of 127.0.0.0/8 is local on Linux")
def test_demo_service_answers_on_its_pod_ip(demo_service: object) -> None:
    url = demo_service(POD_IP="127.1.0.5", SERVICE_NAME="auth-svc")  # type: ignore[operator]
    assert url.startswith("http://127.1.0.5:")
    assert httpx.get(url + "/metrics").status_code == 200
    with pytest.raises(httpx.ConnectError):  # its own address only, as a pod's
        httpx.get(url.replace("127.1.0.5", "127.0.0.1") + "/healthz")
