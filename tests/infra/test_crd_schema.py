"""Checks the runbook's Argo Rollouts configuration in infra/rollouts against Argo's CRD schemas.

Three layers:
- schema: every argoproj.io document validates against the openAPIV3Schema of Argo's CRD for its kind
  (with unknown fields rejected, as `kubectl apply` does with strict field validation); core kinds get
  a small hand-written structural check. The validator itself is checked on Argo's own examples and on
  deliberately broken copies, so a silently permissive validator cannot pass.
- wiring: analysis template names and args, Services and Ingresses referenced by the Rollouts exist and
  fit together.
- runbook rules: step plan, SLO thresholds, validation periods and the "no data is not success" rule.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker

REPO = Path(__file__).resolve().parents[2]
ROLLOUTS_DIR = REPO / "infra" / "rollouts"
NAMESPACE = "aivo-system"
ARGO_API = "argoproj.io/v1alpha1"
PROMETHEUS = "http://prometheus.prometheus.svc:9090"

CANARY_SERVICES = {"auth-svc": 4, "user-svc": 4, "inference-gateway-svc": 6}
BLUEGREEN_SERVICES = {"analytics-svc", "reporting-svc", "report-worker"}
SLO_TEMPLATES = ["success-rate", "latency-p95", "error-budget-burn"]
RUNBOOK_SUCCESS_RATE = (
    'sum(rate(http_requests_total{service="{{args.service-name}}",code!~"5.."}[5m])) / '
    'sum(rate(http_requests_total{service="{{args.service-name}}"}[5m]))'
)

Doc = dict[str, Any]


# ------------------------------------------------------------------------------------------ locating


def _shared_dir() -> Path | None:
    default = REPO.parent / "shared"
    if (default / "argo-crds").is_dir():
        return default
    env = os.environ.get("ROLLOUTS_SHARED")
    if env and (Path(env) / "argo-crds").is_dir():
        return Path(env)
    return None


SHARED = _shared_dir()
SKIP_NO_SHARED = (
    f"Argo reference data not found: neither {REPO.parent / 'shared'}/argo-crds nor "
    "$ROLLOUTS_SHARED/argo-crds exists"
)
needs_shared = pytest.mark.skipif(SHARED is None, reason=SKIP_NO_SHARED)


def _load_all(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def _our_docs() -> list[tuple[str, Doc]]:
    out: list[tuple[str, Doc]] = []
    for path in sorted(ROLLOUTS_DIR.glob("*.yaml")):
        for doc in _load_all(path):
            if doc.get("kind") == "ImageMap":  # local runtime configuration, not an API object
                continue
            out.append((f"{path.name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}", doc))
    return out


OUR_DOCS = _our_docs()


def _docs(file: str, kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in _load_all(ROLLOUTS_DIR / file) if d.get("kind") == kind}


# ------------------------------------------------------------------------------------------ validator


def _to_jsonschema(node: Any) -> Any:
    """Translate a Kubernetes structural schema into plain JSON Schema.

    - `x-kubernetes-int-or-string: true` -> integer or string;
    - `nullable: true` -> null also allowed;
    - objects with declared properties reject unknown fields unless `x-kubernetes-preserve-unknown-fields`
      (the API server's strict field validation, which kubectl uses by default);
    - other `x-kubernetes-*` keys (list/map types, CEL rules) carry no shape information here: dropped.
    """
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "nullable"):
            continue
        if key == "properties":
            out[key] = {name: _to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out[key] = _to_jsonschema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


FORMATS = FormatChecker()


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@cache
def _validators() -> dict[str, Draft7Validator]:
    assert SHARED is not None
    out: dict[str, Draft7Validator] = {}
    for path in sorted((SHARED / "argo-crds").glob("*.yaml")):
        for crd in _load_all(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            version = next(v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage"))
            schema = _to_jsonschema(version["schema"]["openAPIV3Schema"])
            Draft7Validator.check_schema(schema)
            out[crd["spec"]["names"]["kind"]] = Draft7Validator(schema, format_checker=FORMATS)
    return out


def _field_path(parts: Iterator[Any] | Any) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "<root>"


def schema_errors(doc: Doc) -> list[str]:
    """Violations of the Argo CRD schema for doc's kind, as `<kind>/<name> <field path>: <message>`."""
    kind = doc.get("kind", "")
    validator = _validators().get(kind)
    where = f"{kind}/{doc.get('metadata', {}).get('name')}"
    if validator is None:
        return [f"{where} kind: {kind!r} is not one of {sorted(_validators())}"]
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{where} {_field_path(e.absolute_path)}: {e.message}" for e in errors]


def core_errors(doc: Doc) -> list[str]:
    """Hand-written required-field check for the core kinds used next to the Rollouts."""
    kind, meta, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
    where = f"{kind}/{meta.get('name')}"
    errs: list[str] = []
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        errs.append(f"{where} metadata.name: missing or not a string")
    if kind == "Service":
        if doc.get("apiVersion") != "v1":
            errs.append(f"{where} apiVersion: {doc.get('apiVersion')!r}, expected 'v1'")
        ports = spec.get("ports")
        if not isinstance(ports, list) or not ports:
            errs.append(f"{where} spec.ports: must be a non-empty list")
            ports = []
        for i, port in enumerate(ports):
            if not isinstance(port.get("port"), int) or not 1 <= port["port"] <= 65535:
                errs.append(f"{where} spec.ports[{i}].port: {port.get('port')!r} is not a port number")
            if "targetPort" in port and not isinstance(port["targetPort"], int | str):
                errs.append(f"{where} spec.ports[{i}].targetPort: must be a port number or a port name")
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
            errs.append(f"{where} spec.selector: must be a map of string labels")
    elif kind == "Ingress":
        if doc.get("apiVersion") != "networking.k8s.io/v1":
            errs.append(f"{where} apiVersion: {doc.get('apiVersion')!r}, expected 'networking.k8s.io/v1'")
        for r, rule in enumerate(spec.get("rules") or []):
            for p, path in enumerate((rule.get("http") or {}).get("paths") or []):
                at = f"{where} spec.rules[{r}].http.paths[{p}]"
                if path.get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                    errs.append(
                        f"{at}.pathType: {path.get('pathType')!r} is not Exact|Prefix|ImplementationSpecific"
                    )
                if not str(path.get("path", "")).startswith("/"):
                    errs.append(f"{at}.path: {path.get('path')!r} must start with '/'")
                svc = (path.get("backend") or {}).get("service") or {}
                port = svc.get("port") or {}
                if not svc.get("name") or not ("number" in port or "name" in port):
                    errs.append(f"{at}.backend.service: needs name and port.number or port.name")
        if not spec.get("rules") and not spec.get("defaultBackend"):
            errs.append(f"{where} spec: needs rules or defaultBackend")
    else:
        errs.append(f"{where} kind: {kind!r} has no core check (expected Service or Ingress)")
    return errs


def all_errors(doc: Doc) -> list[str]:
    if doc.get("apiVersion") == ARGO_API:
        return schema_errors(doc)
    return core_errors(doc)


# ------------------------------------------------------------------------------------------ schema tests


@needs_shared
@pytest.mark.parametrize("doc", [d for _, d in OUR_DOCS], ids=[i for i, _ in OUR_DOCS])
def test_our_manifests_validate(doc: Doc) -> None:
    assert all_errors(doc) == []


def test_every_file_of_the_runbook_exists_and_is_not_empty() -> None:
    names = {p.name for p in ROLLOUTS_DIR.glob("*.yaml")}
    expected = {"canary-rollouts.yaml", "bluegreen-rollouts.yaml", "analysis-templates.yaml", "ingress.yaml"}
    assert expected <= names
    assert all(_load_all(ROLLOUTS_DIR / n) for n in expected)


def _example_docs() -> list[Any]:
    if SHARED is None:
        return [pytest.param(None, id="no-shared", marks=pytest.mark.skip(reason=SKIP_NO_SHARED))]
    params = []
    for path in sorted((SHARED / "argo-examples").glob("*.yaml")):
        for i, doc in enumerate(_load_all(path)):
            if doc.get("apiVersion") == ARGO_API or doc.get("kind") in ("Service", "Ingress"):
                params.append(pytest.param(doc, id=f"{path.stem}[{i}]:{doc.get('kind')}"))
    return params


@pytest.mark.parametrize("doc", _example_docs())
def test_argo_examples_validate(doc: Doc) -> None:
    """Argo's own examples are valid by definition: a validator rejecting them would be wrong."""
    assert all_errors(doc) == []


def _set(doc: Doc, path: str, value: Any) -> Doc:
    broken = copy.deepcopy(doc)
    node: Any = broken
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return broken


def _canary_example() -> Doc:
    assert SHARED is not None
    return _load_all(SHARED / "argo-examples" / "rollout-canary.yaml")[0]


def _template_example() -> Doc:
    assert SHARED is not None
    return _load_all(SHARED / "argo-examples" / "analysis-templates.yaml")[0]


BROKEN = [
    ("rollout", "spec.strategy.canary.steps.0", {"setWeight": [20]}, "steps[0].setWeight"),
    ("rollout", "spec.strategy.canary.steps.0", {"setWeigth": 20}, "steps[0]"),
    ("rollout", "spec.strategy.canary.steps.1", {"pause": {"duration": [1]}}, "steps[1].pause.duration"),
    ("rollout", "spec.strategy", {"rollingUpdate": {}}, "spec.strategy"),
    ("rollout", "spec.replicas", "five", "spec.replicas"),
    ("rollout", "spec.replicas", 2**40, "spec.replicas"),
    ("template", "spec.metrics.0.provider", {"prometheuz": {"query": "up"}}, "metrics[0].provider"),
    ("template", "spec.metrics.0.count", [1], "metrics[0].count"),
    ("template", "spec.metrics.0", {"name": "no-provider"}, "metrics[0]"),
]


@needs_shared
@pytest.mark.parametrize(
    ("base", "path", "value", "where"),
    BROKEN,
    ids=[
        "setWeight-as-list",
        "unknown-step-type",
        "pause-duration-as-list",
        "unknown-strategy-type",
        "replicas-as-string",
        "replicas-beyond-int32",
        "unknown-metric-provider",
        "count-as-list",
        "metric-without-provider",
    ],
)
def test_broken_copies_fail_validation(base: str, path: str, value: Any, where: str) -> None:
    original = _canary_example() if base == "rollout" else _template_example()
    assert schema_errors(original) == []
    errors = schema_errors(_set(original, path, value))
    assert errors, f"broken copy ({path} = {value!r}) passed validation"
    assert any(where in e for e in errors), errors


@needs_shared
def test_broken_copy_of_our_own_rollout_fails() -> None:
    rollout = _docs("canary-rollouts.yaml", "Rollout")["auth-svc"]
    assert schema_errors(rollout) == []
    errors = schema_errors(_set(rollout, "spec.strategy.canary.steps.0", {"setWeight": [10]}))
    assert errors == [
        "Rollout/auth-svc spec.strategy.canary.steps[0].setWeight: [10] is not of type 'integer'"
    ]


@needs_shared
def test_unknown_kind_is_reported() -> None:
    errors = schema_errors({"apiVersion": ARGO_API, "kind": "Rolout", "metadata": {"name": "x"}})
    assert errors and "kind: 'Rolout' is not one of" in errors[0]


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"selector": {"a": "b"}}},
         "spec.ports"),
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
          "spec": {"selector": {"a": "b"}, "ports": [{"port": 70000}]}}, "spec.ports[0].port"),
        ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
          "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Glob",
                                                  "backend": {"service": {"name": "s", "port": {}}}}]}}]}},
         "pathType"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}, "has no core check"),
    ],
    ids=["service-without-ports", "service-port-out-of-range", "ingress-bad-path-type", "unexpected-kind"],
)
def test_core_check_rejects_broken_objects(doc: Doc, fragment: str) -> None:
    assert any(fragment in e for e in core_errors(doc)), core_errors(doc)


