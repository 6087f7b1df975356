"""Shared by the CLI verb tests: a home folder with the e2e canary manifests applied, and a runner that
calls the `rollouts` app in-process (stdout and stderr kept apart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from rollouts.cluster.store import SQLiteStore
from tests.cli.serving import serve
from tests.e2e.manifests import CANARY


def run(home: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    serve(home)  # the verb goes through the API server of this home, stopped when the test ends
    runner = CliRunner()
    return runner.invoke(app, [*args, "--home", str(home)],
                         env={"ROLLOUTS_NAMESPACE": "", "NO_COLOR": "1", "KUBECONFIG": "", **(env or {})}, input=input,
                         catch_exceptions=False)


def seeded_home(tmp_path: Path, manifest: str = CANARY) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    file = tmp_path / "app.yaml"
    file.write_text(manifest)
    result = run(home, "apply", "-f", str(file))
    assert result.exit_code == 0, result.output + result.stderr
    return home


def store(home: Path) -> SQLiteStore:
    return SQLiteStore(home / "state.db")


def get(home: Path, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
    with store(home) as s:
        return s.get(kind, namespace, name)
