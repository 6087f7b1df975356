"""Fixtures for store tests: a fresh SQLite store with a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollouts.cluster.store import SQLiteStore


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock):
    s = SQLiteStore(tmp_path / "state.db", clock=clock, poll_interval=0.02)
    yield s
    s.close()


def _rollout(name: str = "web", namespace: str = "default", **extra) -> dict:
    obj = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app", "image": "web:1"}]}}},
    }
    obj.update(extra)
    return obj


@pytest.fixture
def make_rollout():
    """Builds a minimal Rollout document: make_rollout(name, namespace, **top_level_fields)."""
    return _rollout
