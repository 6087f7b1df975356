"""build_analysis_run: merging templates and the rollout's analysis stanza into one AnalysisRun."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.analysis.runs import build_analysis_run
from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.rollout import Rollout, RolloutAnalysis

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ROLLOUT = Rollout.model_validate(
    {
        "metadata": {"name": "shop", "namespace": "prod", "uid": "r-uid", "labels": {"team": "pay"}},
        "spec": {"template": {"metadata": {"labels": {"version": "v2"}}}},
    }
)


def web_metric(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"web": {"url": "http://svc/{{args.service}}"}}, **fields}


def template(name: str, metrics: list[dict[str, Any]], **spec: Any) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate({"metadata": {"name": name}, "spec": {"metrics": metrics, **spec}})


def build(templates: list[Any], analysis: dict[str, Any], stable: str | None = "s1") -> AnalysisRun:
    return build_analysis_run(
        rollout=ROLLOUT,
        name="shop-abc-2",
        templates=templates,
        analysis=RolloutAnalysis.model_validate(analysis),
        stable_hash=stable,
        latest_hash="l2",
        labels={"rollouts-pod-template-hash": "l2", "rollout-type": "Step"},
        now=NOW,
    )


def test_builds_metadata_and_owner() -> None:
    t = template("rate", [web_metric("rate")], args=[{"name": "service"}])
    run = build(
        [t],
        {
            "templates": [{"templateName": "rate"}],
            "args": [{"name": "service", "value": "shop"}],
            "analysisRunMetadata": {"labels": {"extra": "yes"}, "annotations": {"note": "n"}},
        },
    )
    assert run.status is None
    meta = run.metadata
    assert (meta.name, meta.namespace, meta.creation_timestamp) == ("shop-abc-2", "prod", NOW)
    assert meta.labels == {"rollouts-pod-template-hash": "l2", "rollout-type": "Step", "extra": "yes"}
    assert meta.annotations == {"note": "n"}
    owner = run.to_dict()["metadata"]["ownerReferences"]
    assert owner == [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": "shop",
            "uid": "r-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert [(a.name, a.value) for a in run.spec.args or []] == [("service", "shop")]


def test_merges_several_templates() -> None:
    t1 = template(
        "a",
        [web_metric("m1")],
        args=[{"name": "service"}, {"name": "x", "value": "1"}],
        dryRun=[{"metricName": "m1"}],
    )
    t2 = ClusterAnalysisTemplate.model_validate(
        {
            "metadata": {"name": "b"},
            "spec": {
                "metrics": [web_metric("m2")],
                "args": [{"name": "x", "value": "1"}, {"name": "version"}],
                "measurementRetention": [{"metricName": "m2", "limit": 20}],
            },
        }
    )
    run = build(
        [t1, t2, t1],
        {
            "args": [
                {"name": "service", "valueFrom": {"podTemplateHashValue": "Stable"}},
                {
                    "name": "version",
                    "valueFrom": {"fieldRef": {"fieldPath": "spec.template.metadata.labels.version"}},
                },
            ],
            "dryRun": [{"metricName": "other"}],
            "measurementRetention": [{"metricName": "m1", "limit": 3}],
        },
    )
    assert run.status is None
    assert [m.name for m in run.spec.metrics] == ["m1", "m2"]
    assert {a.name: a.value for a in run.spec.args or []} == {"service": "s1", "x": "1", "version": "v2"}
    assert [d.metric_name for d in run.spec.dry_run or []] == ["other", "m1"]
    assert [(r.metric_name, r.limit) for r in run.spec.measurement_retention or []] == [("m1", 3), ("m2", 20)]


def test_template_field_ref_default_read_from_rollout() -> None:
    t = template(
        "a",
        [web_metric("m")],
        args=[{"name": "service", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    )
    run = build([t], {})
    assert [(a.name, a.value) for a in run.spec.args or []] == [("service", "shop")]


def test_secret_args_stay_references() -> None:
    t = template(
        "a",
        [web_metric("m")],
        args=[{"name": "service", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    )
    run = build([t], {})
    assert run.status is None
    args = run.spec.args or []
    assert (
        args[0].value is None
        and args[0].value_from is not None
        and args[0].value_from.secret_key_ref is not None
    )


ERRORS = [
    pytest.param(
        [template("a", [web_metric("m")]), template("b", [web_metric("m")])],
        {},
        "Analysis spec invalid: two metrics have the same name 'm'",
        id="duplicate-metric",
    ),
    pytest.param(
        [
            template("a", [web_metric("m1")], args=[{"name": "service", "value": "1"}]),
            template("b", [web_metric("m2")], args=[{"name": "service", "value": "2"}]),
        ],
        {},
        "Unable to resolve metric arguments: "
        "Argument `service` specified multiple times with different values: '1', '2'",
        id="conflicting-defaults",
    ),
    pytest.param(
        [template("a", [web_metric("m")], args=[{"name": "service"}])],
        {},
        "Unable to resolve metric arguments: args.service was not resolved",
        id="unresolved-arg",
    ),
    pytest.param(
        [template("a", [web_metric("m")], args=[{"name": "service"}])],
        {"args": [{"name": "service", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]},
        "Unable to resolve metric arguments: invalid path spec.nope in rollout",
        id="bad-field-ref",
    ),
    pytest.param(
        [template("a", [web_metric("m")], dryRun=[{"metricName": "m"}])],
        {"dryRun": [{"metricName": "m"}]},
        "Analysis spec invalid: two Dry-Run metric rules have the same name 'm'",
        id="duplicate-dry-run",
    ),
]


@pytest.mark.parametrize(("templates", "analysis", "message"), ERRORS)
def test_build_errors_become_error_runs(templates: list[Any], analysis: dict[str, Any], message: str) -> None:
    run = build(templates, analysis)
    assert run.status is not None
    assert (run.status.phase, run.status.message) == ("Error", message)
    assert run.status.completed_at == NOW
    assert run.metadata.name == "shop-abc-2"


@pytest.mark.parametrize(("templates", "analysis", "message"), ERRORS)
def test_error_runs_are_objects_an_api_server_admits(templates: list[Any], analysis: dict[str, Any],
                                                      message: str) -> None:
    # An API server refuses a run without metrics (spec.metrics is required): a run that merely reports
    # why it cannot be measured must still be admitted, or the rollout is stuck on a misleading error.
    from rollouts.cluster.apiserver.admission import review

    run = build(templates, analysis).model_dump(by_alias=True, exclude_none=True, mode="json")
    errors, _ = review({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", **run})
    assert errors == []