# ------------------------------------------------------------------------------------------ wiring


def _rollout_analyses(rollout: Doc) -> list[tuple[str, Doc]]:
    strategy = rollout["spec"]["strategy"]
    out: list[tuple[str, Doc]] = []
    canary = strategy.get("canary") or {}
    for i, step in enumerate(canary.get("steps") or []):
        if "analysis" in step:
            out.append((f"spec.strategy.canary.steps[{i}].analysis", step["analysis"]))
    if "analysis" in canary:
        out.append(("spec.strategy.canary.analysis", canary["analysis"]))
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        if key in (strategy.get("blueGreen") or {}):
            out.append((f"spec.strategy.blueGreen.{key}", strategy["blueGreen"][key]))
    return out


ROLLOUTS = {**_docs("canary-rollouts.yaml", "Rollout"), **_docs("bluegreen-rollouts.yaml", "Rollout")}
TEMPLATES = _docs("analysis-templates.yaml", "AnalysisTemplate")
INGRESSES = _docs("ingress.yaml", "Ingress")
ANALYSES = [(f"{name}:{where}", r, a) for name, r in ROLLOUTS.items() for where, a in _rollout_analyses(r)]


def test_expected_objects_are_present() -> None:
    assert set(ROLLOUTS) == set(CANARY_SERVICES) | BLUEGREEN_SERVICES
    assert set(SLO_TEMPLATES) | {"slo-gates"} <= set(TEMPLATES)
    assert set(INGRESSES) == set(CANARY_SERVICES)


