"""The API server a CLI test talks to: the test's home served API-only from a thread of the test process
(`tests.cluster.conftest.start_cluster`), started on first use and stopped when the test ends, so every
verb goes through HTTP to a real server over the seeded SQLite store and nothing is auto-started."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.cluster.conftest import Cluster, start_cluster

_serving: dict[Path, tuple[Cluster, Callable[[], None]]] = {}


def serve(home: Path) -> Cluster:
    """The server of `home`, started if this test has not started it yet."""
    key = Path(home).resolve()
    if key not in _serving:
        _serving[key] = start_cluster(key)
    return _serving[key][0]


def stop_all() -> None:
    while _serving:
        _, (_, stop) = _serving.popitem()
        stop()
