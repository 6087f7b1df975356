"""Models: round trips through the manifest form, kinds registry, resource names and defaults."""

from __future__ import annotations

import pytest

from rollouts.spec import defaults
from rollouts.spec.analysis import AnalysisTemplate, Metric
from rollouts.spec.kinds import KINDS, UnknownKindError, parse_object, resolve_resource
from rollouts.spec.rollout import Rollout
from tests.spec.helpers import BLUE_GREEN, ROLLOUT, TEMPLATE


@pytest.mark.parametrize("doc", [ROLLOUT, BLUE_GREEN, TEMPLATE], ids=["canary", "blue-green", "template"])
def test_round_trip(doc: dict) -> None:
    model = parse_object(doc, strict=True)
    # defaulted empty maps (labels, annotations) are written out; everything given comes back as given
    assert _drop_empty(model.to_dict()) == doc  # type: ignore[attr-defined]
    assert parse_object(model.to_dict()) == model  # type: ignore[attr-defined]


def _drop_empty(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v != {}}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def test_registry_covers_the_kinds() -> None:
    assert {kind for _, kind in KINDS} == {
        "Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun", "Experiment",
        "Service", "Secret", "ConfigMap", "Ingress",
    }


def test_unknown_kind() -> None:
    with pytest.raises(UnknownKindError, match='unknown kind "Frob"'):
        parse_object({"apiVersion": "v1", "kind": "Frob"})


def test_strict_parsing_refuses_quoted_numbers() -> None:
    doc = {**ROLLOUT, "spec": {**ROLLOUT["spec"], "replicas": "3"}}
    assert isinstance(parse_object(doc), Rollout)
    with pytest.raises(ValueError):
        parse_object(doc, strict=True)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("ro", "Rollout"), ("Rollouts", "Rollout"), ("ar", "AnalysisRun"), ("at", "AnalysisTemplate"),
     ("cat", "ClusterAnalysisTemplate"), ("svc", "Service"), ("ing", "Ingress"), ("ingresses", "Ingress"),
     ("secrets", "Secret"), ("cm", "ConfigMap"), ("exp", "Experiment"), ("rs", "ReplicaSet"), ("po", "Pod"),
     ("ep", "Endpoints"), ("ev", "Event"), ("rollouts.argoproj.io", "Rollout")],
)
def test_resource_names(name: str, kind: str) -> None:
    assert resolve_resource(name) == kind


def test_unknown_resource_name() -> None:
    with pytest.raises(UnknownKindError, match="valid:"):
        resolve_resource("rolls")


def test_rollout_defaults() -> None:
    bare = Rollout.model_validate({"spec": {"strategy": {"canary": {}, "blueGreen": {"activeService": "a"}}}})
    canary, bg = bare.spec.strategy.canary, bare.spec.strategy.blue_green
    assert canary is not None and bg is not None
    assert defaults.replicas(bare) == 1
    assert defaults.max_surge(canary) == "25%"
    assert defaults.max_unavailable(canary) == "25%"
    assert defaults.progress_deadline_seconds(bare) == 600
    assert defaults.revision_history_limit(bare) == 10
    assert defaults.max_traffic_weight(bare) == 100
    assert defaults.scale_down_delay_seconds(canary) == 0  # only with traffic routing
    assert defaults.scale_down_delay_seconds(bg) == 30
    assert defaults.abort_scale_down_delay_seconds(bg) == 30
    assert defaults.auto_promotion_enabled(bg) is True
    assert defaults.auto_promotion_seconds(bg) == 0
    assert (defaults.successful_run_history_limit(bare), defaults.unsuccessful_run_history_limit(bare)) == (5, 5)


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [(10, None, None, (3, 2)), (4, 0, "0%", (0, 1)), (3, "50%", 1, (2, 1))],
    ids=["quarter", "both-zero-uses-one", "mixed"],
)
def test_surge_and_unavailable(replicas: int, surge: object, unavailable: object, expected: tuple[int, int]) -> None:
    rollout = Rollout.model_validate(
        {"spec": {"replicas": replicas, "strategy": {"canary": {"maxSurge": surge, "maxUnavailable": unavailable}}}}
    )
    canary = rollout.spec.strategy.canary
    assert canary is not None
    assert (defaults.max_surge_replicas(rollout, canary), defaults.max_unavailable_replicas(rollout, canary)) == expected


@pytest.mark.parametrize(
    ("metric", "count"),
    [({}, 1), ({"interval": "10s"}, None), ({"interval": "10s", "count": 0}, None), ({"count": "4"}, 4)],
    ids=["single", "unlimited", "zero-is-unlimited", "string-count"],
)
def test_metric_defaults(metric: dict, count: int | None) -> None:
    model = Metric.model_validate({"name": "m", "provider": {"web": {"url": "u"}}, **metric})
    assert defaults.effective_count(model) == count
    assert defaults.failure_limit(model) == 0
    assert defaults.consecutive_error_limit(model) == 4
    assert defaults.inconclusive_limit(model) == 0


def test_template_model_keeps_args() -> None:
    model = AnalysisTemplate.model_validate(TEMPLATE)
    assert [a.name for a in model.spec.args or []] == ["svc"]
