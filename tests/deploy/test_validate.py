"""Offline validation of what the install applies, and of the Argo objects users apply after it:
built-in kinds against Kubernetes' own schemas (kubernetes-validate, strict, its newest Kubernetes), the
Prometheus Operator kinds against a schema of the fields we use, and Argo's kinds against the CRD schemas
deploy/kubernetes ships, made strict the way the API server's fieldValidation=Strict is."""

from __future__ import annotations

import copy
import functools
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.conftest import REPO, shared_dir
from tests.deploy.manifests import KUSTOMIZE, ident, load_yaml, load_yaml_all, one, render

ARGO_GROUP = "argoproj.io/"
MONITORING = "monitoring.coreos.com/v1"


def _validate_builtin(obj: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(obj, latest_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{ident(obj)}: {'.'.join(str(p) for p in error.path)}: {error.message}"
    return None


@pytest.mark.parametrize("variant", ["cluster", "namespaced"])
def test_builtin_objects_valid_against_kubernetes_schemas_strict(variant: str) -> None:
    builtins = [o for o in render(variant) if not o["apiVersion"].startswith((ARGO_GROUP, MONITORING))]
    assert {o["kind"] for o in builtins} >= {"Deployment", "ServiceAccount", "Role", "RoleBinding",
                                              "CustomResourceDefinition", "Service", "ConfigMap"}
    errors = [e for e in map(_validate_builtin, builtins) if e]
    assert not errors, f"against Kubernetes {latest_version()}:\n" + "\n".join(errors)


@pytest.mark.parametrize(("path", "field"), [
    ("spec.template.spec.containers.0.securityContext", "readOnlyRootFilesytem"),
    ("spec.template.spec", "serviceAcountName"),
], ids=["misspelled-readonly-root", "misspelled-service-account"])
def test_strict_kubernetes_validation_rejects_a_misspelled_field(path: str, field: str) -> None:
    deployment = copy.deepcopy(one(render("cluster"), "Deployment", "rollouts-controller"))
    target: Any = deployment
    for part in path.split("."):
        target = target[int(part)] if part.isdigit() else target[part]
    target[field] = True
    assert _validate_builtin(deployment) is not None


# The Prometheus Operator's fields the install uses, closed so that a typo fails (their CRDs are not
# available offline; this follows monitoring.coreos.com/v1 as documented by the Prometheus Operator).
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                            "labels": _LABELS, "annotations": _LABELS}}
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": MONITORING}, "kind": {"const": "ServiceMonitor"}, "metadata": _METADATA,
            "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
                     "properties": {
                         "selector": {"type": "object", "additionalProperties": False,
                                      "properties": {"matchLabels": _LABELS}},
                         "endpoints": {"type": "array", "minItems": 1, "items": {
                             "type": "object", "additionalProperties": False, "required": ["port"],
                             "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                            "interval": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"}}}},
                     }},
        },
    },
    "PrometheusRule": {
        "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": MONITORING}, "kind": {"const": "PrometheusRule"}, "metadata": _METADATA,
            "spec": {"type": "object", "required": ["groups"], "additionalProperties": False, "properties": {
                "groups": {"type": "array", "items": {
                    "type": "object", "required": ["name", "rules"], "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "interval": {"type": "string"},
                                   "rules": {"type": "array", "items": {
                                       "type": "object", "required": ["expr"], "additionalProperties": False,
                                       "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                       "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                                                      "expr": {"type": "string"}, "for": {"type": "string"},
                                                      "keep_firing_for": {"type": "string"},
                                                      "labels": _LABELS, "annotations": _LABELS}}}}}}}},
        },
    },
}


@pytest.mark.parametrize("variant", ["cluster", "namespaced"])
def test_prometheus_operator_objects_valid(variant: str) -> None:
    objects = [o for o in render(variant) if o["apiVersion"] == MONITORING]
    assert sorted(o["kind"] for o in objects) == ["PrometheusRule", "ServiceMonitor"]
    for obj in objects:
        jsonschema.validate(obj, MONITORING_SCHEMAS[obj["kind"]])


def test_prometheus_operator_schema_rejects_a_misspelled_field() -> None:
    monitor = copy.deepcopy(one(render("cluster"), "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, MONITORING_SCHEMAS["ServiceMonitor"])


def _strict(schema: Any) -> Any:
    """The CRD's structural schema as the API server applies it with fieldValidation=Strict: an object
    with declared properties accepts no other field unless it preserves unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def _argo_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    validators = {}
    for path in sorted((KUSTOMIZE / "base" / "crds").glob("*-crd.yaml")):
        crd = load_yaml(path.read_text())
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            # metadata is typed `object` only; the API server checks it itself.
            schema["properties"]["metadata"] = {"type": "object"}
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            validators[key] = jsonschema.Draft7Validator(schema)
    return validators


def _argo_objects() -> list[tuple[str, dict[str, Any]]]:
    roots = [REPO / "infra", REPO / "examples"]
    shared = shared_dir()
    if shared is not None:
        roots.append(shared / "argo-examples")
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.yaml")):
            try:
                docs = load_yaml_all(path.read_text())
            except Exception:  # not every YAML file there is a manifest (simulation inputs, broken cases)
                continue
            found += [(f"{path.relative_to(root.parent)}:{ident(d)}", d) for d in docs
                      if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith(ARGO_GROUP)
                      and isinstance(d.get("metadata"), dict)]
    return found


def test_argo_objects_in_the_repository_valid_against_the_shipped_crds() -> None:
    objects = _argo_objects()
    assert len(objects) >= 10
    validators = _argo_validators()
    errors = []
    for where, obj in objects:
        validator = validators.get((obj["apiVersion"], obj["kind"]))
        if validator is None:
            errors.append(f"{where}: no CRD in deploy/kubernetes serves {obj['apiVersion']} {obj['kind']}")
            continue
        errors += [f"{where}: {'.'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(obj)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda r: r["spec"]["strategy"]["canary"].update(stepz=[]), "stepz"),
    (lambda r: r["spec"].update(replicas="three"), "replicas"),
], ids=["unknown-field", "wrong-type"])
def test_shipped_crd_schema_rejects_a_broken_rollout(mutate: Any, field: str) -> None:
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "r"}},
                        "template": {"metadata": {"labels": {"app": "r"}},
                                     "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                        "strategy": {"canary": {"steps": [{"setWeight": 20}]}}}}
    validator = _argo_validators()[("argoproj.io/v1alpha1", "Rollout")]
    assert not list(validator.iter_errors(rollout))
    mutate(rollout)
    assert any(field in e.message or field in map(str, e.path) for e in validator.iter_errors(rollout))
