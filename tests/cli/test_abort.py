"""`rollouts abort --all`: the mass rollback, one line per rollout, non-zero exit when one fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.cli.verbs_support import get, run, seeded_home, store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = seeded_home(tmp_path)
    with store(home) as s:
        shop = s.get("Rollout", "default", "shop")
        for ns, name in (("default", "cart"), ("other", "shop")):
            twin = copy.deepcopy(shop)
            twin["metadata"] = {"name": name, "namespace": ns}
            s.create(twin)
    return home


def aborted(home: Path, namespace: str, name: str) -> bool:
    return bool((get(home, "Rollout", name, namespace).get("status") or {}).get("abort"))


def test_abort_all_in_a_namespace(home: Path) -> None:
    result = run(home, "abort", "--all")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["cart: rollout 'cart' aborted", "shop: rollout 'shop' aborted"]
    assert aborted(home, "default", "cart") and aborted(home, "default", "shop")
    assert not aborted(home, "other", "shop")


def test_abort_all_namespaces(home: Path) -> None:
    result = run(home, "abort", "--all", "-A")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3 and "other/shop: rollout 'shop' aborted" in result.stdout
    assert aborted(home, "other", "shop")


def test_abort_all_reports_a_failure_and_continues(home: Path) -> None:
    with store(home) as s:
        broken = copy.deepcopy(s.get("Rollout", "default", "cart"))
        broken["metadata"] = {"name": "broken", "namespace": "default"}
        broken["spec"]["replicas"] = "many"
        s.create(broken)
    result = run(home, "abort", "--all")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("broken: failed:") and lines[1:] == [
        "cart: rollout 'cart' aborted", "shop: rollout 'shop' aborted"]
    assert aborted(home, "default", "shop")


def test_abort_all_in_an_empty_namespace(home: Path) -> None:
    result = run(home, "abort", "--all", "-n", "empty")
    assert result.exit_code == 0 and 'No rollouts found in namespace "empty"' in result.stderr


@pytest.mark.parametrize("args, message", [
    (["shop", "--all"], "a rollout name or --all"),
    ([], "a rollout name or --all"),
    (["shop", "-A"], "only goes with --all"),
    (["nope"], 'rollouts.argoproj.io "nope" not found'),
    (["service/shop"], "is a Service, not a Rollout"),
], ids=["both", "neither", "A-without-all", "unknown", "wrong-kind"])
def test_abort_errors(home: Path, args: list[str], message: str) -> None:
    result = run(home, "abort", *args)
    assert result.exit_code == 1 and message in result.stderr


def test_abort_one_by_kind_slash_name(home: Path) -> None:
    result = run(home, "abort", "rollout.argoproj.io/shop")
    assert result.exit_code == 0 and aborted(home, "default", "shop")
