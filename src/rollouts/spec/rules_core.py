"""Semantic rules for the core kinds next to rollouts (Service, Ingress, Secret, ConfigMap), for
Experiments (parsed, not run), and the metadata rules every object shares."""

from __future__ import annotations

import base64
import binascii
import re

from pydantic import BaseModel

from rollouts.spec.core import Ingress, IngressBackend, Secret, Service
from rollouts.spec.experiment import Experiment
from rollouts.spec.inventory import Inventory
from rollouts.spec.problems import FieldPath, Finding, error, warning

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_metadata(model: BaseModel) -> list[Finding]:
    """metadata.name present and a valid Kubernetes name (generateName stands in for it)."""
    meta = getattr(model, "metadata", None)
    name = getattr(meta, "name", None)
    if not name:
        if getattr(meta, "generate_name", None):
            return []
        return [error(("metadata", "name"), "required (a lowercase name such as my-app)")]
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return [
            error(("metadata", "name"), f'"{name}" is not a valid name (lowercase letters, digits, "-" and ".", '
                  "starting and ending with a letter or digit)")
        ]
    namespace = getattr(meta, "namespace", None)
    if namespace is not None and (len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace)):
        return [error(("metadata", "namespace"), f'"{namespace}" is not a valid namespace name')]
    return []


def check_service(service: Service) -> list[Finding]:
    findings: list[Finding] = []
    for index, port in enumerate(service.spec.ports):
        if not 1 <= port.port <= 65535:
            findings.append(error(("spec", "ports", index, "port"), f"{port.port} is not between 1 and 65535"))
    if not service.spec.selector and service.spec.type != "ExternalName":
        findings.append(warning(("spec", "selector"), "no selector: the Service sends traffic to no pods"))
    return findings


def check_ingress(ingress: Ingress, inventory: Inventory) -> list[Finding]:
    findings: list[Finding] = []
    backends: list[tuple[FieldPath, IngressBackend]] = []
    if ingress.spec.default_backend is not None:
        backends.append((("spec", "defaultBackend"), ingress.spec.default_backend))
    for r, rule in enumerate(ingress.spec.rules):
        for p, path in enumerate(rule.http.paths if rule.http else []):
            backends.append((("spec", "rules", r, "http", "paths", p, "backend"), path.backend))
    for where, backend in backends:
        if (backend.service is None) == (backend.resource is None):
            findings.append(error(where, "set exactly one of service, resource"))
            continue
        if backend.service is not None:
            port = backend.service.port
            if port is None or (port.name is None) == (port.number is None):
                findings.append(error((*where, "service", "port"), "set exactly one of name, number"))
            name = backend.service.name
            if inventory.has_kind("Service") and inventory.find("Service", name, ingress.metadata.namespace) is None:
                findings.append(
                    warning((*where, "service", "name"), f'Service "{name}" is not in the input '
                            "(it must exist in the cluster)")
                )
    return findings


def check_secret(secret: Secret) -> list[Finding]:
    findings: list[Finding] = []
    for key, value in (secret.data or {}).items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            findings.append(error(("data", key), "not base64 (use stringData for plain text)"))
    return findings


def check_experiment(experiment: Experiment) -> list[Finding]:
    del experiment
    return [warning((), "parsed; experiments are not run by this version")]
