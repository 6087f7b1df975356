"""`since: release` across an operator restart on the local cluster: everything the judge needs is held
outside the operator process. The test's start is read back from the AnalysisRuns through the Kubernetes
API, and the request counts since it come from the cluster's traffic statistics over /traffic/v1, so a
new operator (new API client, new provider, no memory) continues the same test with the whole release's
counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rollouts.analysis.providers.sequential import SequentialMetricProvider
from rollouts.analysis.sequential.release_start import store_release_start
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.kube.traffic import ClusterTrafficSource
from rollouts.runtime.local.traffic import TrafficStats
from tests.cluster.conftest import start_cluster
from tests.sequential.test_release_restart import GATE2_START, RELEASE_START, _executor_measures, _stored_run


class AskedSource(ClusterTrafficSource):
    """The cluster's traffic API, noting whether the canary's first request was asked for."""

    first_seen_asked = False

    def first_seen(self, *args: Any, **kwargs: Any) -> float | None:
        self.first_seen_asked = True
        return super().first_seen(*args, **kwargs)


def _fill(stats: TrafficStats) -> None:
    # 310 s of traffic from the release's start: the canary 20 requests/s with 3 errors in every 100,
    # the stable version 180/s with 1 in 200.
    canary = stable = 0
    for second in range(310):
        at = RELEASE_START + second + 0.5
        for _ in range(20):
            stats.record("shop", "shop", "canary", 500 if canary % 100 < 3 else 200, 0.02, at=at)
            canary += 1
        for _ in range(180):
            stats.record("shop", "shop", "stable", 500 if stable % 200 == 0 else 200, 0.01, at=at)
            stable += 1


def _operator(kubeconfig: Path, now: float) -> tuple[KubeStore, AskedSource, SequentialMetricProvider]:
    kube = KubeStore(load_config(kubeconfig=str(kubeconfig)))
    source = AskedSource(kube)
    provider = SequentialMetricProvider(stats=source, clock=lambda: now, stored_start=store_release_start(kube.list))
    return kube, source, provider


def test_since_release_continues_after_an_operator_restart_from_kubernetes_objects(tmp_path: Path) -> None:
    stats = TrafficStats(clock=lambda: GATE2_START + 10)
    _fill(stats)
    cluster, stop = start_cluster(tmp_path, traffic=stats)
    try:
        # Operator 1 measures gate 1 four seconds into the release; the start is the canary's first request.
        kube, source, provider = _operator(cluster.kubeconfig, RELEASE_START + 4)
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        kube.create(_stored_run("shop-abc-2", RELEASE_START))
        stored = _executor_measures(kube, "shop-abc-2", provider, RELEASE_START + 4)
        first = stored["status"]["metricResults"][0]["measurements"][0]
        start = float(first["metadata"]["start"])
        assert start == RELEASE_START + 0.5 and source.first_seen_asked
        kube.close()

        # The operator restarts. Gate 2's run starts 300 s later; the new process knows nothing of gate 1.
        kube, source, provider = _operator(cluster.kubeconfig, GATE2_START + 10)
        kube.create(_stored_run("shop-abc-4", GATE2_START))
        stored = _executor_measures(kube, "shop-abc-4", provider, GATE2_START + 10)
        measurement = stored["status"]["metricResults"][0]["measurements"][0]
        kube.close()
    finally:
        stop()

    # The start came from the stored AnalysisRun (the cluster's first-request memory was not needed) ...
    assert float(measurement["metadata"]["start"]) == start and not source.first_seen_asked
    # ... and the counts cover the whole release, gate 1 included, not only gate 2's 10 seconds.
    expected = stats.window("shop", "shop", "canary", GATE2_START + 10 - start, GATE2_START + 10)
    assert expected.requests >= 20 * 309
    assert f'"canaryRequests":{expected.requests}' in measurement["value"], measurement["value"]
    assert f'"canaryEvents":{expected.errors}' in measurement["value"], measurement["value"]
