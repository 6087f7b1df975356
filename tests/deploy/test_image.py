"""What can be checked of the controller image without a container engine: the wheel builds from the
files the Dockerfile's context lets through (.dockerignore), it carries the package's data files, and
`python -m rollouts controller --help` works from it alone in a clean virtualenv. The virtualenv sees
the machine's site-packages for the dependencies (no network), never the rollouts source tree."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def _context_files() -> list[Path]:
    """The files of the repository a `docker build .` sends, by .dockerignore's rules (last match wins)."""
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    kept = []
    for name in tracked.split("\n"):
        if not name or not (REPO / name).is_file():
            continue
        keep = True
        for rule in rules:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            parts = name.split("/")
            hit = any(fnmatch.fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))
            if pattern.startswith("**/"):
                hit = any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
            if hit:
                keep = negate
        if keep:
            kept.append(Path(name))
    return kept


def test_dockerfile_runs_the_wheel_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(re.fullmatch(r"python:3\.1[1-9]-slim", b) for b in bases), bases
    assert re.search(r"pip wheel .*--no-deps \. -w /wheels", text)
    assert "pip install --no-cache-dir /wheels/*.whl" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    # The last USER wins; numeric so that runAsNonRoot can be verified by the kubelet.
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), users


def test_docker_context_is_only_the_wheel_sources() -> None:
    files = _context_files()
    tops = {f.parts[0] for f in files}
    assert tops == {"pyproject.toml", "README.md", "src"}, tops
    assert not [f for f in files if "__pycache__" in f.parts]


@pytest.mark.integration
def test_controller_help_runs_from_the_wheel_in_a_clean_venv(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for name in _context_files():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, context / name)
    wheels = tmp_path / "wheels"
    # As the Dockerfile builds it: pip fetches the build backend pyproject.toml names (setuptools, wheel).
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", ".", "-w", str(wheels)],
                           cwd=context, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("rollouts-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    data = [p.relative_to(REPO / "src").as_posix() for pattern in ("*.lark", "*.html", "*.js", "*.css")
            for p in (REPO / "src" / "rollouts").rglob(pattern)]
    assert data and not [d for d in data if d not in names], "package data missing from the wheel"
    assert "rollouts/py.typed" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=60)
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--ignore-installed", "--no-cache-dir", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "200"
    where = subprocess.run([str(python), "-c", "import rollouts; print(rollouts.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(venv), f"rollouts imported from {where.stdout} {where.stderr}"
    helped = subprocess.run([str(python), "-m", "rollouts", "controller", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "--metrics-address" in helped.stdout
    script = venv / "bin" / "rollouts"
    assert script.exists(), "the wheel's console script (the image's ENTRYPOINT) is missing"
