"""An in-process stand-in for the ReplicaSet and Job controllers and the kubelets, over the Kubernetes API of a
test cluster: each ReplicaSet of a namespace has its pods (fresh names, so a restart's evictions are replaced),
ready, and a status saying so; each Job completes a second after it was first seen. The operator tests run no
runtime, so without this no release would ever become available."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from tests.cluster.conftest import Cluster

HASH = "rollouts-pod-template-hash"


class Kubelet(threading.Thread):
    """Start it, and set `halt` (then join) when done."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        super().__init__(daemon=True)
        self.store = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
        self.namespace = namespace
        self.halt = threading.Event()
        self.first_seen: dict[str, float] = {}

    def run(self) -> None:
        try:
            while not self.halt.wait(0.05):
                for rs in self.store.list("ReplicaSet", self.namespace):
                    self._settle(rs)
                for job in self.store.list("Job", self.namespace):
                    self._complete(job)
        finally:
            self.store.close()

    def _settle(self, rs: dict[str, Any]) -> None:
        want = int(rs["spec"].get("replicas") or 0)
        labels = rs["spec"]["template"]["metadata"]["labels"]
        pods = self.store.list("Pod", self.namespace, label_selector=f"{HASH}={labels[HASH]}")
        for pod in pods[want:]:
            self.store.delete("Pod", self.namespace, pod["metadata"]["name"])
        for _ in range(len(pods), want):
            pod = self.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": f"{rs['metadata']['name']}-{uuid.uuid4().hex[:5]}", "namespace": self.namespace,
                "labels": dict(labels),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"],
                                     "uid": rs["metadata"].get("uid", ""), "controller": True}]},
                "spec": rs["spec"]["template"]["spec"]})
            # Status is the kubelet's, written through /status (a create drops it).
            self.store.patch("Pod", self.namespace, pod["metadata"]["name"], {"status": {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, subresource="status")
        ready = {"replicas": want, "readyReplicas": want, "availableReplicas": want, "fullyLabeledReplicas": want,
                 "observedGeneration": rs["metadata"].get("generation")}
        if {k: (rs.get("status") or {}).get(k) for k in ready} != ready:
            self.store.patch("ReplicaSet", self.namespace, rs["metadata"]["name"], {"status": ready},
                             subresource="status")

    def _complete(self, job: dict[str, Any]) -> None:
        # A Job runs for a second: long enough for an abort to cancel one.
        seen = self.first_seen.setdefault(job["metadata"]["uid"], time.monotonic())
        if (job.get("status") or {}).get("conditions") or time.monotonic() - seen < 1.0:
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.store.patch("Job", self.namespace, job["metadata"]["name"], {"status": {
            "startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}},
            subresource="status")
