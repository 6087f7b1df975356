"""The operator's RBAC table is exactly what it uses: `run_controller` (the real composition: informers, work
queues, leader election, job and web metrics, notifications) drives releases through every flow that needs a
permission — canary over an NGINX Ingress with a step analysis (web metric with a secretKeyRef arg, job metric,
a ClusterAnalysisTemplate), pause and promote, abort, rollback, restart, history limits, blue/green with a
preview Service — and every API call of its clients is recorded. Every call is granted by the table (nothing
missing) and every grant in the table was used (nothing extra), but for the admission-only grants named below.

Also here: an analysis that cannot be merged is stored as an Error run that says why (an API server drops
status on create, so the operator writes it after)."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from lightkube.core.generic_client import GenericAsyncClient

from rollouts.api import actions
from rollouts.controller.service import Scope, run_controller
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.kube.permissions import triples
from rollouts.store.protocol import NotFound
from tests.cluster.conftest import Cluster, start_cluster
from tests.controller.kubelet import Kubelet
from tests.controller.test_operator import ApiCalls

# Granted for clusters whose OwnerReferencesPermissionEnforcement admission plugin checks that whoever sets
# blockOwnerDeletion on an object may update its owner's finalizers: a permission check, never a call.
ADMISSION_ONLY = {("argoproj.io", "rollouts/finalizers", "update"),
                  ("argoproj.io", "analysisruns/finalizers", "update")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("rbac-home"))
    yield found
    stop()


@pytest.fixture(scope="module")
def metric_port() -> Iterator[int]:
    """A web metric source answering {"value": 1}."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"value": 1}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


class OperatorCalls(ApiCalls):
    """Every request of the operator's clients: its KubeStore (stdlib HTTP) and its lightkube clients
    (informers, leader election). The test's own KubeStores are left out, and so are non-resource paths: the
    probe for the local cluster's /traffic/v1 statistics, which a real cluster answers 403 or 404 (the operator
    then reads Prometheus)."""

    def record(self, monkeypatch: pytest.MonkeyPatch, operator_store: KubeStore, api: str) -> None:
        real_request = KubeStore.request
        real_send = GenericAsyncClient.send

        stale_once: set[str] = set()

        def request(store: KubeStore, method: str, path: str, params: Any = None, body: Any = None,
                    *args: Any, **kwargs: Any) -> Any:
            # The operator's writes go through a fenced copy of its store (same config) when it elects a leader.
            if store.config is operator_store.config and path.startswith(("/api/", "/apis/")):
                self.seen.add(self.triple(method, path, params or {}))
                resource = self.triple(method, path, params or {})[1]
                if method == "PUT" and (resource.endswith("/status") or resource == "configmaps") \
                        and resource not in stale_once:
                    # The first status write of each kind, and the first update of a release history
                    # ConfigMap (read from the operator's cache), carry a stale resourceVersion: the API
                    # server answers 409 and the operator must re-read the object (its `get`) and try again.
                    stale_once.add(resource)
                    body = {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
            return real_request(store, method, path, params, body, *args, **kwargs)

        async def send(client: GenericAsyncClient, req: httpx.Request, *args: Any, **kwargs: Any) -> Any:
            if str(req.url).startswith(api) and req.url.path.startswith(("/api/", "/apis/")):
                self.seen.add(self.triple(req.method, req.url.path, dict(req.url.params)))
            return await real_send(client, req, *args, **kwargs)

        monkeypatch.setattr(KubeStore, "request", request)
        monkeypatch.setattr(GenericAsyncClient, "send", send)


def _manifests(namespace: str, port: int, *, cluster_metric: str = "cluster-web") -> list[dict[str, Any]]:
    text = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: api, namespace: {namespace}}}
