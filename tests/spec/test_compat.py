"""Compatibility: Argo's own example manifests (and this project's infra manifests) lint without errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollouts.spec.loader import load_path, manifest_files
from rollouts.spec.validation import validate

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_WARNING_FRAGMENTS = ("experiments are not run", "workloadRef", "is not used by rollouts", "is not in the input")


def test_every_argo_example_lints_without_errors(shared: Path) -> None:
    examples = shared / "argo-examples"
    problems = validate(load_path(str(examples)))
    assert [p.format() for p in problems if p.is_error] == []
    unexpected = [p.format() for p in problems if not any(f in p.message for f in EXAMPLES_WARNING_FRAGMENTS)]
    assert unexpected == []
    assert len(manifest_files(examples)) >= 20


def test_each_example_file_alone_has_no_errors(shared: Path) -> None:
    for path in manifest_files(shared / "argo-examples"):
        errors = [p.format() for p in validate(load_path(str(path))) if p.is_error]
        assert errors == [], path


def test_project_infra_manifests() -> None:
    infra = REPO / "infra" / "rollouts"
    if not infra.is_dir() or not manifest_files(infra):
        pytest.skip(f"{infra} holds no manifests yet")
    errors = [p.format() for p in validate(load_path(str(infra))) if p.is_error]
    assert errors == []
