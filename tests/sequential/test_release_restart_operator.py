"""`since: release` across a real operator restart, in the shape that ships: a cluster started with
`rollouts cluster up`, an operator process over its kubeconfig, traffic through the cluster's ingress.

The operator is SIGKILLed while the release's first step gate is measuring. While no operator runs, the
test start recorded in that run's status is moved (through the Kubernetes API) to a value no process
could know otherwise: not the canary's first request (the cluster's traffic statistics remember that, so
a fallback to them would be invisible), not anything the dead process held. The restarted operator's
measurements, in the first gate and in the next gate's new AnalysisRun, must carry exactly that start,
and the second gate's counts must cover the whole release, the first gate's requests included."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from tests.e2e.harness import Load, RemoteCluster, wait_until
from tests.e2e.manifests import shop_services

pytestmark = pytest.mark.integration

MAX_SAMPLES = 40  # each gate passes after this many canary requests of its own step without a regression
SHIFT = 0.25  # seconds the stored start is moved by while no operator runs
CANARY = "yellow:200"  # the Load's key for an answer of the canary's image

# The shipped sequential-gate's shape (infra/rollouts/analysis-templates.yaml), at a scale a test can run.
MANIFEST = f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: sequential}}
spec:
  metrics:
  - name: errors
    interval: 1s
    count: 60
    failureLimit: 0
    inconclusiveLimit: 60
    consecutiveSuccessLimit: 1
    successCondition: result == result && result["decided"] && !result["regression"]
    failureCondition: result == result && result["regression"]
    provider:
      plugin:
        rollouts/sequential: {{test: errors, alpha: 0.01, minSamples: 20, maxSamples: {MAX_SAMPLES}, since: release}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: shop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: shop
        image: rollouts-demo:blue
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      scaleDownDelaySeconds: 2
      trafficRouting:
        nginx: {{stableIngress: shop}}
      steps:
      - setWeight: 50
      - analysis: {{templates: [{{templateName: sequential}}]}}
      - setWeight: 60
      - analysis: {{templates: [{{templateName: sequential}}]}}
""" + shop_services()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RemoteCluster]:
    with RemoteCluster(tmp_path) as running:
        running.start_operator("operator")
        yield running


def _runs(cluster: RemoteCluster) -> list[dict[str, Any]]:
    with cluster.store() as store:
        runs = store.list("AnalysisRun", "default")
    return sorted(runs, key=lambda run: str((run.get("status") or {}).get("startedAt") or "~"))


def _measurements(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for result in (run.get("status") or {}).get("metricResults") or []
            for m in result.get("measurements") or []]


def _measuring(cluster: RemoteCluster) -> dict[str, Any] | None:
    for run in _runs(cluster):
        if (run.get("status") or {}).get("phase") == "Running" and _measurements(run):
            return run
    return None


def test_restarted_operator_continues_the_release_test_from_the_start_stored_in_the_analysis_run(
        cluster: RemoteCluster, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    cluster.cli("apply", "-f", str(manifest))
    cluster.cli("status", "shop", "--timeout", "60s")
    port = int(wait_until(lambda: ((cluster.read("Ingress", "shop") or {}).get("metadata", {})
                                   .get("annotations", {}).get("rollouts.io/port")), 20, "the ingress port"))
    with Load(port, rate=40) as load:
        cluster.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        first = wait_until(lambda: _measuring(cluster), 60, f"gate 1 to be measuring\n{cluster.tails()}",
                           interval=0.05)
        cluster.signal_operator("operator", signal.SIGKILL)

        # No operator runs: move the recorded start of every measurement of gate 1, through the API.
        kube = KubeStore(load_config(kubeconfig=str(cluster.kubeconfig)), user_agent="test-start-mover")
        try:
            run = kube.get("AnalysisRun", "default", first["metadata"]["name"])
            taken = _measurements(run)
            assert taken and {m["metadata"]["since"] for m in taken} == {"release"}, taken
            real = {float(m["metadata"]["start"]) for m in taken}
            assert len(real) == 1, taken  # one test: every measurement of the run names the same start
            moved = round(real.pop() + SHIFT, 3)
            for measurement in taken:
                measurement["metadata"]["start"] = repr(moved)
            kube.update_status(run)
        finally:
            kube.close()

        # Before the restart, wait (with a deadline, whatever rate the loaded machine manages) until the
        # canary has answered MAX_SAMPLES requests in whole seconds after the moved start: the counts are
        # per-second buckets, and the second holding the start may be left out of a count. From then on
        # every count from that start holds at least MAX_SAMPLES canary requests, so the second gate's
        # opening can hold them only by counting from the release's start (its own run has seen ~none).
        whole_second = math.floor(moved) + 2  # +2: a request answered after it was counted after +1
        wait_until(lambda: time.time() >= whole_second, 10, "the second after the moved start")
        counted = load.counts[CANARY]
        wait_until(lambda: load.counts[CANARY] >= counted + MAX_SAMPLES, 120,
                   f"{MAX_SAMPLES} canary requests after the moved start ({dict(load.counts)})")

        cluster.start_operator("operator")
        result = cluster.cli("status", "shop", "--timeout", "90s", check=False, timeout=120)
        assert result.returncode == 0, (result.stdout + result.stderr + cluster.tails()
                                        + "\n".join(m["value"] + " " + json.dumps(m["metadata"])
                                                     for r in _runs(cluster) for m in _measurements(r)[-3:]))

    gate1, gate2 = _runs(cluster)
    assert gate1["metadata"]["name"] == first["metadata"]["name"]
    assert [r["status"]["phase"] for r in (gate1, gate2)] == ["Successful", "Successful"]
    before_kill = len(taken)
    after_restart = _measurements(gate1)[before_kill:] + _measurements(gate2)
    assert _measurements(gate2), gate2
    # Every measurement the new operator took names the moved start: it read it back from the stored
    # AnalysisRun (the cluster's first-request memory, or the old process', would give the unmoved one).
    starts = {float(m["metadata"]["start"]) for m in after_restart}
    assert starts == {moved}, [m["metadata"] for m in after_restart]
    # The second gate counts the whole release from that start: its first measurement, taken as its run
    # began, already holds the MAX_SAMPLES canary requests waited for before the restart.
    opening = json.loads(_measurements(gate2)[0]["value"])
    assert opening["canaryRequests"] >= MAX_SAMPLES, opening
    closing = json.loads(_measurements(gate2)[-1]["value"])
    assert closing["decided"] and not closing["regression"], closing
