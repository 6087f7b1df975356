"""One failing manifest per validation rule: the problem's field path, message and severity."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.spec.loader import LoadedObject
from rollouts.spec.validation import validate_objects
from tests.spec.helpers import ROLLOUT, TEMPLATE, blue_green, rollout, template

C = "spec.strategy.canary"
B = "spec.strategy.blueGreen"


def problems(*docs: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    checked = validate_objects([LoadedObject(doc, "t.yaml", 1) for doc in docs])
    return [(p.kind, p.path, p.message, p.severity) for c in checked for p in c.problems]


def test_valid_set_has_no_problems() -> None:
    assert problems(ROLLOUT, TEMPLATE) == []


STEPS = f"{C}.steps"
# (id, documents, expected path, expected message fragment, severity)
CASES: list[tuple[str, list[dict[str, Any]], str, str, str]] = [
    ("name-required", [rollout(metadata={})], "metadata.name", "required", "error"),
    ("name-invalid", [rollout(metadata={"name": "My_App"})], "metadata.name", "not a valid name", "error"),
    ("unknown-field", [rollout(spec__strategy__canary__stepz=[])], f"{C}.stepz",
     'unknown field (did you mean "steps"?)', "error"),
    ("type-error", [rollout(spec__replicas="3")], "spec.replicas", 'must be an integer (got "3")', "error"),
    ("literal-error", [rollout(spec__strategy__canary__replicaProgressThreshold={"type": "X", "value": 1})],
     f"{C}.replicaProgressThreshold.type", "must be one of 'Percent' or 'Pods'", "error"),
    ("replicas-negative", [rollout(spec__replicas=-1)], "spec.replicas", "-1 is negative", "error"),
    ("two-strategies", [rollout(spec__strategy__blueGreen={"activeService": "a"})], "spec.strategy",
     "Multiple Strategies can not be listed", "error"),
    ("no-strategy", [rollout(spec__strategy={})], "spec.strategy", "a strategy is required", "error"),
    ("step-empty", [rollout(spec__strategy__canary__steps=[{}])], f"{STEPS}[0]",
     "Step must have one of the following set", "error"),
    ("step-two-keys", [rollout(spec__strategy__canary__steps=[{"setWeight": 5, "pause": {}}])], f"{STEPS}[0]",
     "sets 2: setWeight, pause", "error"),
    ("weight-range", [rollout(spec__strategy__canary__steps=[{"setWeight": 10}, {"pause": {}}, {"setWeight": 140}])],
     f"{STEPS}[2].setWeight", "140 is not between 0 and 100", "error"),
    ("weight-max-traffic", [rollout(spec__strategy__canary__trafficRouting__maxTrafficWeight=1000,
                                    spec__strategy__canary__steps=[{"setWeight": 1001}])],
     f"{STEPS}[0].setWeight", "1001 is not between 0 and 1000", "error"),
    ("pause-negative", [rollout(spec__strategy__canary__steps=[{"pause": {"duration": "-5s"}}])],
     f"{STEPS}[0].pause.duration", "Duration needs to be greater than 0", "error"),
    ("pause-unparsable", [rollout(spec__strategy__canary__steps=[{"pause": {"duration": "5 minutes"}}])],
     f"{STEPS}[0].pause.duration", "is not a duration", "error"),
    ("pause-zero", [rollout(spec__strategy__canary__steps=[{"pause": {"duration": 0}}])],
     f"{STEPS}[0].pause.duration", "does not pause", "warning"),
    ("canary-scale-no-routing", [rollout(spec__strategy__canary__trafficRouting=None,
                                         spec__strategy__canary__steps=[{"setCanaryScale": {"replicas": 1}}])],
     f"{STEPS}[0].setCanaryScale", "SetCanaryScale requires TrafficRouting to be set", "error"),
    ("header-route-unmanaged", [rollout(spec__strategy__canary__steps=[{"setHeaderRoute": {"name": "h"}}])],
     f"{STEPS}[0].setHeaderRoute.name", 'not in trafficRouting.managedRoutes', "error"),
    ("mirror-route-unmanaged", [rollout(spec__strategy__canary__steps=[{"setMirrorRoute": {"name": "m"}}])],
     f"{STEPS}[0].setMirrorRoute.name", 'not in trafficRouting.managedRoutes', "error"),
    ("routing-needs-canary-service", [rollout(spec__strategy__canary__canaryService=None)], f"{C}.canaryService",
     "required when trafficRouting is set", "error"),
    ("routing-needs-stable-service", [rollout(spec__strategy__canary__stableService=None)], f"{C}.stableService",
     "required when trafficRouting is set", "error"),
    ("services-differ", [rollout(spec__strategy__canary__stableService="app-canary")], f"{C}.stableService",
     "must differ", "error"),
    ("nginx-needs-ingress", [rollout(spec__strategy__canary__trafficRouting__nginx={})],
     f"{C}.trafficRouting.nginx", "set stableIngress", "error"),
    ("other-router", [rollout(spec__strategy__canary__trafficRouting={"istio": {"virtualService": {"name": "v"}}})],
     f"{C}.trafficRouting.istio", "not supported here (only nginx is)", "warning"),
    ("surge-unavailable-zero", [rollout(spec__strategy__canary__maxSurge=0, spec__strategy__canary__maxUnavailable="0%")],
     f"{C}.maxSurge", "MaxSurge and MaxUnavailable both can not be zero", "error"),
    ("basic-canary-abort-delay-ignored", [rollout(spec__strategy__canary__trafficRouting=None,
                                                  spec__strategy__canary__canaryService=None,
                                                  spec__strategy__canary__stableService=None,
                                                  spec__strategy__canary__abortScaleDownDelaySeconds=10)],
     f"{C}.abortScaleDownDelaySeconds", "has no effect without trafficRouting", "warning"),
    ("basic-canary-min-pods-ignored", [rollout(spec__strategy__canary__trafficRouting=None,
                                               spec__strategy__canary__canaryService=None,
                                               spec__strategy__canary__stableService=None,
                                               spec__strategy__canary__minPodsPerReplicaSet=2)],
     f"{C}.minPodsPerReplicaSet", "has no effect without trafficRouting", "warning"),
    ("prometheus-without-query", [template(spec__metrics__0__provider={"prometheus": {"address": "http://p"}})],
     "spec.metrics[0].provider.prometheus.query", "every measurement will be an Error", "warning"),
    ("replicas-beyond-int32", [rollout(spec__replicas=1000000000000)], "spec.replicas",
     "1000000000000 is out of range (at most 2147483647", "error"),
    ("scale-down-delay-beyond-int32", [rollout(spec__strategy__canary__scaleDownDelaySeconds=2**31)],
     f"{C}.scaleDownDelaySeconds", "2147483648 is out of range", "error"),
    ("canary-scale-replicas-beyond-int32", [rollout(spec__strategy__canary__steps=[{"setCanaryScale": {"replicas": 2**32}}])],
     f"{STEPS}[0].setCanaryScale.replicas", "4294967296 is out of range", "error"),
    ("bg-preview-count-beyond-int32", [blue_green(spec__strategy__blueGreen__previewReplicaCount=2**31)],
     f"{B}.previewReplicaCount", "is out of range", "error"),
    ("pause-beyond-int32-seconds", [rollout(spec__strategy__canary__steps=[{"pause": {"duration": "9999999999h"}}])],
     f"{STEPS}[0].pause.duration", "9999999999h is too long (at most 2147483647 seconds", "error"),
    ("pause-seconds-beyond-int32", [rollout(spec__strategy__canary__steps=[{"pause": {"duration": 2**31}}])],
     f"{STEPS}[0].pause.duration", "is too long", "error"),
    ("count-beyond-int32", [template(spec__metrics__0__count=2**31)], "spec.metrics[0].count",
     "2147483648 is out of range", "error"),
    ("interval-beyond-go-duration", [template(spec__metrics__0__interval="9999999999h")], "spec.metrics[0].interval",
     "is too long (at most 2562047h", "error"),
    ("surge-bad", [rollout(spec__strategy__canary__maxSurge="lots")], f"{C}.maxSurge",
     "not an integer or a percentage", "error"),
    ("scale-down-delay-needs-routing", [rollout(spec__strategy__canary__trafficRouting=None,
                                                spec__strategy__canary__canaryService=None,
                                                spec__strategy__canary__stableService=None,
                                                spec__strategy__canary__scaleDownDelaySeconds=10,
                                                spec__strategy__canary__steps=[{"setWeight": 10}])],
     f"{C}.scaleDownDelaySeconds", "can only be set with trafficRouting", "error"),
    ("dynamic-stable-with-delay", [rollout(spec__strategy__canary__dynamicStableScale=True,
                                           spec__strategy__canary__scaleDownDelaySeconds=10)],
     f"{C}.dynamicStableScale", "cannot be combined with scaleDownDelaySeconds", "error"),
    ("bg-active-required", [blue_green(spec__strategy__blueGreen__activeService=None)], f"{B}.activeService",
     "required", "error"),
    ("bg-preview-differs", [blue_green(spec__strategy__blueGreen__previewService="app-active")],
     f"{B}.previewService", "must differ", "error"),
    ("selector-mismatch", [rollout(spec__selector={"matchLabels": {"app": "other"}})], "spec.selector",
     "does not match spec.template.metadata.labels (app=app)", "error"),
    ("template-required", [rollout(spec__template=None)], "spec.template", "required", "error"),
    ("starting-step", [rollout(spec__strategy__canary__analysis={"templates": [{"templateName": "rate"}],
                                                                  "args": [{"name": "svc", "value": "a"}],
                                                                  "startingStep": 9})],
     f"{C}.analysis.startingStep", "9 is not between 0 and 3", "error"),
    ("template-missing", [ROLLOUT], f"{STEPS}[2].analysis.templates[0].templateName",
     'AnalysisTemplate "rate" is not in the input', "warning"),
    ("cluster-template-missing", [rollout(spec__strategy__canary__steps__2__analysis__templates=[
        {"templateName": "rate", "clusterScope": True}]), TEMPLATE],
     f"{STEPS}[2].analysis.templates[0].templateName", 'ClusterAnalysisTemplate "rate" is not in the input',
     "warning"),
    ("arg-missing", [rollout(spec__strategy__canary__steps__2__analysis__args=None), TEMPLATE],
     f"{STEPS}[2].analysis", 'argument "svc" required by AnalysisTemplate/rate is not given', "error"),
    ("step-runs-forever", [ROLLOUT, template(spec__metrics__0__count=None, spec__metrics__0__failureLimit=None)],
     f"{STEPS}[2].analysis.templates[0]", "runs indefinitely. Invalid value for count", "error"),
    ("experiment-step", [rollout(spec__strategy__canary__steps=[{"experiment": {"templates": []}}])],
     f"{STEPS}[0].experiment", "experiments are not run by this version", "warning"),
    ("workload-ref", [rollout(spec__workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"})],
     "spec.workloadRef", "not supported", "warning"),
    ("no-provider", [template(spec__metrics__0__provider={})], "spec.metrics[0].provider",
     "no provider specified", "error"),
    ("two-providers", [template(spec__metrics__0__provider__web={"url": "http://x"})], "spec.metrics[0].provider",
     "multiple providers specified", "error"),
    ("other-provider", [template(spec__metrics__0__provider={"datadog": {"query": "q"}})],
     "spec.metrics[0].provider.datadog", "not measured by this version", "warning"),
    ("unknown-plugin", [template(spec__metrics__0__provider={"plugin": {"acme/metrics": {}}})],
     "spec.metrics[0].provider.plugin.acme/metrics", "not built in here", "warning"),
    ("interval-bad", [template(spec__metrics__0__interval="10")], "spec.metrics[0].interval",
     '"10" is not a duration', "error"),
    ("initial-delay-bad", [template(spec__metrics__0__initialDelay="soon")], "spec.metrics[0].initialDelay",
     '"soon" is not a duration', "error"),
    ("count-needs-interval", [template(spec__metrics__0__interval=None)], "spec.metrics[0].count",
     "count 3 needs an interval", "error"),
    ("count-vs-failure-limit", [template(spec__metrics__0__failureLimit=2, spec__metrics__0__consecutiveSuccessLimit=2)],
     "spec.metrics[0].count", "3 is less than failureLimit + consecutiveSuccessLimit (4)", "error"),
    ("count-vs-inconclusive", [template(spec__metrics__0__inconclusiveLimit=5)], "spec.metrics[0].count",
     "3 is less than inconclusiveLimit (5)", "error"),
    ("failure-limit-below", [template(spec__metrics__0__failureLimit=-2)], "spec.metrics[0].failureLimit",
     "-2 is not valid", "error"),
    ("failure-limit-disabled", [template(spec__metrics__0__failureLimit=-1)], "spec.metrics[0].failureLimit",
     "needs consecutiveSuccessLimit > 0", "error"),
    ("limit-negative", [template(spec__metrics__0__consecutiveErrorLimit=-1)], "spec.metrics[0].consecutiveErrorLimit",
     "-1 is negative", "error"),
    ("count-not-int", [template(spec__metrics__0__count="three")], "spec.metrics[0].count",
     '"three" is not an integer', "error"),
    ("metric-names-unique", [template(spec__metrics=[TEMPLATE["spec"]["metrics"][0]] * 2)],
     "spec.metrics[1].name", "metric names must be unique", "error"),
    ("condition-compiles", [template(spec__metrics__0__successCondition="result[0] >=")],
     "spec.metrics[0].successCondition", "does not compile", "error"),
    ("no-metrics", [template(spec__metrics=[])], "spec.metrics", "at least one metric is required", "error"),
    ("unknown-kind", [{"apiVersion": "x/v1", "kind": "Frob", "metadata": {"name": "a"}}], "kind",
     'unknown kind "Frob"', "error"),
    ("wrong-api-version", [rollout(apiVersion="argoproj.io/v1")], "kind",
     "use argoproj.io/v1alpha1", "error"),
    ("secret-not-base64", [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "%%"}}],
     "data.k", "not base64", "error"),
    ("ingress-service-missing", [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
                                 "spec": {"defaultBackend": {"service": {"name": "nope", "port": {"number": 80}}}}},
                                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                                 "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}],
     "spec.defaultBackend.service.name", 'Service "nope" is not in the input', "warning"),
]


@pytest.mark.parametrize(("docs", "path", "fragment", "severity"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(docs: list[dict[str, Any]], path: str, fragment: str, severity: str) -> None:
    found = problems(*docs)
    matching = [p for p in found if p[1] == path and fragment in p[2]]
    assert matching, f"no problem at {path} containing {fragment!r}; got {found}"
    assert matching[0][3] == severity


@pytest.mark.parametrize(
    "canary",
    [{"maxSurge": 0, "maxUnavailable": "25%"}, {"maxSurge": "0%", "maxUnavailable": 1}, {"maxUnavailable": 0}],
    ids=["surge-0-unavailable-25pct", "surge-0pct-unavailable-1", "unavailable-0-surge-default"],
)
def test_surge_unavailable_pairs_argo_accepts_pass_lint(canary: dict[str, Any]) -> None:
    doc = rollout(**{f"spec__strategy__canary__{k}": v for k, v in canary.items()})
    assert [p for p in problems(doc, TEMPLATE) if p[3] == "error"] == []


def test_structural_error_does_not_hide_semantic_errors() -> None:
    doc = rollout(spec__strategy__canary__stepz=1, spec__strategy__canary__steps=[{"setWeight": 140}])
    assert [(p[1], p[2]) for p in problems(doc, TEMPLATE)] == [
        (f"{C}.stepz", 'unknown field (did you mean "steps"?)'),
        (f"{STEPS}[0].setWeight", "140 is not between 0 and 100"),
    ]


def test_broken_step_field_is_reported_once() -> None:
    doc = rollout(spec__strategy__canary__steps=[{"setWeight": "ten"}])
    assert [(p[1], p[2]) for p in problems(doc, TEMPLATE)] == [
        (f"{STEPS}[0].setWeight", 'must be an integer (got "ten")'),
    ]


def test_templated_values_are_not_judged() -> None:
    doc = template(spec__metrics__0__count="{{args.count}}", spec__metrics__0__interval="{{args.every}}",
                   spec__metrics__0__successCondition="result[0] >= {{args.min}}")
    assert problems(doc) == []


def test_background_analysis_may_run_forever() -> None:
    doc = rollout(spec__strategy__canary__steps=[{"setWeight": 10}],
                  spec__strategy__canary__analysis={"templates": [{"templateName": "rate"}],
                                                    "args": [{"name": "svc", "value": "a"}]})
    unlimited = template(spec__metrics__0__count=None, spec__metrics__0__failureLimit=None)
    assert problems(doc, unlimited) == []


def test_wrong_list_item_does_not_hide_other_steps() -> None:
    doc = rollout(spec__strategy__canary__steps=[{"setWeight": 1, "pause": {}}, 7])
    assert sorted((p[1], p[2].split(" (")[0]) for p in problems(doc, TEMPLATE)) == [
        (f"{STEPS}[0]", "a step sets exactly one action, this one sets 2: setWeight, pause"),
        (f"{STEPS}[1]", "must be a mapping"),
    ]


def test_missing_api_version_and_kind() -> None:
    assert [(p[1], p[2]) for p in problems({"metadata": {"name": "x"}, "kind": 5})] == [
        ("apiVersion", "required (a string such as argoproj.io/v1alpha1)"),
        ("kind", "must be a string such as Rollout (got 5)"),
    ]
