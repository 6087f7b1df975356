"""bench/decision.py's pieces that its table rests on: the shipped template is read as it is today, Wald's
bound is the ≈ 325 canary requests quoted beside the table, and the gates decide what they should."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decision.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decision_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decision_bench"] = module
    spec.loader.exec_module(module)
    return module


def test_bench_reads_shipped_sequential_gate_template(bench: ModuleType) -> None:
    shipped = bench.ShippedGate.load()
    assert shipped.since == "release" and shipped.settings.alpha == 0.006
    assert shipped.latency is not None and shipped.latency.alpha == 0.002
    # One release-wide budget: the two tests' alphas add up to less than the 1 % false-rollback target.
    assert shipped.settings.alpha + shipped.latency.alpha < 0.01
    assert shipped.settings.alternatives == (2.0, 3.0, 4.0, 6.0)
    assert (shipped.settings.min_samples, shipped.settings.max_samples) == (100, 2000)
    assert (shipped.interval_ticks * bench.TICK, shipped.count) == (2, 300)


def test_bench_shipped_gate_runs_the_latency_twin(bench: ModuleType) -> None:
    # Errors as healthy as the stable version's, but 10 % of the canary's requests slow against 2 %:
    # only the latency twin can abort, and the bench must count it.
    ticks = [(40, 0, 360, 2, 4, 7)] * 60
    shipped = bench.ShippedGate.load()
    errors_only = bench.ShippedGate(shipped.settings, shipped.interval_ticks, shipped.count, shipped.since)
    assert shipped(ticks) is not None and errors_only(ticks) is None


def test_bench_wald_sprt_bound_is_325(bench: ModuleType) -> None:
    assert round(bench.wald_sprt_bound(0.005, 0.02)) == 325


@pytest.mark.parametrize(("gate", "error", "aborts"), [
    pytest.param("(s) shipped sequential-gate", 0.5, True, id="shipped-aborts-outage"),
    pytest.param("Argo 99%/1m failureLimit 0", 0.5, True, id="argo-aborts-outage"),
    pytest.param("Flagger 99%/1m threshold 2", 0.5, True, id="flagger-aborts-outage"),
    pytest.param("runbook 99.5%/5m failureLimit 1", 0.0, False, id="runbook-passes-error-free"),
    pytest.param("(s) shipped sequential-gate", 0.0, False, id="shipped-passes-error-free"),
])
def test_bench_gates_decide_the_obvious_cases(bench: ModuleType, gate: str, error: float, aborts: bool) -> None:
    gates = bench.build_gates()
    ticks = bench.draw(random.Random(1), 20, error, 20 * 60)
    assert (gates[gate](ticks) is not None) is aborts


def test_bench_shipped_since_release_keeps_one_test_across_step_gates(bench: ModuleType) -> None:
    # 2 % errors on the canary, but the first gate's budget (maxSamples) is reached before the evidence
    # suffices: since: release carries the counts into the next gate, since: run starts over and loses it.
    shipped = bench.ShippedGate.load()
    settings = bench.SequentialSettings(alpha=0.005, min_samples=100, max_samples=200)
    ticks = [(200, 4, 1800, 9, 0, 0)] * 30
    release = bench.ShippedGate(settings, 1, 60, "release")
    per_run = bench.ShippedGate(settings, 1, 60, "run")
    assert shipped.since == "release"
    assert release(ticks) is not None and per_run(ticks) is None
