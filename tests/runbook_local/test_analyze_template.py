"""Item: the runbook's incident command works on the shipped templates file: `rollouts analyze -f
infra/rollouts/analysis-templates.yaml --template NAME -a service-name=auth-svc --once` measures that one
template of the nine; arguments it still needs (canary-hash) are named with how to pass them. Queries go to
a real HTTP server that answers Prometheus' query API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from typer.testing import CliRunner, Result

TEMPLATES = str(Path(__file__).resolve().parents[2] / "infra" / "rollouts" / "analysis-templates.yaml")


class FakePrometheus:
    """Answers /api/v1/query with one sample: p95 0.12 s for histogram queries, else a 0.998 ratio."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(parse_qs(urlparse(self.path).query))

            def do_POST(self) -> None:  # noqa: N802 - Prometheus' API takes the query form-encoded too
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(parse_qs(self.rfile.read(length).decode()))

            def _answer(self, form: dict[str, list[str]]) -> None:
                query = form.get("query", [""])[0]
                fake.queries.append(query)
                value = "0.12" if "histogram_quantile" in query else "0.998"
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {}, "value": [1700000000, value]}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - fixed by base
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def analyze(*args: str) -> Result:
    from rollouts.cli import commands  # noqa: F401
    from rollouts.cli.main import app

    return CliRunner().invoke(app, ["analyze", "-f", TEMPLATES, *args], catch_exceptions=False)


@pytest.mark.parametrize(("template", "metrics", "code"), [
    pytest.param("success-rate", ["success-rate: Successful value=[0.998]"], 0, id="success-rate"),
    pytest.param("latency-p95", ["latency-p95: Successful value=[0.12]"], 0, id="latency-p95"),
    pytest.param("bluegreen-post-promotion", ["success-rate: Successful value=[0.998]",
                                              "latency-p95: Successful value=[0.12]"], 0, id="post-promotion"),
])
def test_analyze_template_selects_one_template_of_the_shipped_file(
        prometheus: FakePrometheus, template: str, metrics: list[str], code: int) -> None:
    result = analyze("--template", template, "-a", "service-name=auth-svc", "--once",
                     "--prometheus-address", prometheus.url)
    assert result.exit_code == code, result.output
    assert sorted(line for line in result.output.splitlines() if ": " in line and "AnalysisRun" not in line) == \
        sorted(metrics)
    assert "AnalysisRun Successful" in result.output
    assert len(prometheus.queries) == len(metrics)
    assert all('service="auth-svc"' in q for q in prometheus.queries)


def test_analyze_template_with_the_hash_given_measures_the_canary(prometheus: FakePrometheus) -> None:
    result = analyze("--template", "error-budget-burn", "-a", "service-name=auth-svc", "-a", "canary-hash=6f7b8c9d",
                     "--once", "--prometheus-address", prometheus.url)
    assert result.exit_code == 1, result.output  # 0.998 of the budget burnt: the gate fails, as it should
    assert prometheus.queries and 'rollouts_pod_template_hash="6f7b8c9d"' in prometheus.queries[0]
    assert "[1h]" in prometheus.queries[0]  # release-window's default


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(["--template", "error-budget-burn"],
                 ["argument canary-hash (declared by error-budget-burn) has no value", "-a canary-hash=VALUE",
                  "rollouts-pod-template-hash", "podTemplateHashValue"], id="canary-hash"),
    pytest.param(["--template", "success-rate", "--template", "bluegreen-pre-promotion"],
                 ["canary-hash (declared by bluegreen-pre-promotion)", "-a canary-hash=VALUE", "--template NAME",
                  "--rollout NAME -n NAMESPACE"],
                 id="one-of-two-templates-needs-it"),
])
def test_analyze_template_missing_args_named_with_how_to_pass_them(
        prometheus: FakePrometheus, args: list[str], words: list[str]) -> None:
    result = analyze(*args, "-a", "service-name=auth-svc", "--once", "--prometheus-address", prometheus.url)
    assert result.exit_code == 2
    for word in words:
        assert word in result.output
    assert prometheus.queries == []  # nothing measured with a half-resolved query


