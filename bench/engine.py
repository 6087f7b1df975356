"""Engine benchmark: N rollouts through a traffic-routed canary with analysis, in simulated time.

Steps 10 / analysis / 25 / analysis / 50 / analysis / 75 / analysis / 100; every analysis run turns
Successful 60 virtual seconds after it starts; pods are ready 5 virtual seconds after they are created.
All rollouts share one virtual clock (a heap of wake-up times), like one controller would see them.

Prints reconciles per second (engine time only), p50/p99 microseconds per reconcile, wall time, and the
memory a rollout's in-memory world takes (tracemalloc over a sample).

    python bench/engine.py --rollouts 10000
"""

from __future__ import annotations

import argparse
import gc
import heapq
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

from rollouts.engine.reconcile import reconcile
from rollouts.engine.world import World, successful_after
from rollouts.spec.analysis import AnalysisTemplate
from rollouts.spec.rollout import Rollout

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TEMPLATE = AnalysisTemplate.model_validate(
    {
        "metadata": {"name": "success-rate"},
        "spec": {
            "metrics": [
                {
                    "name": "success-rate",
                    "successCondition": "result[0] >= 0.995",
                    "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "up"}},
                }
            ]
        },
    }
)
TEMPLATES = {"success-rate": TEMPLATE}
ANALYSIS = {"analysis": {"templates": [{"templateName": "success-rate"}]}}
STEPS = [
    {"setWeight": 10}, ANALYSIS, {"setWeight": 25}, ANALYSIS, {"setWeight": 50}, ANALYSIS,
    {"setWeight": 75}, ANALYSIS, {"setWeight": 100},
]


def manifest(i: int, image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"svc-{i}", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": f"svc-{i}"}},
            "template": {
                "metadata": {"labels": {"app": f"svc-{i}"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            "strategy": {
                "canary": {
                    "canaryService": f"svc-{i}-canary",
                    "stableService": f"svc-{i}-stable",
                    "trafficRouting": {"nginx": {"stableIngress": f"svc-{i}"}},
                    "steps": STEPS,
                }
            },
        },
    }


class Timed:
    """Runs worlds, timing only the engine's reconcile."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self.engine_ns = 0

    def settle(self, w: World) -> None:
        for _ in range(200):
            before = w.rollout.status
            observed = w.observe()
            start = time.perf_counter_ns()
            decision = reconcile(w.rollout, observed, w.now)
            spent = time.perf_counter_ns() - start
            self.samples.append(spent)
            self.engine_ns += spent
            w.apply(decision)
            if not decision.actions and decision.status == before:
                return
        raise RuntimeError(f"{w.rollout.name} did not settle")


def make_world(i: int) -> World:
    ro = Rollout.model_validate(manifest(i, "app:1"))
    return World(
        ro,
        now=T0,
        template_map=TEMPLATES,
        ready_after=5.0,
        analysis_outcome=successful_after(60.0),
        keep_events=False,
    )


def memory_per_rollout(sample: int) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    worlds = [make_world(i) for i in range(sample)]
    timed = Timed()
    for w in worlds:
        timed.settle(w)
        w.advance(5)
        timed.settle(w)
    timed.samples.clear()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(base, "filename"))
    del worlds
    return used / sample


def done(w: World) -> bool:
    s = w.rollout.status
    return s is not None and s.phase == "Healthy" and s.stable_rs == s.current_pod_hash and s.current_pod_hash != ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=10_000, help="how many rollouts (default 10000)")
    parser.add_argument("--memory-sample", type=int, default=500, help="rollouts measured with tracemalloc")
    args = parser.parse_args()
    n = args.rollouts

    per_rollout = memory_per_rollout(min(args.memory_sample, n))

    wall = time.perf_counter()
    timed = Timed()
    worlds = [make_world(i) for i in range(n)]
    for w in worlds:  # initial deploys
        timed.settle(w)
    for i, w in enumerate(worlds):  # every rollout gets a new version
        w.advance(5)
        timed.settle(w)
        w.edit(lambda r, i=i: Rollout.model_validate(manifest(i, "app:2")))
    first_update = [w.rollout.status.stable_rs if w.rollout.status else None for w in worlds]
    # The worlds are long-lived: keep the cyclic GC from rescanning them on every collection, as a
    # long-running controller process would (gc.freeze after start-up).
    gc.collect()
    gc.freeze()
    heap = [(w.now, i) for i, w in enumerate(worlds)]
    heapq.heapify(heap)
    completed = 0
    virtual_end = T0
    while heap:
        when, i = heapq.heappop(heap)
        w = worlds[i]
        w.advance_to(when)
        timed.settle(w)
        if done(w) and w.rollout.status is not None and w.rollout.status.stable_rs != first_update[i]:
            completed += 1
            virtual_end = max(virtual_end, w.now)
            continue
        wake = w.next_wakeup()
        if wake is None:
            raise RuntimeError(f"{w.rollout.name} is stuck: {w.phase} {w.rollout.status and w.rollout.status.message}")
        heapq.heappush(heap, (wake, i))
    wall = time.perf_counter() - wall

    samples = sorted(timed.samples)
    count = len(samples)
    p50 = samples[count // 2] / 1000
    p99 = samples[min(count - 1, int(count * 0.99))] / 1000
    rate = count / (timed.engine_ns / 1e9)
    print(f"rollouts completed:      {completed}/{n} (virtual time {virtual_end - T0})")
    print(f"reconciles:              {count} ({count / n:.1f} per rollout)")
    print(f"reconciles per second:   {rate:,.0f} (engine only, one core)")
    print(f"per reconcile:           p50 {p50:.0f} us, p99 {p99:.0f} us")
    print(f"wall time:               {wall:.1f} s (engine + in-memory world)")
    print(f"memory per rollout:      {per_rollout / 1024:.1f} KiB (tracemalloc, {min(args.memory_sample, n)} rollouts)")


if __name__ == "__main__":
    main()
