"""`rollouts patch` and `rollouts scale`: merge and JSON patches, lint before write, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.verbs_support import get, run, seeded_home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return seeded_home(tmp_path)


IMAGE_MERGE = '{"spec":{"template":{"spec":{"containers":[{"name":"shop","image":"rollouts-demo:green"}]}}}}'
IMAGE_JSON = '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"rollouts-demo:green"}]'


@pytest.mark.parametrize("patch_type, body, target", [
    ("merge", IMAGE_MERGE, "rollout shop"),
    ("json", IMAGE_JSON, "rollout shop"),
    ("merge", IMAGE_MERGE, "rollouts.argoproj.io/shop"),
    ("merge", IMAGE_MERGE, "ro/shop"),
    ("merge", "=" + IMAGE_MERGE, "rollout shop"),
], ids=["merge", "json", "kind.group/name", "short/name", "kubectl-p=-spelling"])
def test_patch_changes_the_image_and_bumps_generation(home: Path, patch_type: str, body: str, target: str) -> None:
    before = get(home, "Rollout", "shop")
    result = run(home, "patch", *target.split(), "--type", patch_type, "-p", body)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "rollout/shop patched"
    after = get(home, "Rollout", "shop")
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "rollouts-demo:green"
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1


def test_patch_null_removes_a_field(home: Path) -> None:
    body = '{"spec":{"strategy":{"canary":{"steps":[{"setWeight":100}]}}}}'
    assert run(home, "patch", "rollout", "shop", "-p", body).exit_code == 0
    assert get(home, "Rollout", "shop")["spec"]["strategy"]["canary"]["steps"] == [{"setWeight": 100}]
    body = '{"spec":{"strategy":{"canary":{"abortScaleDownDelaySeconds":null}}}}'
    assert run(home, "patch", "rollout", "shop", "-p", body).exit_code == 0
    assert "abortScaleDownDelaySeconds" not in get(home, "Rollout", "shop")["spec"]["strategy"]["canary"]


def test_same_patch_twice_reports_no_change(home: Path) -> None:
    assert run(home, "patch", "rollout", "shop", "-p", IMAGE_MERGE).exit_code == 0
    version = get(home, "Rollout", "shop")["metadata"]["resourceVersion"]
    result = run(home, "patch", "rollout", "shop", "-p", IMAGE_MERGE)
    assert result.exit_code == 0 and "no change" in result.stdout
    assert get(home, "Rollout", "shop")["metadata"]["resourceVersion"] == version


def test_invalid_result_changes_nothing_and_prints_lint_lines(home: Path) -> None:
    before = get(home, "Rollout", "shop")
    result = run(home, "patch", "rollout", "shop", "-p", '{"spec":{"strategy":{"canary":{"steps":[{"setWeight":140}]}}}}')
    assert result.exit_code == 1
    assert "spec.strategy.canary.steps[0].setWeight" in result.stderr
    assert "nothing was changed" in result.stderr
    assert get(home, "Rollout", "shop") == before


@pytest.mark.parametrize("args, message", [
    (["rollout", "shop", "-p", "{not json"], "--patch is not valid JSON"),
    (["rollout", "shop", "--type", "json", "-p", '{"spec":{}}'], "a json patch must be a list"),
    (["rollout", "shop", "--type", "merge", "-p", "[]"], "a merge patch must be a JSON object"),
    (["rollout", "shop", "--type", "strategic", "-p", "{}"], '"strategic" is not a patch type'),
    (["rollout", "nope", "-p", "{}"], 'rollouts "nope" in namespace "default" not found'),
    (["gadget", "shop", "-p", "{}"], 'unknown resource type "gadget"'),
    (["rollout", "shop", "--type", "json", "-p", '[{"op":"remove","path":"/spec/nothing"}]'], "/spec/nothing"),
    (["rollout", "shop", "-p", '{"metadata":{"name":"other"}}'], "may not change kind or metadata.name"),
    (["rollout", "shop", "-p", '{"metadata":{"resourceVersion":"1"}}'], "the object has been modified"),
], ids=["bad-json", "json-not-list", "merge-not-object", "bad-type", "unknown-rollout", "wrong-kind",
        "json-op-fails", "rename", "conflict"])
def test_patch_errors_are_one_line(home: Path, args: list[str], message: str) -> None:
    before = get(home, "Rollout", "shop")
    result = run(home, "patch", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert get(home, "Rollout", "shop") == before


def test_patch_other_kinds(home: Path) -> None:
    result = run(home, "patch", "svc/shop-canary", "-p", '{"metadata":{"labels":{"team":"web"}}}')
    assert result.exit_code == 0, result.stderr
    assert get(home, "Service", "shop-canary")["metadata"]["labels"]["team"] == "web"


@pytest.mark.parametrize("kind", ["rollout", "ro", "deployment"])
def test_scale_sets_replicas(home: Path, kind: str) -> None:
    result = run(home, "scale", kind, "shop", "--replicas", "5")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "rollout/shop scaled"
    assert get(home, "Rollout", "shop")["spec"]["replicas"] == 5
    assert ("scaling the Rollout" in result.stderr) == (kind == "deployment")


@pytest.mark.parametrize("args, message", [
    (["rollout", "nope", "--replicas", "2"], 'rollouts "nope" in namespace "default" not found'),
    (["service", "shop-stable", "--replicas", "2"], "Service cannot be scaled"),
    (["rollout", "shop", "--replicas", "-1"], "-1 is negative"),
], ids=["unknown", "wrong-kind", "negative"])
def test_scale_errors(home: Path, args: list[str], message: str) -> None:
    result = run(home, "scale", *args)
    assert result.exit_code == 1 and message in result.stderr
    assert get(home, "Rollout", "shop")["spec"]["replicas"] == 2


def test_a_concurrent_status_write_is_retried_not_reported(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rollouts.cluster.store import SQLiteStore

    real_update = SQLiteStore.update
    calls = {"n": 0}

    def update_after_a_status_write(self: SQLiteStore, obj: dict) -> dict:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 1:  # the controller writes status between our read and our write
            self.patch("Rollout", "default", "shop", {"status": {"phase": "Progressing"}}, subresource="status")
        return real_update(self, obj)

    monkeypatch.setattr(SQLiteStore, "update", update_after_a_status_write)
    result = run(home, "patch", "rollout", "shop", "-p", IMAGE_MERGE)
    assert result.exit_code == 0, result.stderr
    assert calls["n"] == 2
    assert get(home, "Rollout", "shop")["spec"]["template"]["spec"]["containers"][0]["image"] == "rollouts-demo:green"


CONTAINER = "/spec/template/spec/containers/0"
REFUSED_PATCHES = [
    ("label-key", "merge", '{"metadata":{"labels":{"bad key!":"v"}}}',
     'metadata.labels.bad key!: "bad key!" is not a valid label key'),
    ("template-label-value", "merge", '{"spec":{"template":{"metadata":{"labels":{"app":"shop","v":"-x-"}}}}}',
     'spec.template.metadata.labels.v: label value "-x-" must be'),
    ("owner-service", "merge",
     '{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Service","name":"shop","uid":"u1"}]}}',
     "metadata.ownerReferences[0].kind: a Service cannot own objects here"),
    ("nul-image", "json", f'[{{"op":"replace","path":"{CONTAINER}/image","value":"img\\u0000:1"}}]',
     "spec.template.spec.containers[0].image: contains a NUL character"),
    ("nul-env", "json", f'[{{"op":"add","path":"{CONTAINER}/env","value":[{{"name":"A","value":"x\\u0000"}}]}}]',
     "spec.template.spec.containers[0].env[0].value: contains a NUL character"),
    ("namespace-change", "merge", '{"metadata":{"namespace":"other"}}', "may not change metadata.namespace"),
    ("namespace-removed", "json", '[{"op":"remove","path":"/metadata/namespace"}]',
     "may not change metadata.namespace"),
    ("metadata-not-mapping", "json", '[{"op":"replace","path":"/metadata","value":1}]',
     "must leave an object with a metadata mapping"),
    ("deep-merge", "merge", '{"spec":' + '{"a":' * 50_000 + "1" + "}" * 50_001, "--patch is nested deeper than 100"),
    ("deep-json", "json", "[" * 50_000 + "]" * 50_000, "--patch is nested deeper than 100 levels"),
    ("copy-doubling", "json", json.dumps([{"op": "add", "path": "/spec/x", "value": ["a" * 1000]}]
                                         + [{"op": "copy", "from": "/spec/x", "path": "/spec/x/-"}] * 64),
     "the copies would add more than"),
    ("oversize", "merge", '{"spec":{"x":"' + "a" * (1024 * 1024) + '"}}', "refused (the limit is 1 MiB)"),
]


@pytest.mark.parametrize(("patch_type", "body", "message"), [c[1:] for c in REFUSED_PATCHES],
                         ids=[c[0] for c in REFUSED_PATCHES])
def test_patch_validates_and_bounds_like_apply(home: Path, patch_type: str, body: str, message: str) -> None:
    import time

    before = get(home, "Rollout", "shop")
    start = time.monotonic()
    result = run(home, "patch", "rollout", "shop", "--type", patch_type, "-p", body)
    assert time.monotonic() - start < 2.0
    assert result.exit_code == 1, result.stdout + result.stderr
    assert message in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert get(home, "Rollout", "shop") == before
