"""`rollouts logs`: pods by name, selector, rollout and canary/stable; the ingress access log; -f."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import interrupting
from tests.cli.verbs_support import run, seeded_home, store

PODS = {  # pod name -> (pod hash, log text)
    "shop-aaa-1": ("aaa", "stable one\n"),
    "shop-aaa-2": ("aaa", "stable two\n"),
    "shop-bbb-1": ("bbb", "canary one\nline two\n"),
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = seeded_home(tmp_path)
    logs = home / "logs"
    logs.mkdir()
    with store(home) as s:
        for name, (pod_hash, text) in PODS.items():
            (logs / f"{name}.log").write_text(text)
            s.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name, "namespace": "default",
                "labels": {"app": "shop", "rollouts-pod-template-hash": pod_hash},
                "annotations": {"rollouts.io/log": str(logs / f"{name}.log")}}})
        s.patch("Rollout", "default", "shop", {"status": {"currentPodHash": "bbb", "stableRS": "aaa"}},
                subresource="status")
    (logs / "ingress.log").write_text("GET / 200 stable\nGET / 200 canary\n")
    (logs / "shop-old-1.log").write_text("from a deleted pod\n")
    (logs / "shop-ccc-gone1.log").write_text("canary that was scaled down\n")
    return home


@pytest.mark.parametrize("args, expected", [
    (["shop-bbb-1"], ["canary one", "line two"]),
    (["pod/shop-aaa-1"], ["stable one"]),
    (["shop-bbb-1", "--tail", "1"], ["line two"]),
    (["shop-old-1"], ["from a deleted pod"]),
    (["-l", "rollouts-pod-template-hash=ccc"], ["[shop-ccc-gone1] canary that was scaled down"]),
    (["-l", "app=shop,rollouts-pod-template-hash=bbb"], ["[shop-bbb-1] canary one", "[shop-bbb-1] line two"]),
    (["shop", "--canary"], ["canary one", "line two"]),
    (["rollout/shop", "--stable"], ["[shop-aaa-1] stable one", "[shop-aaa-2] stable two"]),
    (["shop", "--stable", "--no-prefix"], ["stable one", "stable two"]),
    (["shop"], ["[shop-aaa-1] stable one", "[shop-aaa-2] stable two", "[shop-bbb-1] canary one",
                "[shop-bbb-1] line two"]),
    (["ingress"], ["GET / 200 stable", "GET / 200 canary"]),
    (["ingress", "--tail", "1"], ["GET / 200 canary"]),
], ids=["pod", "pod/name", "tail", "deleted-pod", "deleted-canary", "selector", "canary", "stable", "no-prefix", "rollout",
        "ingress", "ingress-tail"])
def test_logs(home: Path, args: list[str], expected: list[str]) -> None:
    result = run(home, "logs", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize("args, message", [
    (["nope"], 'pods "nope" in namespace "default" not found'),
    (["rollout/nope"], 'rollouts "nope" in namespace "default" not found'),
    (["service/shop-stable"], "not for Service"),
    (["gadget/x"], 'unknown resource type "gadget"'),
    (["shop", "--canary", "--stable"], "exclude each other"),
    (["-l", "app=shop", "--canary"], "need the rollout"),
    ([], "say which logs"),
    (["-l", "app in (", ], "selector"),
], ids=["unknown-pod", "unknown-rollout", "wrong-kind", "unknown-kind", "both", "canary-needs-rollout",
        "nothing", "bad-selector"])
def test_logs_errors(home: Path, args: list[str], message: str) -> None:
    try:
        result = run(home, "logs", *args)
    except Exception as exc:  # a store error surfaces as an exception in-process; main() makes it one line
        assert message in str(exc)
        return
    assert result.exit_code == 1 and message in result.stderr


def test_canary_before_any_release_is_an_error(home: Path) -> None:
    with store(home) as s:
        s.patch("Rollout", "default", "shop", {"status": {"currentPodHash": None}}, subresource="status")
    result = run(home, "logs", "shop", "--canary")
    assert result.exit_code == 1 and "has no canary pods yet" in result.stderr


def test_follow_prints_new_lines_until_interrupted(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rollouts", "logs", "ingress", "-f", "--tail", "0"],
                            env=interrupting.env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + interrupting.START_SECONDS
        line = ""
        with (home / "logs" / "ingress.log").open("a") as log:
            while time.monotonic() < deadline and not line:
                log.write("GET /new 200 canary\n")
                log.flush()
                time.sleep(0.3)
                os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
                line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "GET /new 200 canary"
    finally:
        returncode = interrupting.interrupt(proc)
    assert returncode in (0, 130)


def _read_until(proc: subprocess.Popen[str], wanted: str, deadline: float, poke: Any = None) -> list[str]:
    """Lines of a non-blocking stdout until `wanted` is among them (or the deadline passes)."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    seen: list[str] = []
    while time.monotonic() < deadline and wanted not in seen:
        if poke is not None:
            poke()
        time.sleep(0.2)
        while line := proc.stdout.readline():
            seen.append(line.rstrip("\n"))
    return seen


def test_follow_streams_pod_logs_through_the_api_and_picks_up_new_pods(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rollouts", "logs", "-l", "rollouts-pod-template-hash=bbb",
                             "-f", "--tail", "0"], env=interrupting.env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        log = home / "logs" / "shop-bbb-1.log"
        seen = _read_until(proc, "[shop-bbb-1] appended", time.monotonic() + interrupting.START_SECONDS,
                           lambda: log.open("a").write("appended\n"))
        assert "[shop-bbb-1] appended" in seen
        assert "[shop-bbb-1] canary one" not in seen  # --tail 0: only what is written from now on
        (home / "logs" / "shop-bbb-3.log").write_text("fresh pod\n")
        with store(home) as s:
            s.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "shop-bbb-3", "namespace": "default",
                "labels": {"app": "shop", "rollouts-pod-template-hash": "bbb"}}})
        assert "[shop-bbb-3] fresh pod" in _read_until(proc, "[shop-bbb-3] fresh pod", time.monotonic() + 20)
    finally:
        interrupting.interrupt(proc)


def test_logs_on_a_cluster_that_is_not_a_local_home_use_only_the_api(home: Path, tmp_path: Path) -> None:
    from tests.cli.serving import serve

    elsewhere = tmp_path / "config.yaml"  # not a home's own kubeconfig: no log folder to fall back on
    elsewhere.write_text(serve(home).kubeconfig.read_text())
    env = {"KUBECONFIG": str(elsewhere), "ROLLOUTS_HOME": ""}
    pod = run(home, "logs", "shop-bbb-1", "-c", "shop", "--kubeconfig", str(elsewhere), env=env)
    assert (pod.exit_code, pod.stdout) == (0, "canary one\nline two\n"), pod.stderr
    gone = run(home, "logs", "shop-old-1", "--kubeconfig", str(elsewhere), env=env)
    assert gone.exit_code == 1 and 'pods "shop-old-1" in namespace "default" not found' in gone.stderr
    ingress = run(home, "logs", "ingress", "--kubeconfig", str(elsewhere), env=env)
    assert ingress.exit_code == 1 and "the local cluster's ingress proxy log" in ingress.stderr