@pytest.mark.parametrize("doc", [d for _, d in OUR_DOCS], ids=[i for i, _ in OUR_DOCS])
def test_every_object_lives_in_aivo_system(doc: Doc) -> None:
    assert doc["metadata"].get("namespace") == NAMESPACE


@pytest.mark.parametrize(
    ("rollout", "analysis"), [(r, a) for _, r, a in ANALYSES], ids=[i for i, _, _ in ANALYSES]
)
def test_analysis_templates_exist_and_args_fit(rollout: Doc, analysis: Doc) -> None:
    names = [t["templateName"] for t in analysis["templates"]]
    assert not any(t.get("clusterScope") for t in analysis["templates"])
    missing = [n for n in names if n not in TEMPLATES]
    assert missing == [], f"templates not in analysis-templates.yaml: {missing}"

    declared: dict[str, Doc] = {}
    for name in names:
        for arg in TEMPLATES[name]["spec"].get("args", []):
            # Argo refuses to merge templates that give one arg different defaults.
            if arg["name"] in declared:
                assert declared[arg["name"]].get("value") == arg.get("value"), arg["name"]
            declared[arg["name"]] = arg
    supplied = {a["name"]: a for a in analysis.get("args", [])}
    required = {n for n, a in declared.items() if "value" not in a and "valueFrom" not in a}
    assert required - set(supplied) == set(), "required template args not supplied by the Rollout"
    assert set(supplied) - set(declared) == set(), "Rollout passes args no listed template declares"
    for arg in supplied.values():
        assert ("value" in arg) != ("valueFrom" in arg), arg
    assert supplied["service-name"]["value"] == rollout["metadata"]["name"]
    if "canary-hash" in supplied:
        assert supplied["canary-hash"]["valueFrom"] == {"podTemplateHashValue": "Latest"}
    assert analysis["analysisRunMetadata"]["labels"]["rollout"] == rollout["metadata"]["name"]

    # One merged AnalysisRun: metric names must be unique across the listed templates.
    metric_names = [m["name"] for n in names for m in TEMPLATES[n]["spec"]["metrics"]]
    assert len(metric_names) == len(set(metric_names)), metric_names


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=list(TEMPLATES))
def test_template_placeholders_are_declared_args(template: Doc) -> None:
    declared = {a["name"] for a in template["spec"].get("args", [])}
    assert "service-name" in declared
    used = set(re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", yaml.safe_dump(template["spec"]["metrics"])))
    assert used - declared == set()
    assert "service-name" in used


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=list(TEMPLATES))
def test_gating_metrics_are_bounded(template: Doc) -> None:
    """Step and pre/post analyses may not run forever (Argo: InvalidSpec) and limits must fit count."""
    for metric in template["spec"]["metrics"]:
        count = metric.get("count")
        assert isinstance(count, int) and count >= 1, metric["name"]
        if count > 1:
            assert metric.get("interval"), metric["name"]
        assert count >= metric.get("failureLimit", 0), metric["name"]
        assert count >= metric.get("inconclusiveLimit", 0), metric["name"]


