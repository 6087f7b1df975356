"""The controller's in-memory collections stay bounded while nothing changes (issue: RSS grew ~1.2 MB/s
with infra/rollouts applied, through the engine's identity memos filling with each pass's fresh models)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.controller.loop import Controller
from rollouts.controller.parsed import ModelCache
from rollouts.engine import hashing, validation
from rollouts.engine.memo import MEMO_LIMIT
from rollouts.spec.rollout import Rollout

REPO = Path(__file__).resolve().parents[2]


def _memo_sizes() -> dict[str, int]:
    return {"validation": len(validation._memo), "template_hash": len(hashing._template_memo),
            "steps_hash": len(hashing._steps_memo)}


@pytest.fixture
def applied_home(tmp_path: Path) -> Path:
    from rollouts.cluster.apiserver.server import start_background, stop_background

    home = tmp_path / "home"
    home.mkdir()
    start_background(home, runtime=None)  # `apply` goes through the API; no pods are wanted here
    try:
        subprocess.run([sys.executable, "-m", "rollouts", "apply", "-f", str(REPO / "infra" / "rollouts")],
                       env={**os.environ, "ROLLOUTS_HOME": str(home)}, check=True, capture_output=True, timeout=60)
    finally:
        stop_background(home)
    return home


def test_memory_growth_memos_flat_after_repeated_reconciles(applied_home: Path) -> None:
    store = SQLiteStore(applied_home / "state.db")
    controller = Controller(store=store)
    try:
        for _ in range(3):  # warm-up: the first passes create ReplicaSets and statuses
            asyncio.run(controller.run_once())
        before = _memo_sizes()
        for _ in range(30):
            asyncio.run(controller.run_once())
        after = _memo_sizes()
    finally:
        store.close()
    assert after == before, f"memos grew over 30 passes with nothing changing: {before} -> {after}"
    assert len(controller.models) < 200


@pytest.mark.parametrize(("limit", "objects"), [(4, 10), (50, 51), (100, 20)],
                         ids=["far-over", "one-over", "under"])
def test_memory_growth_model_cache_bounded(limit: int, objects: int) -> None:
    cache = ModelCache(limit=limit)
    for i in range(objects):
        obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
               "metadata": {"name": f"r{i}", "namespace": "default", "uid": f"u{i}", "resourceVersion": "1"},
               "spec": {}}
        cache.parse(Rollout, obj)
    assert len(cache) == min(limit, objects)


def test_memory_growth_model_cache_reuses_until_version_changes() -> None:
    cache = ModelCache()
    obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
           "metadata": {"name": "r", "namespace": "default", "uid": "u", "resourceVersion": "1"}, "spec": {}}
    first = cache.parse(Rollout, obj)
    assert cache.parse(Rollout, obj) is first
    changed = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "2"}}
    assert cache.parse(Rollout, changed) is not first
    assert len(cache) == 1


def test_memory_growth_engine_memo_limit_small() -> None:
    # Each entry can hold a Rollout spec and its templates (~100 KB with infra/rollouts' templates).
    assert MEMO_LIMIT <= 1024


def test_memory_growth_traffic_stats_bounded_by_horizon() -> None:
    """The proxy's per-series counters fill a 35-minute ring of per-second buckets (the soak's warm-up),
    then stay flat: a second 40 minutes of steady traffic adds next to nothing."""
    import random
    import tracemalloc

    from rollouts.runtime.local.traffic import DEFAULT_HORIZON_SECONDS, TrafficStats

    now = [1_700_000_000.0]
    stats = TrafficStats(clock=lambda: now[0])
    rand = random.Random(7)

    def traffic(minutes: float, rate: float = 5.0) -> None:
        for _ in range(int(minutes * 60 * rate)):
            now[0] += 1 / rate
            stats.record("default", "svc", "stable", 200, rand.random() * 0.05, pod_hash="abc")

    tracemalloc.start()
    try:
        traffic(DEFAULT_HORIZON_SECONDS / 60 + 5)
        filled = tracemalloc.get_traced_memory()[0]
        traffic(40)
        later = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert later - filled < 0.05 * filled, (filled, later)
