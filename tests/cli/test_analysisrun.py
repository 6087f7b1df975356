"""`rollouts create analysisrun --from` and `rollouts terminate analysisrun`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.verbs_support import get, run, seeded_home, store

TEMPLATES = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: rate}
spec:
  args: [{name: service-name}, {name: window, value: 1m}]
  metrics:
  - name: rate
    successCondition: result >= 0.99
    provider:
      plugin:
        rollouts/traffic: {service: "{{args.service-name}}", metric: success-rate, window: "{{args.window}}"}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {name: everywhere}
spec:
  metrics:
  - name: web
    successCondition: result == 'ok'
    provider: {web: {url: "http://127.0.0.1:9/"}}
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return seeded_home(tmp_path, TEMPLATES)


def test_create_from_template_with_args(home: Path) -> None:
    result = run(home, "create", "analysisrun", "--from", "rate", "-a", "service-name=shop", "--name", "check")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "analysisrun.argoproj.io/check created"
    created = get(home, "AnalysisRun", "check")
    assert {a["name"]: a.get("value") for a in created["spec"]["args"]} == {"service-name": "shop", "window": "1m"}
    assert [m["name"] for m in created["spec"]["metrics"]] == ["rate"]
    assert created["metadata"]["labels"] == {"analysistemplate": "rate"}
    assert "status" not in created


def test_create_from_cluster_template_generates_a_name(home: Path) -> None:
    result = run(home, "create", "ar", "--from", "everywhere", "--global")
    assert result.exit_code == 0, result.stderr
    name = result.stdout.split("/", 1)[1].split()[0]
    assert name.startswith("everywhere-") and len(name) == len("everywhere-") + 5
    assert get(home, "AnalysisRun", name)["spec"]["metrics"][0]["name"] == "web"


@pytest.mark.parametrize("args, code, message", [
    (["analysisrun", "--from", "nope"], 1, 'analysistemplates "nope" in namespace "default" not found'),
    (["analysisrun", "--from", "everywhere"], 1, "add --global"),
    (["analysisrun", "--from", "rate"], 2, "service-name"),
    (["analysisrun", "--from", "rate", "-a", "oops"], 2, "is not NAME=VALUE"),
    (["rollout", "--from", "rate"], 1, "create analysisrun --from TEMPLATE"),
    (["gadget", "--from", "rate"], 1, 'unknown resource type "gadget"'),
    ([], 1, "-f FILE is required"),
], ids=["unknown-template", "cluster-without-global", "missing-arg", "bad-arg", "wrong-kind", "unknown-kind",
        "nothing"])
def test_create_errors(home: Path, args: list[str], code: int, message: str) -> None:
    result = run(home, "create", *args)
    assert result.exit_code == code and message in result.stderr
    with store(home) as s:
        assert s.list("AnalysisRun") == []


def test_create_twice_with_the_same_name(home: Path) -> None:
    args = ["create", "analysisrun", "--from", "everywhere", "--global", "--name", "once"]
    assert run(home, *args).exit_code == 0
    result = run(home, *args)
    assert result.exit_code == 1 and "already exists" in result.stderr


def test_terminate(home: Path) -> None:
    assert run(home, "create", "analysisrun", "--from", "everywhere", "--global", "--name", "r1").exit_code == 0
    result = run(home, "terminate", "analysisrun", "analysisrun/r1")
    assert result.exit_code == 0 and result.stdout.strip() == "analysisrun 'r1' terminated"
    assert get(home, "AnalysisRun", "r1")["spec"]["terminate"] is True


@pytest.mark.parametrize("name, message", [
    ("nope", 'analysisruns "nope" in namespace "default" not found'),
    ("rollout/shop", "is a Rollout, not an AnalysisRun"),
], ids=["unknown", "wrong-kind"])
def test_terminate_errors(home: Path, name: str, message: str) -> None:
    result = run(home, "terminate", "analysisrun", name)
    assert result.exit_code == 1 and message in result.stderr
