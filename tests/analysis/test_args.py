"""Argument merging, resolution (rollout fields, pod hashes, secrets), substitution and redaction."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.analysis.args import (
    ArgsError,
    SecretKeyNotFound,
    SecretNotFound,
    args_without_secrets,
    field_path_value,
    flatten_template_args,
    merge_args,
    resolve_args,
    rollout_argument_values,
    secret_values,
    substitute,
    substitute_metric,
)
from rollouts.analysis.messages import redact
from rollouts.spec.analysis import Argument, Metric
from rollouts.spec.rollout import AnalysisRunArgument, Rollout

ROLLOUT = Rollout.model_validate(
    {
        "metadata": {
            "name": "shop",
            "namespace": "prod",
            "uid": "uid-1",
            "labels": {"team": "payments"},
            "annotations": {"rollout.argoproj.io/revision": "7"},
        },
        "spec": {
            "replicas": 4,
            "template": {
                "metadata": {"labels": {"app": "shop", "version": "v2"}},
                "spec": {"containers": [{"name": "web", "image": "shop:2"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
        },
    }
)


def arg(name: str, value: str | None = None, **value_from: Any) -> Argument:
    return Argument.model_validate({"name": name, "value": value, "valueFrom": value_from or None})


# --- field paths -----------------------------------------------------------------------------------

FIELD_PATHS = [
    pytest.param("metadata.name", "shop", id="name"),
    pytest.param("metadata.namespace", "prod", id="namespace"),
    pytest.param("metadata.uid", "uid-1", id="uid"),
    pytest.param("metadata.labels['team']", "payments", id="label"),
    pytest.param("metadata.labels['missing']", "", id="missing-label-empty"),
    pytest.param("metadata.annotations['rollout.argoproj.io/revision']", "7", id="annotation-with-dots"),
    pytest.param("spec.template.metadata.labels.version", "v2", id="rollout-path"),
    pytest.param("spec.replicas", "4", id="rollout-int"),
    pytest.param("spec.strategy.canary.steps[0].setWeight", "20", id="rollout-index"),
    pytest.param("spec.template.spec.containers.0.image", "shop:2", id="rollout-dotted-index"),
]


@pytest.mark.parametrize(("path", "expected"), FIELD_PATHS)
def test_field_path_value(path: str, expected: str) -> None:
    assert field_path_value(ROLLOUT, path) == expected


FIELD_PATH_ERRORS = [
    pytest.param(
        "metadata.generation2", "unsupported fieldPath: metadata.generation2", id="unsupported-metadata"
    ),
    pytest.param("spec.nothing.here", "invalid path spec.nothing.here in rollout", id="missing"),
    pytest.param("spec.template.metadata.labels", "must terminate in a primitive value", id="not-primitive"),
    pytest.param("spec.strategy.canary.steps[5].setWeight", "index 5 out of range", id="index-out-of-range"),
    pytest.param("spec.strategy.canary.steps.x", "invalid index 'x'", id="bad-index"),
]


@pytest.mark.parametrize(("path", "fragment"), FIELD_PATH_ERRORS)
def test_field_path_errors(path: str, fragment: str) -> None:
    with pytest.raises(ArgsError, match=fragment.replace("[", r"\[")):
        field_path_value(ROLLOUT, path)


# --- rollout-side values ---------------------------------------------------------------------------


def test_rollout_argument_values() -> None:
    args = [
        AnalysisRunArgument.model_validate(a)
        for a in [
            {"name": "plain", "value": "x"},
            {"name": "latest", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
            {"name": "env", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
            {
                "name": "version",
                "valueFrom": {"fieldRef": {"fieldPath": "spec.template.metadata.labels.version"}},
            },
            {"name": "empty"},
        ]
    ]
    values = rollout_argument_values(args, ROLLOUT, stable_hash="s111", latest_hash="l222")
    assert {a.name: a.value for a in values} == {
        "plain": "x",
        "latest": "l222",
        "stable": "s111",
        "env": "payments",
        "version": "v2",
        "empty": "",
    }


def test_stable_hash_missing_is_an_error() -> None:
    args = [
        AnalysisRunArgument.model_validate({"name": "s", "valueFrom": {"podTemplateHashValue": "Stable"}})
    ]
    with pytest.raises(ArgsError, match="args.s"):
        rollout_argument_values(args, ROLLOUT, stable_hash=None, latest_hash="l")


# --- merging ---------------------------------------------------------------------------------------

MERGES = [
    pytest.param([arg("a", "1")], [arg("a")], {"a": "1"}, id="rollout-supplies-required"),
    pytest.param([arg("a", "2")], [arg("a", "1")], {"a": "2"}, id="rollout-overrides-default"),
    pytest.param([], [arg("a", "1")], {"a": "1"}, id="template-default"),
    pytest.param([arg("zzz", "9")], [arg("a", "1")], {"a": "1"}, id="unknown-incoming-ignored"),
]


@pytest.mark.parametrize(("incoming", "template", "expected"), MERGES)
def test_merge_args(incoming: list[Argument], template: list[Argument], expected: dict[str, str]) -> None:
    assert {a.name: a.value for a in merge_args(incoming, template)} == expected


def test_merge_args_unresolved() -> None:
    with pytest.raises(ArgsError, match=r"^args\.service was not resolved$"):
        merge_args([], [arg("service")])


FLATTEN = [
    pytest.param([[arg("a", "1")], [arg("a", "1")]], {"a": "1"}, id="same-default-twice"),
    pytest.param([[arg("a")], [arg("a", "1")]], {"a": "1"}, id="later-default-fills-required"),
    pytest.param([[arg("a", "1")], [arg("a")]], {"a": "1"}, id="default-not-replaced-by-required"),
    pytest.param([[arg("a")], [arg("b", "2")]], {"a": None, "b": "2"}, id="union"),
]


@pytest.mark.parametrize(("lists", "expected"), FLATTEN)
def test_flatten_template_args(lists: list[list[Argument]], expected: dict[str, str | None]) -> None:
    assert {a.name: a.value for a in flatten_template_args(lists)} == expected


def test_flatten_conflicting_defaults() -> None:
    with pytest.raises(
        ArgsError, match="Argument `a` specified multiple times with different values: '1', '2'"
    ):
        flatten_template_args([[arg("a", "1")], [arg("a", "2")]])


# --- secrets ---------------------------------------------------------------------------------------

SECRETS = {("prod", "creds", "token"): "s3cr3t-value"}


def lookup(namespace: str, name: str, key: str) -> str:
    if not any(n == name and ns == namespace for ns, n, _ in SECRETS):
        raise SecretNotFound(name)
    if (namespace, name, key) not in SECRETS:
        raise SecretKeyNotFound(name, key)
    return SECRETS[(namespace, name, key)]


def test_resolve_args_reads_secrets_through_callback() -> None:
    run_args = [arg("svc", "shop"), arg("token", secretKeyRef={"name": "creds", "key": "token"})]
    values = resolve_args(run_args, lookup, namespace="prod")
    assert values == {"svc": "shop", "token": "s3cr3t-value"}
    assert secret_values(run_args, values) == frozenset({"s3cr3t-value"})
    assert args_without_secrets(run_args) == {"svc": "shop", "token": "temp-for-secret"}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"name": "nope", "key": "token"}, 'secrets "nope" not found'),
        ({"name": "creds", "key": "nokey"}, "key 'nokey' does not exist in secret 'creds'"),
    ],
    ids=["secret-missing", "key-missing"],
)
def test_resolve_args_secret_errors(ref: dict[str, str], message: str) -> None:
    with pytest.raises(ArgsError) as info:
        resolve_args([arg("t", secretKeyRef=ref)], lookup, namespace="prod")
    assert str(info.value) == message


REDACTIONS = [
    pytest.param("token=s3cr3t rejected", ["s3cr3t"], "token=***** rejected", id="simple"),
    pytest.param("a s3cr3t b s3cr3t", ["s3cr3t"], "a ***** b *****", id="every-occurrence"),
    pytest.param("key abc-long", ["abc", "abc-long"], "key *****", id="longest-first"),
    pytest.param("nothing here", ["", "zzz"], "nothing here", id="empty-secret-ignored"),
]


@pytest.mark.parametrize(("text", "secrets", "expected"), REDACTIONS)
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


# --- substitution ----------------------------------------------------------------------------------

SUBSTITUTIONS = [
    pytest.param("{{args.a}}", {"a": "x"}, False, "x", id="plain"),
    pytest.param("q{ {{ args.a }} }", {"a": "x"}, False, "q{ x }", id="whitespace-inside-braces"),
    pytest.param("{{args.a}}-{{args.b}}", {"a": "1", "b": "2"}, False, "1-2", id="several"),
    pytest.param('"{{args.a}}"', {"a": 'say "hi"\n'}, True, '"say \\"hi\\"\\n"', id="json-escaped"),
    pytest.param("all(result, {# < 1})", {}, False, "all(result, {# < 1})", id="single-braces-untouched"),
]


@pytest.mark.parametrize(("template", "values", "quoted", "expected"), SUBSTITUTIONS)
def test_substitute(template: str, values: dict[str, str], quoted: bool, expected: str) -> None:
    assert substitute(template, values, quoted=quoted) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{args.missing}}", "failed to resolve {{args.missing}}"),
        ("{{ args.missing }}", "failed to resolve {{ args.missing }}"),
        ("{{inputs.a}}", "failed to resolve {{inputs.a}}"),
    ],
    ids=["unknown-arg", "unknown-keeps-spacing", "not-args-namespace"],
)
def test_substitute_unresolved(template: str, message: str) -> None:
    with pytest.raises(ArgsError) as info:
        substitute(template, {"a": "1"})
    assert str(info.value) == message


def test_substitute_metric_everywhere() -> None:
    metric = Metric.model_validate(
        {
            "name": "rate",
            "interval": "{{args.interval}}",
            "count": "{{args.count}}",
            "failureLimit": "{{ args.limit }}",
            "successCondition": "result[0] >= {{args.threshold}}",
            "provider": {
                "web": {
                    "url": "http://{{args.host}}/api",
                    "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}],
                    "jsonBody": {"service": "{{args.host}}", "nested": ['quote "{{args.host}}"']},
                }
            },
        }
    )
    values = {
        "interval": "30s",
        "count": "5",
        "limit": "2",
        "threshold": "0.95",
        "host": 'we"b',
        "token": "t",
    }
    out = substitute_metric(metric, values)
    assert out.interval == "30s"
    assert out.count == "5"
    assert out.failure_limit == "2"
    assert out.success_condition == "result[0] >= 0.95"
    assert out.provider.web is not None
    assert out.provider.web.url == 'http://we"b/api'
    assert out.provider.web.headers is not None and out.provider.web.headers[0].value == "Bearer t"
    assert out.provider.web.json_body == {"service": 'we"b', "nested": ['quote "we"b"']}


def test_substitute_metric_unresolved() -> None:
    metric = Metric.model_validate(
        {"name": "m", "provider": {"prometheus": {"query": "up{job='{{args.job}}'}"}}}
    )
    with pytest.raises(ArgsError, match=r"failed to resolve \{\{args.job\}\}"):
        substitute_metric(metric, {})