stringData: {{token: not-for-logs}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-stable, namespace: {namespace}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-canary, namespace: {namespace}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: {namespace}}}
spec:
  rules:
  - host: web.local
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web-stable, port: {{number: 80}}}}}}}}]}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: gate, namespace: {namespace}}}
spec:
  args:
  - name: token
    valueFrom: {{secretKeyRef: {{name: api, key: token}}}}
  metrics:
  - name: web
    interval: 1s
    count: 3
    successCondition: result == 1
    provider:
      web:
        url: http://127.0.0.1:{port}/value
        headers: [{{key: Authorization, value: "Bearer {{{{args.token}}}}"}}]
        jsonPath: "{{$.value}}"
  - name: job
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{{name: check, image: busybox, command: [sh, -c, "exit 0"]}}]
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {{name: {namespace}-gate}}
spec:
  metrics:
  - name: {cluster_metric}
    successCondition: result == 1
    provider:
      web:
        url: http://127.0.0.1:{port}/value
        jsonPath: "{{$.value}}"
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 2
  revisionHistoryLimit: 1
  analysis: {{successfulRunHistoryLimit: 1, unsuccessfulRunHistoryLimit: 1}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: app, image: "web:1", ports: [{{containerPort: 8080}}]}}]}}
  strategy:
    canary:
      stableService: web-stable
      canaryService: web-canary
      scaleDownDelaySeconds: 1
      abortScaleDownDelaySeconds: 1
      trafficRouting: {{nginx: {{stableIngress: web}}}}
      steps:
      - setWeight: 20
      - analysis:
          templates: [{{templateName: gate}}, {{templateName: {namespace}-gate, clusterScope: true}}]
      - pause: {{}}
      - setWeight: 60
---
apiVersion: v1
kind: Service
metadata: {{name: bg-active, namespace: {namespace}}}
spec: {{selector: {{app: bg}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: bg-preview, namespace: {namespace}}}
spec: {{selector: {{app: bg}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: bg, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: bg}}}}
  template:
    metadata: {{labels: {{app: bg}}}}
    spec: {{containers: [{{name: app, image: "bg:1"}}]}}
  strategy:
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      autoPromotionEnabled: false
      prePromotionAnalysis: {{templates: [{{templateName: {namespace}-gate, clusterScope: true}}]}}
"""
    return [doc for doc in yaml.safe_load_all(text) if doc]


class Releases:
    """The test's own client: applies objects, issues the runbook's verbs, waits for states."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
        self.namespace = namespace

    def status(self, name: str) -> dict[str, Any]:
        try:
            return dict(self.store.get("Rollout", self.namespace, name).get("status") or {})
        except NotFound:
            return {}

    def until(self, check: Callable[[], bool], what: str, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached; web={_brief(self.status('web'))} bg={_brief(self.status('bg'))}")
            time.sleep(0.05)

    def healthy_at_latest(self, name: str) -> bool:
        status = self.status(name)
        return status.get("phase") == "Healthy" and status.get("stableRS") == status.get("currentPodHash")


def _with_operator(cluster: Cluster, namespace: str, operator_store: KubeStore, flows: Callable[[], None]) -> None:
    async def body() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_controller(operator_store, stop=stop, scope=Scope(
            namespace=namespace, lease_namespace=namespace, identity="rbac-test")))
        nodes = Kubelet(cluster, namespace)
        nodes.start()
        try:
            await asyncio.to_thread(flows)
        finally:
            stop.set()
            nodes.halt.set()
            await asyncio.wait_for(task, 20)
            nodes.join(5)
    asyncio.run(asyncio.wait_for(body(), 240))