def _pod_container(rollout: Doc) -> Doc:
    containers = rollout["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("rollout", list(ROLLOUTS.values()), ids=list(ROLLOUTS))
def test_referenced_services_exist_and_select_the_pods(rollout: Doc) -> None:
    name = rollout["metadata"]["name"]
    file = "canary-rollouts.yaml" if name in CANARY_SERVICES else "bluegreen-rollouts.yaml"
    services = _docs(file, "Service")
    strategy = rollout["spec"]["strategy"]
    if "canary" in strategy:
        refs = {"stable": strategy["canary"]["stableService"], "canary": strategy["canary"]["canaryService"]}
    else:
        bg = strategy["blueGreen"]
        refs = {"active": bg["activeService"], "preview": bg["previewService"]}
    pod_labels = rollout["spec"]["template"]["metadata"]["labels"]
    assert rollout["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    port_names = {p["name"] for p in _pod_container(rollout)["ports"]}
    for role, svc_name in refs.items():
        assert svc_name == f"{name}-{role}"
        assert svc_name in services, f"{svc_name} not defined in {file}"
        spec = services[svc_name]["spec"]
        assert spec["selector"] == {"app": name}
        assert spec["selector"].items() <= pod_labels.items()
        assert [(p["port"], p["targetPort"]) for p in spec["ports"]] == [(80, "http")]
        assert "http" in port_names
    assert len(set(refs.values())) == len(refs)


@pytest.mark.parametrize("name", list(CANARY_SERVICES), ids=list(CANARY_SERVICES))
def test_stable_ingress_exists_and_routes_to_the_stable_service(name: str) -> None:
    canary = ROLLOUTS[name]["spec"]["strategy"]["canary"]
    nginx = canary["trafficRouting"]["nginx"]
    assert nginx["stableIngress"] in INGRESSES
    ingress = INGRESSES[nginx["stableIngress"]]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    [rule] = ingress["rules"]
    assert rule["host"] == f"{name}.aivo.dev"
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": canary["stableService"], "port": {"number": 80}}
    assert nginx["additionalIngressAnnotations"] == {
        "canary-by-header": "X-Canary",
        "canary-by-header-value": "true",
    }


# ------------------------------------------------------------------------------------------ runbook rules


@pytest.mark.parametrize("rollout", list(ROLLOUTS.values()), ids=list(ROLLOUTS))
def test_pod_template_and_common_settings(rollout: Doc) -> None:
    name, spec = rollout["metadata"]["name"], rollout["spec"]
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"], spec["progressDeadlineAbort"]) == (
        10,
        1800,
        True,
    )
    container = _pod_container(rollout)
    assert (container["name"], container["image"]) == (name, f"{name}:1.0.0")
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" in container
    assert set(container["resources"]) == {"requests", "limits"}


@pytest.mark.parametrize("name", list(CANARY_SERVICES), ids=list(CANARY_SERVICES))
def test_canary_plan_is_gated_by_the_slo_templates(name: str) -> None:
    spec = ROLLOUTS[name]["spec"]
    assert spec["replicas"] == CANARY_SERVICES[name]
    canary = spec["strategy"]["canary"]
    assert canary["abortScaleDownDelaySeconds"] == 30
    steps = canary["steps"]
    shape = [("setWeight", s["setWeight"]) if "setWeight" in s else (next(iter(s)), None) for s in steps]
    gate = ("analysis", None)
    assert shape == [
        ("setWeight", 10), gate, ("setWeight", 25), gate, ("setWeight", 50), gate, ("setWeight", 75), gate,
        ("setWeight", 100),
    ]
    for step in steps:
        if "analysis" in step:
            assert [t["templateName"] for t in step["analysis"]["templates"]] == SLO_TEMPLATES


def _minutes(duration: str) -> float:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match[1]) * {"s": 1 / 60, "m": 1, "h": 60}[match[2]]


