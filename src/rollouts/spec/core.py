"""The core Kubernetes kinds the runtimes use: Service, Secret, ConfigMap, Ingress (only the fields a
runtime needs are typed; other valid Kubernetes fields are kept)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rollouts.spec.base import LooseModel, Model
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.meta import ObjectMeta


class ServicePort(LooseModel):
    name: str | None = None
    port: int
    target_port: IntOrStr | None = None
    protocol: str | None = None
    node_port: int | None = None


class ServiceSpec(LooseModel):
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(default_factory=list)
    type: str | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")


class Service(Model):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: dict[str, Any] | None = None


class Secret(Model):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Secret"] = "Secret"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    type: str | None = None
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None
    immutable: bool | None = None


class ConfigMap(Model):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    data: dict[str, str] | None = None
    binary_data: dict[str, str] | None = None
    immutable: bool | None = None


class ServiceBackendPort(Model):
    name: str | None = None
    number: int | None = None


class IngressServiceBackend(Model):
    name: str
    port: ServiceBackendPort | None = None


class IngressBackend(Model):
    service: IngressServiceBackend | None = None
    resource: dict[str, Any] | None = None


class HTTPIngressPath(Model):
    path: str | None = None
    path_type: str | None = None
    backend: IngressBackend


class HTTPIngressRuleValue(Model):
    paths: list[HTTPIngressPath] = Field(default_factory=list)


class IngressRule(Model):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None


class IngressTLS(Model):
    hosts: list[str] | None = None
    secret_name: str | None = None


class IngressSpec(Model):
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    rules: list[IngressRule] = Field(default_factory=list)
    tls: list[IngressTLS] | None = None


class Ingress(Model):
    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["Ingress"] = "Ingress"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: IngressSpec = Field(default_factory=IngressSpec)
    status: dict[str, Any] | None = None

    def backend_services(self) -> list[str]:
        """Names of every Service this Ingress sends traffic to."""
        names = []
        if self.spec.default_backend and self.spec.default_backend.service:
            names.append(self.spec.default_backend.service.name)
        for rule in self.spec.rules:
            for path in rule.http.paths if rule.http else []:
                if path.backend.service:
                    names.append(path.backend.service.name)
        return names
