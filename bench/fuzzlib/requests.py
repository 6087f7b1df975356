"""Raw HTTP requests to the local cluster's API server: where a fuzzed object is sent, and how the answer is
judged (2xx accepted, 4xx a clean refusal, anything else -- a 5xx above all -- a crash)."""

from __future__ import annotations

from dataclasses import dataclass

# Collection paths of the kinds a manifest can carry ({ns}: the namespace); kube-apiserver's URL layout.
COLLECTIONS: dict[str, str] = {
    "Rollout": "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts",
    "AnalysisTemplate": "/apis/argoproj.io/v1alpha1/namespaces/{ns}/analysistemplates",
    "ClusterAnalysisTemplate": "/apis/argoproj.io/v1alpha1/clusteranalysistemplates",
    "AnalysisRun": "/apis/argoproj.io/v1alpha1/namespaces/{ns}/analysisruns",
    "Experiment": "/apis/argoproj.io/v1alpha1/namespaces/{ns}/experiments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Namespace": "/api/v1/namespaces",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}
NAMESPACES = ["fuzz", "fuzz", "fuzz", "default", "kube-system", "Bad_NS", "x" * 70, "%2e%2e", "ns%00x"]
WRITE_TYPES = ["application/json", "application/json", "application/yaml", "application/json; charset=utf-8",
               "text/plain", "", "application/vnd.kubernetes.protobuf", "application/x-www-form-urlencoded"]
PATCH_TYPES = ["application/merge-patch+json", "application/json-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml", "application/json",
               "application/yaml"]
QUERIES = ["", "", "", "", "?dryRun=All", "?dryRun=Bogus", "?fieldManager=fuzz", "?fieldManager=fuzz&force=true",
           "?fieldValidation=Strict", "?pretty=true"]
SUBRESOURCES = ["", "", "", "", "", "/status", "/scale", "/log", "/bogus"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    content_type: str
    body: bytes

    def describe(self) -> str:
        return f"{self.method} {self.path} ({self.content_type or 'no content type'}, {len(self.body)} bytes)"


def collection(kind: str, namespace: str) -> str:
    template = COLLECTIONS.get(kind, "/apis/example.com/v1/namespaces/{ns}/frobs")
    return template.format(ns=namespace)


def judge(status: int) -> str:
    """The fuzzer's verdict on one answer: "pass" (2xx), "problem" (4xx, a clean refusal), else "traceback"."""
    if 200 <= status < 300:
        return "pass"
    if 400 <= status < 500:
        return "problem"
    return "traceback"
