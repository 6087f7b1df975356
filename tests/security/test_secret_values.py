"""A Secret's value never shows outside the Secret: an AnalysisTemplate takes it as an argument
(valueFrom.secretKeyRef) into a web metric's Authorization header, the operator measures with it (the
metric server sees it, and one endpoint even echoes it back in an error), and then the value is nowhere in
the cluster's and the operator's logs, the Events, any other object in the store (every kind, every change
recorded), `rollouts get analysisrun -o yaml`, the dashboard's JSON or the operator's /metrics."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import ControllerProcess, wait_until

pytestmark = pytest.mark.integration

SECRET = f"h8-secret-{secrets.token_hex(8)}"
FORMS = (SECRET, base64.b64encode(SECRET.encode()).decode(), SECRET[len("h8-secret-"):])


class MetricServer(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        given = self.headers.get("Authorization", "")
        MetricServer.seen.append(given)
        if self.path == "/echo":  # a hostile or buggy source: the credential comes back in an error body
            body, code = f"token {given!r} rejected".encode(), 500
        else:
            body, code = json.dumps({"value": 1 if given == f"Bearer {SECRET}" else 0}).encode(), 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if code == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def metric_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        thread.join(5)


def manifests(port: int) -> str:
    header = '[{key: Authorization, value: "Bearer {{args.api-token}}"}]'
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: gate-credentials, namespace: default}}
stringData: {{token: {SECRET}}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: secret-gate, namespace: default}}
spec:
  args:
  - name: api-token
    valueFrom: {{secretKeyRef: {{name: gate-credentials, key: token}}}}
  metrics:
  - name: ok
    count: 2
    interval: 1s
    successCondition: result == 1
    provider:
      web: {{url: "http://127.0.0.1:{port}/ok", jsonPath: "{{$.value}}", headers: {header}}}
  - name: echo
    count: 1
    consecutiveErrorLimit: 0
    successCondition: result == 1
    provider:
      web: {{url: "http://127.0.0.1:{port}/echo", jsonPath: "{{$.value}}", headers: {header}}}
"""


def leaks(text: str) -> list[str]:
    return [form for form in FORMS if form in text]


def test_secret_values_never_leave_the_secret(tmp_path: Path, metric_server: int) -> None:
    ctl = ControllerProcess(tmp_path / "home")
    ctl.start()
    try:
        path = tmp_path / "gate.yaml"
        path.write_text(manifests(metric_server))
        ctl.cli("apply", "-f", str(path))
        ctl.cli("create", "analysisrun", "--from", "secret-gate", "--name", "secret-run")

        def finished() -> dict[str, Any] | None:
            run = ctl.store().get("AnalysisRun", "default", "secret-run")
            status = run.get("status") or {}
            return run if status.get("phase") in ("Successful", "Failed", "Error", "Inconclusive") else None

        run = wait_until(finished, 60, "the analysis run to end")
        assert f"Bearer {SECRET}" in MetricServer.seen  # the measurement did use the secret
        measured = {m["name"]: m for m in run["status"]["metricResults"]}
        assert measured["ok"]["measurements"][0]["value"] == "1"
        assert measured["echo"]["phase"] == "Error"

        pages = _dashboard(ctl)
        found: dict[str, list[str]] = {}
        # Every object and every recorded change of the store, but the Secret itself.
        with sqlite3.connect(ctl.home / "state.db") as db:
            rows = db.execute("SELECT kind, namespace, name, body FROM objects WHERE kind != 'Secret' "
                              "UNION ALL SELECT kind, namespace, name, body FROM changes WHERE kind != 'Secret'")
            for kind, namespace, name, body in rows:
                if leaks(body):
                    found[f"store {kind} {namespace}/{name}"] = leaks(body)
        kinds = {k for (k,) in sqlite3.connect(ctl.home / "state.db").execute("SELECT DISTINCT kind FROM objects")}
        assert {"AnalysisRun", "AnalysisTemplate", "Rollout", "Secret"} <= kinds
        for name in ("analysisrun", "events", "analysistemplate"):
            shown = ctl.cli("get", name, "-A", "-o", "yaml").stdout
            if leaks(shown):
                found[f"rollouts get {name} -o yaml"] = leaks(shown)
        for log in [ctl.log, *sorted((ctl.home / "logs").rglob("*.log"))]:
            if leaks(log.read_text(errors="replace")):
                found[str(log.relative_to(ctl.home))] = leaks(log.read_text(errors="replace"))
        scrape = httpx.get(f"http://{ctl.metrics_address}/metrics", timeout=10).text
        if leaks(scrape):
            found["/metrics"] = leaks(scrape)
        for path_, text in pages.items():
            if leaks(text):
                found[f"dashboard {path_}"] = leaks(text)
        assert found == {}
    finally:
        ctl.stop_leaving_no_pods()


def _dashboard(ctl: ControllerProcess) -> dict[str, str]:
    """The dashboard's JSON for a rollout owning the run (set as its owner, as the controller's runs are)."""
    from fastapi.testclient import TestClient

    from rollouts.api.app import create_app
    from tests.dashboard.helpers import AUTH, TOKEN, kube_factory

    rollout = ctl.home / "rollout.yaml"
    rollout.write_text("""
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop, namespace: default}
spec:
  replicas: 0
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: shop, image: "rollouts-demo:blue"}]}
  strategy: {canary: {steps: [{pause: {}}]}}
""")
    ctl.cli("apply", "-f", str(rollout))
    store = ctl.store()
    owner = store.get("Rollout", "default", "shop")
    store.patch("AnalysisRun", "default", "secret-run", {"metadata": {"ownerReferences": [{
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "shop",
        "uid": owner["metadata"]["uid"], "controller": True}]}})
    app = create_app(kube_factory(ctl.home / "kubeconfig"), token=TOKEN, bind_host="127.0.0.1")
    pages: dict[str, str] = {}
    with TestClient(app, base_url="http://127.0.0.1:3100", headers=AUTH) as http:
        for path in ("/api/v1/rollouts", "/api/v1/rollouts/default/shop", "/api/v1/rollouts/default/shop/events",
                     "/api/v1/rollouts/default/shop/analysisruns"):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text)
            pages[path] = answer.text
    assert "secret-run" in pages["/api/v1/rollouts/default/shop/analysisruns"]
    return pages
