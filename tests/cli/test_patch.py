"""`rollouts patch` and `rollouts scale`: merge and JSON patches, lint before write, and their errors."""

from __future__ import annotations

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
    from rollouts.store.sqlite import SQLiteStore

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
