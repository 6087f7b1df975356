"""A Secret's value never shows outside the Secret: an AnalysisTemplate takes it as an argument
(valueFrom.secretKeyRef) into a web metric's Authorization header, the operator measures with it (the
metric server sees it, and one endpoint even echoes it back in an error), and then the value is nowhere in
the cluster's and the operator's logs, the Events, any other object in the store (every kind, every change
recorded), `rollouts get analysisrun -o yaml`, the dashboard's JSON or the operator's /metrics."""

from __future__ import annotations

import base64
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollouts.demo import releases
from tests.e2e.harness import ControllerProcess, wait_until
from tests.providers.conftest import Reply, ScriptedServer, Seen, scripted_server

pytestmark = pytest.mark.integration

SECRET = f"h8-secret-{secrets.token_hex(8)}"
FORMS = (SECRET, base64.b64encode(SECRET.encode()).decode(), SECRET[len("h8-secret-"):])


def _measure(seen: Seen) -> Reply:
    given = seen.headers.get("Authorization", "")
    return Reply(200, {"value": 1 if given == f"Bearer {SECRET}" else 0})


def _echo(seen: Seen) -> Reply:
    """A hostile or buggy source: the credential comes back in an error body."""
    return Reply(500, f"token {seen.headers.get('Authorization', '')!r} rejected")


@pytest.fixture
def metric_server() -> Iterator[ScriptedServer]:
    with scripted_server({"/ok": _measure, "/echo": _echo}) as server:
        yield server


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
  # A dry run: the echo's Error does not end the run before `ok` is measured (it would terminate it).
  dryRun: [{{metricName: echo}}]
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


def test_secret_values_never_leave_the_secret(tmp_path: Path, metric_server: ScriptedServer) -> None:
    ctl = ControllerProcess(tmp_path / "home")
    ctl.start()
    try:
        path = tmp_path / "gate.yaml"
        path.write_text(manifests(metric_server.port))
        ctl.cli("apply", "-f", str(path))
        ctl.cli("create", "analysisrun", "--from", "secret-gate", "--name", "secret-run")

        def finished() -> dict[str, Any] | None:
            run = ctl.store().get("AnalysisRun", "default", "secret-run")
            status = run.get("status") or {}
            return run if status.get("phase") in ("Successful", "Failed", "Error", "Inconclusive") else None

        run = wait_until(finished, 60, "the analysis run to end")
        # The measurements did use the secret.
        assert f"Bearer {SECRET}" in [seen.headers.get("Authorization") for seen in metric_server.seen]
        measured = {m["name"]: m for m in run["status"]["metricResults"]}
        assert [m["value"] for m in measured["ok"]["measurements"]] == ["1", "1"], measured
        assert measured["echo"]["phase"] == "Error", measured
        assert run["status"]["phase"] == "Successful", run["status"]

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
    rollout.write_text(releases.to_yaml(releases.rollout("shop", {"canary": {"steps": [{"pause": {}}]}}, replicas=0,
                                                         namespace="default")))
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
