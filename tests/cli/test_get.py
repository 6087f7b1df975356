"""`get`, `list rollouts`, `describe` and `history` on a store populated without a controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import Result

from tests.cli.fixtures import Clock, open_home, rollout

Cli = Callable[..., Result]
REPO = Path(__file__).resolve().parents[2]


def _env(home: Path) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "ROLLOUTS_HOME": str(home), "PYTHONPATH": path, "NO_COLOR": "1"}


@pytest.mark.parametrize(
    ("args", "first_line", "expected"),
    [
        (["get", "ro"], "NAME                         DESIRED  CURRENT  UP-TO-DATE  AVAILABLE  AGE",
         "echo-rollout                 1        2        1           2"),
        (["get", "rs"], "NAME                                    DESIRED  CURRENT  READY  AGE",
         "echo-rollout-948d9c9f9                  0        0        0"),
        (["get", "po", "-o", "wide"], "NAME", "127.0.0.1  41002  64fb847897"),
        (["get", "ar"], "NAME", "rollout-background-analysis-db976bc44-2  Failed"),
        (["get", "ev", "--field-selector", "involvedObject.name=echo-rollout"], "LAST SEEN",
         "Normal  RolloutPaused  rollout/echo-rollout  Rollout is paused (CanaryPauseStep)"),
        (["get", "rs", "-l", "rollouts-pod-template-hash=578bfdb4b8"], "NAME", "echo-rollout-578bfdb4b8"),
        (["get", "ro", "-A"], "NAMESPACE", "default    echo-rollout"),
    ],
    ids=["rollouts", "replicasets", "pods-wide", "analysisruns", "events-field-selector", "label-selector",
         "all-namespaces"],
)
def test_tables(cli: Cli, args: list[str], first_line: str, expected: str) -> None:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(first_line)
    assert any(expected in line for line in lines[1:]), result.output


def test_label_selector_filters(cli: Cli) -> None:
    out = cli("get", "rs", "-l", "rollouts-pod-template-hash=578bfdb4b8").output.splitlines()
    assert len(out) == 2


@pytest.mark.parametrize("form", [["rollout", "echo-rollout"], ["ro/echo-rollout"],
                                  ["rollouts.argoproj.io/echo-rollout"]], ids=["kind-name", "short", "group"])
def test_get_rollout_tree_in_every_name_form(cli: Cli, form: list[str]) -> None:
    result = cli("get", *form, "--no-color")
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "Name:            echo-rollout"
    assert "│  └──⧉ echo-rollout-64fb847897           ReplicaSet  ✔ Healthy     " in result.output


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_get_rollout_object_as_json_or_yaml(cli: Cli, fmt: str) -> None:
    result = cli("get", "rollout", "echo-rollout", "-o", fmt)
    doc = json.loads(result.output) if fmt == "json" else yaml.safe_load(result.output)
    assert doc["kind"] == "Rollout" and doc["status"]["stableRS"] == "578bfdb4b8"


def test_list_output_of_many_is_a_list(cli: Cli) -> None:
    doc = json.loads(cli("get", "ro", "-o", "json").output)
    assert doc["kind"] == "List" and [i["metadata"]["name"] for i in doc["items"]] == [
        "echo-rollout", "rollout-background-analysis"]


def test_name_output(cli: Cli) -> None:
    assert cli("get", "ar", "-o", "name").output == \
        "analysisrun.argoproj.io/rollout-background-analysis-db976bc44-2\n"
    assert cli("get", "rs", "-l", "rollouts-pod-template-hash=578bfdb4b8", "-o", "name").output == \
        "replicaset.apps/echo-rollout-578bfdb4b8\n"


def test_services_endpoints_ingress_and_secrets(home: Path, cli: Cli) -> None:
    store = open_home(home)
    store.create({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": "echo", "annotations": {"rollouts.io/port": "40100"}},
                  "spec": {"selector": {"rollouts-pod-template-hash": "64fb847897"}, "ports": [{"port": 80}]}})
    store.create({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                  "metadata": {"name": "echo-canary", "annotations": {
                      "nginx.ingress.kubernetes.io/canary": "true",
                      "nginx.ingress.kubernetes.io/canary-weight": "30", "rollouts.io/port": "40200"}},
                  "spec": {"rules": [{"host": "echo.local"}]}})
    store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
                  "data": {"password": "c2VjcmV0LXZhbHVl"}})
    assert "127.0.0.1:40100" in cli("get", "svc").output
    ep = cli("get", "ep", "echo").output.splitlines()
    assert ep[1].split()[:2] == ["echo", "127.0.0.1:41002"]
    assert "127.0.0.1:40200" in cli("get", "ing").output
    assert "nginx.ingress.kubernetes.io/canary-weight: '30'" in cli("get", "ing", "echo-canary", "-o", "yaml").output
    table = cli("get", "secret").output
    assert "token" in table and "c2VjcmV0LXZhbHVl" not in table and "secret-value" not in table
    assert "c2VjcmV0LXZhbHVl" not in cli("describe", "secret", "token").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "rollout", "nope"], 'error: rollouts.argoproj.io "nope" not found in namespace "default"\n'),
        (["get", "rollout", "echo-rollout", "-n", "prod"],
         'error: rollouts.argoproj.io "echo-rollout" not found in namespace "prod"\n'),
        (["describe", "ar", "nope"], 'error: analysisruns.argoproj.io "nope" not found in namespace "default"\n'),
        (["history", "nope"], 'error: rollouts.argoproj.io "nope" not found in namespace "default"\n'),
    ],
    ids=["get-rollout", "other-namespace", "describe-run", "history"],
)
def test_not_found_is_one_line(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stderr == message


def test_wrong_kind_lists_valid_kinds(cli: Cli) -> None:
    result = cli("get", "deployments")
    assert result.exit_code == 1
    assert 'unknown resource type "deployments"' in result.stderr and "ro" in result.stderr and "svc" in result.stderr


def test_list_rollouts(home: Path, cli: Cli) -> None:
    store = open_home(home, Clock())
    store.create(rollout("bg", image="app:1", blue_green=True))
    lines = cli("list", "rollouts").output.splitlines()
    assert lines[0].split() == ["NAME", "STRATEGY", "STATUS", "STEP", "SET-WEIGHT", "READY", "DESIRED",
                                "UP-TO-DATE", "AVAILABLE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["echo-rollout"] == ["echo-rollout", "Canary", "Paused", "1/6", "30", "2/2", "1", "1", "2"]
    assert rows["bg"][1:5] == ["BlueGreen", "Progressing", "-", "-"]
    assert cli("list", "rollouts", "-A").output.splitlines()[0].startswith("NAMESPACE  NAME")
    assert len(cli("list", "rollouts", "--name", "bg").output.splitlines()) == 2


def test_describe_rollout_and_run(cli: Cli) -> None:
    text = cli("describe", "rollout", "echo-rollout").output
    assert "Phase:              ॥ Paused" in text and "► 1: pause" in text
    assert text.rstrip().splitlines()[-1].split()[:2] == ["Normal", "RolloutPaused"]
    run = cli("describe", "ar", "rollout-background-analysis-db976bc44-2").output
    assert "Measurements:" in run and "Failed  0.5" in run and "SuccessCondition: result > 0.9" in run


def test_describe_template(home: Path, cli: Cli) -> None:
    open_home(home).create({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
                            "metadata": {"name": "success-rate"},
                            "spec": {"args": [{"name": "service"}], "metrics": [{
                                "name": "rate", "interval": "1m", "successCondition": "result[0] >= 0.95",
                                "provider": {"prometheus": {"address": "http://p:9090", "query": "sum(x)"}}}]}})
    text = cli("describe", "at", "success-rate").output
    assert "Provider:         prometheus" in text and "Query:            sum(x)" in text
    assert "service:            <required>" in text


def test_name_output_pipes_into_describe(home: Path) -> None:
    script = (f'{sys.executable} -m rollouts describe '
              f'"$({sys.executable} -m rollouts get analysisrun -l rollout-type=Background -o name | head -1)"')
    result = subprocess.run(["sh", "-c", script], env=_env(home), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Name:                 rollout-background-analysis-db976bc44-2\n")


def test_history_outcomes(home: Path, cli: Cli) -> None:
    store = open_home(home)
    template = {"spec": {"containers": [{"name": "echo", "image": "a"}]}}
    store.record_revision("default", "echo-rollout", 1, "948d9c9f9", {"echo": "echo:1"}, template)
    store.set_revision_outcome("default", "echo-rollout", 1, "promoted", "RolloutCompleted")
    store.record_revision("default", "echo-rollout", 2, "578bfdb4b8", {"echo": "echo:2"}, template)
    store.record_revision("default", "echo-rollout", 3, "aaaa", {"echo": "echo:3"}, template)
    store.set_revision_outcome("default", "echo-rollout", 3, "aborted", "metric failed")
    store.record_revision("default", "echo-rollout", 4, "bbbb", {"echo": "echo:4"}, template)
    store.record_revision("default", "echo-rollout", 5, "948d9c9f9", {"echo": "echo:1"}, template)
    entries = {e["revision"]: e for e in json.loads(cli("history", "echo-rollout", "-o", "json").output)}
    assert {n: e["outcome"] for n, e in entries.items()} == {
        1: "promoted", 2: "superseded", 3: "aborted", 4: "rolled back", 5: "current"}
    assert entries[4]["cause"] == "rolled back to revision 1 (re-released as revision 5)"
    assert entries[3]["cause"] == "metric failed"
    table = cli("history", "echo-rollout").output.splitlines()
    assert table[0].split() == ["REVISION", "IMAGES", "CREATED", "OUTCOME", "CAUSE"]
    assert [row.split()[0] for row in table[1:]] == ["1", "2", "3", "4", "5"]  # oldest first, as the JSON


def test_fast_path_matches_full_cli(home: Path, cli: Cli) -> None:
    fast = subprocess.run([sys.executable, "-m", "rollouts", "get", "rollout", "echo-rollout"],
                          env=_env(home), capture_output=True, text=True, timeout=60)
    assert fast.returncode == 0 and "\x1b[" not in fast.stdout
    slow = cli("get", "rollout", "echo-rollout", "--no-color").output
    # ages may tick between the two calls; the layout must be the same
    assert [line.split()[:2] for line in fast.stdout.splitlines()] == [line.split()[:2] for line in slow.splitlines()]
    missing = subprocess.run([sys.executable, "-m", "rollouts", "get", "ro", "x", "-n", "prod"],
                             env=_env(home), capture_output=True, text=True, timeout=60)
    assert (missing.returncode, missing.stderr) == (1, 'error: rollouts.argoproj.io "x" not found in namespace "prod"\n')


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["get", "rollout", "a"], ("a", {}, False)),
        (["get", "ro/a", "-n", "x", "--no-color"], ("a", {"namespace": "x"}, True)),
        (["get", "rollouts.argoproj.io", "a", "--home=/h"], ("a", {"home": "/h"}, False)),
        (["get", "rollout", "a", "--kubeconfig", "k", "--context=c"], ("a", {"kubeconfig": "k", "context": "c"}, False)),
        (["get", "rollout", "a", "-w"], None),
        (["get", "rollout", "a", "-o", "json"], None),
        (["get", "pods"], None),
        (["list", "rollouts"], None),
    ],
    ids=["plain", "slash-ns-nocolor", "group-home", "kubeconfig-context", "watch", "output", "other-kind", "other-verb"],
)
def test_fast_path_only_takes_plain_get_rollout(argv: list[str], parsed: object) -> None:
    from rollouts.cli.fast import _parse

    assert _parse(argv) == parsed


def test_watch_redraws_on_change(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rollouts", "get", "rollout", "echo-rollout", "-w",
                             "--timeout-seconds", "30"], env=_env(home), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(3)]
        assert first[2] == "Status:          ॥ Paused\n"
        store = open_home(home)
        store.patch("Rollout", "default", "echo-rollout",
                    {"status": {"phase": "Healthy", "message": None}}, subresource="status")
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if line == "Status:          ✔ Healthy\n":
                break
        assert seen[-1] == "Status:          ✔ Healthy\n"
    finally:
        proc.kill()
        proc.wait()


def test_table_watch_prints_new_rows(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rollouts", "get", "rs", "-w", "--timeout-seconds", "30"],
                            env=_env(home), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("NAME")
        for _ in range(5):
            proc.stdout.readline()
        open_home(home).patch("ReplicaSet", "default", "echo-rollout-948d9c9f9", {"spec": {"replicas": 3}})
        assert proc.stdout.readline().split()[:2] == ["echo-rollout-948d9c9f9", "3"]
    finally:
        proc.kill()
        proc.wait()
