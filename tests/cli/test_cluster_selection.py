"""Which cluster the CLI talks to: only a kubeconfig (no rollouts home at all), root and verb
--kubeconfig/--context, an unreachable cluster as one error line, `version` naming the cluster, and the
home's local cluster started in the background (with one note) when it is the one selected and is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.connection import STATE_FILE, local_home
from rollouts.cli.main import app
from tests.cli.fixtures import Clock, open_home, paused_canary
from tests.cli.serving import serve

REPO = Path(__file__).resolve().parents[2]


def _env(user_home: Path, **extra: str) -> dict[str, str]:
    """A user with no ~/.kube/config and no rollouts home: only what the command line says counts."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME", "ROLLOUTS_NAMESPACE")}
    path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**env, "HOME": str(user_home), "PYTHONPATH": path, "NO_COLOR": "1", **extra}


def _rollouts(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rollouts", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=90)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A seeded store served API-only; returns the kubeconfig that points at it."""
    server_home = tmp_path / "server"
    server_home.mkdir()
    clock = Clock()
    store = open_home(server_home, clock)
    paused_canary(store, clock)
    store.close()
    return serve(server_home).kubeconfig


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("args", [
    ["get", "rollout", "echo-rollout"],  # the fast path
    ["get", "rollout", "echo-rollout", "-o", "name"],  # the full CLI
    ["list", "rollouts"],
], ids=["fast-get", "get-output", "list"])
def test_cli_works_with_only_a_kubeconfig(served: Path, user_home: Path, args: list[str]) -> None:
    copied = user_home / "cluster.yaml"  # a kubeconfig outside any rollouts home
    copied.write_text(served.read_text())
    done = _rollouts(*args, "--kubeconfig", str(copied), env=_env(user_home), cwd=user_home)
    assert done.returncode == 0, done.stderr
    assert "echo-rollout" in done.stdout
    assert done.stderr == ""
    assert not (user_home / ".rollouts").exists()  # no local home was made, nothing was started


def test_kubeconfig_env_and_root_option_select_the_cluster(served: Path, user_home: Path) -> None:
    env = _env(user_home, KUBECONFIG=str(served))
    by_env = _rollouts("list", "rollouts", env=env, cwd=user_home)
    assert (by_env.returncode, by_env.stderr) == (0, "")
    assert "echo-rollout" in by_env.stdout
    runner = CliRunner()
    by_root = runner.invoke(app, ["--kubeconfig", str(served), "get", "rollout", "echo-rollout", "-o", "name"],
                            env={"KUBECONFIG": "", "ROLLOUTS_HOME": ""}, catch_exceptions=False)
    assert (by_root.exit_code, by_root.stdout) == (0, "rollout.argoproj.io/echo-rollout\n")
    bad_context = runner.invoke(app, ["--kubeconfig", str(served), "--context", "nope", "list", "rollouts"],
                                env={"KUBECONFIG": "", "ROLLOUTS_HOME": ""}, catch_exceptions=False)
    assert bad_context.exit_code == 1
    assert 'context "nope" does not exist (valid: rollouts-local)' in bad_context.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("args", [["get", "rollout", "x"], ["list", "rollouts"], ["history", "x"]],
                         ids=["fast-get", "list", "history"])
def test_unreachable_cluster_is_one_error_line_naming_server_and_kubeconfig(user_home: Path,
                                                                             args: list[str]) -> None:
    port = _free_port()  # nothing listens there
    kubeconfig = user_home / "gone.yaml"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "users": [{"name": "gone", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}]}))
    done = _rollouts(*args, "--kubeconfig", str(kubeconfig), env=_env(user_home), cwd=user_home)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: cannot reach the Kubernetes API at https://127.0.0.1:{port}")
    assert str(kubeconfig) in lines[0]


def test_version_names_the_cluster_in_use(served: Path, user_home: Path) -> None:
    done = _rollouts("version", "--kubeconfig", str(served), env=_env(user_home), cwd=user_home)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("rollouts: v")
    assert second.startswith("cluster: context rollouts-local (https://127.0.0.1:")
    assert second.endswith(f"namespace default) from {served}")
    nothing = _rollouts("version", env=_env(user_home, ROLLOUTS_HOME=str(user_home / "h")), cwd=user_home)
    assert nothing.stdout.splitlines()[1].startswith("cluster: the local cluster of ")
    assert "not started yet" in nothing.stdout
    unconfigured = _rollouts("version", env=_env(user_home), cwd=user_home)
    assert unconfigured.stdout.splitlines()[1] == (f"cluster: the local cluster of {user_home / '.rollouts'} "
                                                   "(not started yet: the first command starts it)")
    assert not (user_home / ".rollouts").exists()  # version only looks


@pytest.mark.parametrize(("home_arg", "kubeconfig", "context", "chosen"), [
    ("/h", None, None, "/h"),
    (None, None, None, None),
    ("/h", "k.yaml", None, None),
    ("/h", None, "rollouts-local", "/h"),
    ("/h", None, "prod", None),
], ids=["home", "nothing", "kubeconfig-wins", "local-context", "other-context"])
def test_explicit_home_selects_its_local_cluster(tmp_path: Path, home_arg: str | None, kubeconfig: str | None,
                                                 context: str | None, chosen: str | None) -> None:
    home = str(tmp_path / home_arg.strip("/")) if home_arg else None
    found = local_home(home, kubeconfig, context, env={})
    assert (str(found) if found else None) == (str(tmp_path / chosen.strip("/")) if chosen else None)
    from_env = local_home(None, kubeconfig, context, env={"ROLLOUTS_HOME": home} if home else {})
    assert from_env == found
    with_kubeconfig_env = local_home(home, None, context, env={"KUBECONFIG": "/k"})
    assert with_kubeconfig_env is None


def test_state_file_name_matches_the_servers() -> None:
    from rollouts.cluster.apiserver.server import STATE_FILE as SERVER_STATE_FILE

    assert STATE_FILE == SERVER_STATE_FILE


@pytest.fixture
def down_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "auto"
    yield home
    from rollouts.cluster.apiserver.server import stop_background

    stop_background(home)  # whatever the test did, leave nothing running


def test_local_cluster_is_started_in_the_background_with_a_note(down_home: Path, user_home: Path) -> None:
    env = _env(user_home)
    first = _rollouts("list", "rollouts", "--home", str(down_home), env=env, cwd=user_home)
    assert first.returncode == 0, first.stderr
    note = first.stderr.splitlines()
    assert len(note) == 2, first.stderr  # the note, then kubectl's "No resources found"
    assert note[0].startswith("started the local cluster at https://127.0.0.1:")
    assert note[0].endswith("; rollouts cluster down stops it")
    assert note[1] == "No resources found in default namespace."
    again = _rollouts("list", "rollouts", "--home", str(down_home), env=env, cwd=user_home)
    assert again.stderr == "No resources found in default namespace.\n"  # running now: no second start
    down = _rollouts("cluster", "down", "--home", str(down_home), env=env, cwd=user_home)
    assert down.stdout == "local cluster stopped\n"
    status = _rollouts("cluster", "status", "--home", str(down_home), env=env, cwd=user_home)
    assert status.returncode == 1