def test_analyze_template_missing_service_name_too() -> None:
    result = analyze("--template", "error-budget-burn", "--once")
    assert result.exit_code == 2
    assert "arguments service-name (declared by error-budget-burn); canary-hash" in result.output
    assert "-a service-name=VALUE -a canary-hash=VALUE" in result.output


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(["--template", "nope"], ["no AnalysisTemplate or ClusterAnalysisTemplate named 'nope'",
                                          "success-rate, latency-p95, error-budget-burn, slo-gates"], id="unknown"),
    pytest.param([], ["metric 'success-rate' in success-rate, slo-gates", "choose with --template NAME"],
                 id="no-template-on-a-file-of-several"),
])
def test_analyze_template_choice_errors_list_the_templates(args: list[str], words: list[str]) -> None:
    result = analyze(*args, "-a", "service-name=auth-svc", "--once")
    assert result.exit_code == 2
    for word in words:
        assert word in result.output


def test_analyze_template_reaches_the_shipped_prometheus_address_through_the_local_cluster(
        prometheus: FakePrometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --prometheus-address: http://prometheus.prometheus.svc:9090 is the local cluster's Service."""
    from tests.cluster.conftest import start_cluster

    monkeypatch.delenv("KUBECONFIG", raising=False)
    cluster, stop = start_cluster(tmp_path)
    try:
        cluster.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prometheus"}})
        cluster.store.create({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "prometheus", "namespace": "prometheus",
            "annotations": {"rollouts.io/port": prometheus.url.rsplit(":", 1)[1]}},
            "spec": {"selector": {"app": "prometheus"}, "ports": [{"port": 9090}]}})
        result = analyze("--template", "success-rate", "-a", "service-name=auth-svc", "--once",
                         "--home", str(tmp_path))
    finally:
        stop()
    assert result.exit_code == 0, result.output
    assert "success-rate: Successful value=[0.998]" in result.output
    assert len(prometheus.queries) == 1


def test_analyze_template_cluster_address_without_a_running_cluster_says_how(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from rollouts.cli.analysis import _local_cluster_dns

    monkeypatch.delenv("KUBECONFIG", raising=False)
    docs = [d for d in yaml.safe_load_all(Path(TEMPLATES).read_text()) if d and d["metadata"]["name"] == "success-rate"]
    assert _local_cluster_dns(str(tmp_path), docs, None) is None
    err = capsys.readouterr().err
    assert "note: http://prometheus.prometheus.svc:9090 names a cluster Service" in err
    assert "rollouts cluster up" in err and "--prometheus-address" in err
    assert not (tmp_path / "apiserver.json").exists()  # nothing was started for it
    assert _local_cluster_dns(str(tmp_path), docs, "http://127.0.0.1:9090") is None  # the override needs no DNS
    assert capsys.readouterr().err == ""


def _rollout_with_gate(status: dict[str, str] | None) -> dict[str, object]:
    analysis = {"templates": [{"templateName": "error-budget-burn"}], "args": [
        {"name": "service-name", "value": "auth-svc"},
        {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "auth-svc", "namespace": "aivo-system"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "auth-svc"}},
                     "template": {"metadata": {"labels": {"app": "auth-svc"}},
                                  "spec": {"containers": [{"name": "app", "image": "auth-svc:1.1.0"}]}},
                     "strategy": {"canary": {"steps": [{"setWeight": 10}, {"analysis": analysis}]}}},
            **({"status": status} if status else {})}


@pytest.mark.parametrize(("status", "code", "expect"), [
    pytest.param({"currentPodHash": "6f7b8c9d", "stableRS": "55aa66bb"}, 1, 'rollouts_pod_template_hash="6f7b8c9d"',
                 id="latest-hash-of-the-rollout"),
    pytest.param(None, 2, "has no ReplicaSet yet (status.currentPodHash is empty)", id="no-replicaset-yet"),
])
def test_analyze_template_rollout_gives_the_canary_hash(
        prometheus: FakePrometheus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        status: dict[str, str] | None, code: int, expect: str) -> None:
    from tests.cluster.conftest import start_cluster

    monkeypatch.delenv("KUBECONFIG", raising=False)
    cluster, stop = start_cluster(tmp_path)
    try:
        cluster.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aivo-system"}})
        created = cluster.store.create(_rollout_with_gate(None))
        if status:
            cluster.store.update_status({**created, "status": status})
        result = analyze("--template", "error-budget-burn", "--rollout", "auth-svc", "-n", "aivo-system", "--once",
                         "--prometheus-address", prometheus.url, "--home", str(tmp_path))
    finally:
        stop()
    assert result.exit_code == code, result.output
    if code == 1:  # measured (the fake's 0.998 burn fails the gate), with the rollout's values
        assert expect in prometheus.queries[0] and 'service="auth-svc"' in prometheus.queries[0]
    else:
        assert expect in result.output and prometheus.queries == []
