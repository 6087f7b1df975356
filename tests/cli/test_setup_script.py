"""`make demo` installs only what the demo needs, `make test` what the tests need (and `.ci/run` still runs
`make test`). scripts/setup.sh runs against stand-ins for dpkg, apt-get and python3 that record what they
were asked to install, so nothing is installed for real."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$RECORD"
{exit}
"""


def _setup(tmp_path: Path, *args: str) -> list[str]:
    fakes = tmp_path / "bin"
    fakes.mkdir()
    record = tmp_path / "record.txt"
    record.touch()
    for name, exit_line in (("dpkg", "exit 1"), ("apt-get", "exit 0"), ("python3", "exit 0"), ("id", "echo 0")):
        script = fakes / name
        script.write_text(RECORDER.replace("{exit}", exit_line))
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fakes}:/usr/bin:/bin", "RECORD": str(record)}
    env.pop("ROLLOUTS_SYSTEM_PACKAGES", None)
    result = subprocess.run(["bash", str(REPO / "scripts/setup.sh"), *args], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in record.read_text().splitlines() if not line.startswith(("dpkg", "id"))]


def test_make_demo_setup_installs_only_the_package(tmp_path: Path) -> None:
    assert _setup(tmp_path, "demo") == ["python3 -m pip install -q -e ."]


@pytest.mark.parametrize("args", [["test"], []], ids=["test", "default"])
def test_make_test_setup_installs_extras_prometheus_and_chromium(tmp_path: Path, args: list[str]) -> None:
    calls = _setup(tmp_path, *args)
    assert "python3 -m pip install -q -e .[test]" in calls
    installs = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert len(installs) == 1 and installs[0].endswith("prometheus chromium"), calls


@pytest.mark.parametrize("target, profile", [("demo", "demo"), ("test", "test")])
def test_make_targets_use_their_own_setup(target: str, profile: str) -> None:
    plan = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert f"./scripts/setup.sh {profile}\n" in plan
    other = "test" if profile == "demo" else "demo"
    assert f"setup.sh {other}" not in plan
    if target == "demo":
        assert "pytest" not in plan and "chromium" not in plan


def test_ci_entry_point_still_runs_make_test() -> None:
    assert "make test" in (REPO / ".ci/run").read_text()