def test_operator_uses_every_rbac_permission_and_no_other(cluster: Cluster, metric_port: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = "rbac-flows"
    operator_store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    calls = OperatorCalls()
    calls.record(monkeypatch, operator_store, operator_store.config.server)
    releases = Releases(cluster, namespace)
    cli = releases.store

    def flows() -> None:
        for doc in _manifests(namespace, metric_port):
            cli.create(doc)
        releases.until(lambda: releases.healthy_at_latest("web") and releases.healthy_at_latest("bg"), "first release")
        # Canary through the step analysis (web + job + cluster template), paused, promoted.
        actions.set_image(cli, namespace, "web", "app", "web:2")
        releases.until(lambda: (releases.status("web").get("phase"), releases.status("web").get("currentStepIndex"))
                       == ("Paused", 2), "canary paused after its analysis")
        actions.promote(cli, namespace, "web")
        releases.until(lambda: releases.healthy_at_latest("web"), "canary promoted")
        # A third revision aborted during its analysis (the run is terminated, its running Job deleted), then
        # rolled back to the stable one; revisionHistoryLimit 1 retires the first revision's ReplicaSet.
        earlier_jobs = {job["metadata"]["name"] for job in cli.list("Job", namespace)}
        actions.set_image(cli, namespace, "web", "app", "web:3")

        def running_job() -> str | None:
            return next((job["metadata"]["name"] for job in cli.list("Job", namespace)
                         if job["metadata"]["name"] not in earlier_jobs and not (job.get("status") or {}).get(
                             "conditions")), None)
        releases.until(lambda: running_job() is not None, "third revision's job metric running")
        cancelled = running_job()
        actions.abort(cli, namespace, "web")
        releases.until(lambda: releases.status("web").get("abort") is True
                       and releases.status("web").get("phase") == "Degraded", "third revision aborted")
        releases.until(lambda: cancelled not in {job["metadata"]["name"] for job in cli.list("Job", namespace)},
                       "the cancelled measurement's Job deleted")
        actions.set_image(cli, namespace, "web", "app", "web:2")
        releases.until(lambda: releases.healthy_at_latest("web") and not releases.status("web").get("abort"),
                       "rolled back to the stable revision")
        releases.until(lambda: len(cli.list("ReplicaSet", namespace, label_selector="app=web")) <= 2,
                       "old ReplicaSets beyond the history limit deleted")
        # Paused and resumed by hand, twice.
        for _ in range(2):
            actions.pause(cli, namespace, "web")
            releases.until(lambda: releases.status("web").get("phase") == "Paused", "paused by hand")
            actions.resume(cli, namespace, "web")
            releases.until(lambda: releases.status("web").get("phase") == "Healthy", "resumed")
        # Restart: every pod replaced.
        at = datetime.now(UTC)
        actions.restart(cli, namespace, "web", at)
        releases.until(lambda: releases.status("web").get("restartedAt") is not None, "restart finished", timeout=20)
        # Blue/green: preview, pre-promotion analysis, promote.
        actions.set_image(cli, namespace, "bg", "app", "bg:2")
        releases.until(lambda: releases.status("bg").get("phase") == "Paused", "blue/green preview paused")
        actions.promote(cli, namespace, "bg")
        releases.until(lambda: releases.healthy_at_latest("bg"), "blue/green promoted")
        # A rollout the operator cannot carry out (its canary Service is missing) says so again on each retry:
        # the same event, its count bumped (the events patch).
        cli.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "metadata": {"name": "broken", "namespace": namespace},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "broken"}},
                             "template": {"metadata": {"labels": {"app": "broken"}},
                                          "spec": {"containers": [{"name": "app", "image": "broken:1"}]}},
                             "strategy": {"canary": {"stableService": "web-stable", "canaryService": "nowhere",
                                                     "steps": [{"setWeight": 50}]}}}})
        releases.until(lambda: any(e["reason"] == "ActionFailed" and int(e.get("count") or 1) >= 2
                                   for e in cli.list("Event", namespace)), "the failure said again", timeout=30)

    try:
        _with_operator(cluster, namespace, operator_store, flows)
    finally:
        cli.close()
        operator_store.close()
    table = triples()
    assert calls.seen - table == set(), f"calls the RBAC table does not grant: {sorted(calls.seen - table)}"
    unused = table - calls.seen - ADMISSION_ONLY
    assert unused == set(), f"grants no flow used (drop them from the table): {sorted(unused)}"


def test_an_unmergeable_analysis_is_stored_as_an_error_run_saying_why(cluster: Cluster, metric_port: int) -> None:
    namespace = "rbac-duplicate"
    operator_store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    releases = Releases(cluster, namespace)
    cli = releases.store

    def flows() -> None:
        # The cluster template's metric has the name of one in `gate`: the two cannot be merged into one run.
        for doc in _manifests(namespace, metric_port, cluster_metric="web"):
            cli.create(doc)
        releases.until(lambda: releases.healthy_at_latest("web"), "first release")
        actions.set_image(cli, namespace, "web", "app", "web:2")
        releases.until(lambda: releases.status("web").get("abort") is True, "aborted on the unmergeable analysis")

    try:
        _with_operator(cluster, namespace, operator_store, flows)
        [run] = cli.list("AnalysisRun", namespace)
    finally:
        cli.close()
        operator_store.close()
    assert (run["status"]["phase"], run["status"]["message"]) == (
        "Error", "Analysis spec invalid: two metrics have the same name 'web'")


def _brief(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status.get(k) for k in ("phase", "message", "currentStepIndex", "abort", "restartedAt", "stableRS",
                                       "currentPodHash")}