@pytest.mark.parametrize("name", sorted(BLUEGREEN_SERVICES), ids=sorted(BLUEGREEN_SERVICES))
def test_bluegreen_validation_periods_and_manual_promotion(name: str) -> None:
    bg = ROLLOUTS[name]["spec"]["strategy"]["blueGreen"]
    assert bg["autoPromotionEnabled"] is False
    assert (bg["scaleDownDelaySeconds"], bg["previewReplicaCount"]) == (30, 1)
    for key, minutes in (("prePromotionAnalysis", 5), ("postPromotionAnalysis", 10)):
        for ref in bg[key]["templates"]:
            for metric in TEMPLATES[ref["templateName"]]["spec"]["metrics"]:
                assert _minutes(metric["interval"]) * metric["count"] == minutes, (key, metric["name"])


def _metric(template: str, name: str | None = None) -> Doc:
    metrics = TEMPLATES[template]["spec"]["metrics"]
    return next(m for m in metrics if name is None or m["name"] == name)


def test_success_rate_uses_the_runbook_query_as_a_ratio() -> None:
    metric = _metric("success-rate")
    assert metric["provider"]["prometheus"]["query"].strip() == RUNBOOK_SUCCESS_RATE
    assert "* 100" not in metric["provider"]["prometheus"]["query"]


def test_bluegreen_post_promotion_queries_match_the_canary_gates() -> None:
    for name in ("success-rate", "latency-p95"):
        post = _metric("bluegreen-post-promotion", name)
        assert post["provider"] == _metric(name)["provider"]
        assert (post["successCondition"], post["failureCondition"]) == (
            _metric(name)["successCondition"],
            _metric(name)["failureCondition"],
        )


def test_error_budget_burn_counts_canary_errors_against_the_30d_budget() -> None:
    template = TEMPLATES["error-budget-burn"]["spec"]
    assert {a["name"]: a.get("value") for a in template["args"]} == {
        "service-name": None,
        "canary-hash": None,
        "release-window": "1h",
    }
    query = " ".join(_metric("error-budget-burn")["provider"]["prometheus"]["query"].split())
    assert 'code=~"5..",rollouts_pod_template_hash="{{args.canary-hash}}"}[{{args.release-window}}]' in query
    assert "or vector(0)" in query
    assert '(0.005 * sum(increase(http_requests_total{service="{{args.service-name}}"}[30d])))' in query


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=list(TEMPLATES))
def test_prometheus_metrics_use_the_cluster_prometheus(template: Doc) -> None:
    for metric in template["spec"]["metrics"]:
        prom = metric["provider"].get("prometheus")
        if prom is not None:
            assert prom["address"] == PROMETHEUS


def test_slo_gates_use_the_traffic_plugin() -> None:
    metrics = {m["name"]: m for m in TEMPLATES["slo-gates"]["spec"]["metrics"]}
    assert set(metrics) == set(SLO_TEMPLATES)
    for name, metric in metrics.items():
        config = metric["provider"]["plugin"]["rollouts/traffic"]
        assert (config["metric"], config["version"], config["window"]) == (name, "canary", "1m")
        assert config["service"] == "{{args.service-name}}"
        assert (metric["interval"], metric["count"]) == ("30s", 4)


def _expr_to_python(expr: str) -> str:
    return re.sub(r"!(?!=)", " not ", expr.replace("&&", " and ").replace("||", " or "))


def assess(metric: Doc, result: Any) -> str:
    """Argo's measurement rule for a metric with both conditions: F wins, then S, else Inconclusive."""
    env = {"__builtins__": {}, "len": len, "isNaN": math.isnan, "result": result}
    failed = eval(_expr_to_python(metric["failureCondition"]), env)  # noqa: S307 - our own test data
    succeeded = eval(_expr_to_python(metric["successCondition"]), env)  # noqa: S307
    return "Failed" if failed else "Successful" if succeeded else "Inconclusive"


NAN = float("nan")
CONDITION_CASES = [
    ("success-rate", None, [0.999], "Successful"),
    ("success-rate", None, [0.995], "Successful"),
    ("success-rate", None, [0.99], "Failed"),
    ("success-rate", None, [], "Inconclusive"),
    ("success-rate", None, [NAN], "Inconclusive"),
    ("latency-p95", None, [0.2], "Successful"),
    ("latency-p95", None, [0.5], "Successful"),
    ("latency-p95", None, [0.501], "Failed"),
    ("latency-p95", None, [NAN], "Inconclusive"),
    ("error-budget-burn", None, [0.0], "Successful"),
    ("error-budget-burn", None, [0.099], "Successful"),
    ("error-budget-burn", None, [0.10], "Failed"),
    ("error-budget-burn", None, [math.inf], "Failed"),
    ("error-budget-burn", None, [], "Inconclusive"),
    ("slo-gates", "success-rate", 0.996, "Successful"),
    ("slo-gates", "success-rate", 0.9, "Failed"),
    ("slo-gates", "success-rate", NAN, "Inconclusive"),
    ("slo-gates", "latency-p95", 0.5, "Successful"),
    ("slo-gates", "latency-p95", 0.7, "Failed"),
    ("slo-gates", "error-budget-burn", 0.05, "Successful"),
    ("slo-gates", "error-budget-burn", 0.10, "Failed"),
    ("slo-gates", "error-budget-burn", NAN, "Inconclusive"),
    ("bluegreen-pre-promotion", "preview-success-rate", [], "Inconclusive"),
    ("worker-post-promotion", "job-success-rate", [0.98], "Failed"),
]


@pytest.mark.parametrize(
    ("template", "metric", "result", "expected"),
    CONDITION_CASES,
    ids=[f"{t}/{m or t}={r}" for t, m, r, _ in CONDITION_CASES],
)
def test_conditions_treat_no_data_as_inconclusive(
    template: str, metric: str | None, result: Any, expected: str
) -> None:
    assert assess(_metric(template, metric), result) == expected


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=list(TEMPLATES))
def test_every_metric_pairs_success_and_failure_conditions(template: Doc) -> None:
    for metric in template["spec"]["metrics"]:
        assert metric.get("successCondition") and metric.get("failureCondition"), metric["name"]
        for empty in ([], [NAN]) if "prometheus" in metric["provider"] else ([NAN],):
            value = empty if "prometheus" in metric["provider"] else empty[0]
            assert assess(metric, value) == "Inconclusive", (metric["name"], empty)
