"""Gate check against the simulator: how often `rollouts gate check` says a fixed-threshold gate rolls back a
healthy release, beside how often `rollouts simulate` (the real engine, the templates' real conditions and
limits, per-second binomial traffic) rolls back healthy releases of a rollout that runs that gate.

Each case is a canary at a constant 10 % weight whose stable and released versions both answer the same
share of requests with a 500 (0.5 %, the runbook's own SLO; 0.25 % for a mid-range release figure), gated by `gates` analysis steps of one template (each step a new AnalysisRun); a
release that ends aborted is a false rollback. gate check's figure is the release-level one it prints
(`... over N gates`, or the run's for one gate), from the same baseline given by hand
(`--error-rate E --rps R --canary-weight 10`).

Run: python bench/gate_noise.py [--runs 1000] [--seed 0]   (prints one line per case and the wall time)
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rollouts.analysis.gate_baseline import Baseline  # noqa: E402
from rollouts.analysis.gate_noise import check_line  # noqa: E402
from rollouts.analysis.gate_shape import gate_shape  # noqa: E402
from rollouts.simulate.runner import simulate  # noqa: E402
from rollouts.simulate.scenario import parse_scenario  # noqa: E402
from rollouts.spec.analysis import AnalysisTemplate, Metric  # noqa: E402
from rollouts.spec.rollout import Rollout  # noqa: E402

TEMPLATES = REPO / "infra" / "rollouts" / "analysis-templates.yaml"
WEIGHT = 10


def shipped(template: str, metric: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all(TEMPLATES.read_text()):
        if doc and doc["metadata"]["name"] == template:
            return copy.deepcopy(next(m for m in doc["spec"]["metrics"] if m["name"] == metric))
    raise SystemExit(f"{template}/{metric} not in {TEMPLATES}")


def runbook_on_canary() -> dict[str, Any]:
    """The runbook's success-rate gate (>= 99.5 % over 5m, 5 x 1m, failureLimit 1) on the canary's own
    requests, as the traffic provider measures them (the PromQL original is service-wide)."""
    metric = shipped("slo-gates", "success-rate")
    metric.update({"interval": "1m", "count": 5, "failureLimit": 1})
    metric["provider"]["plugin"]["rollouts/traffic"]["window"] = "5m"
    return metric


def rollout(gates: int) -> Rollout:
    steps: list[dict[str, Any]] = [{"setWeight": WEIGHT}]
    steps += [{"analysis": {"templates": [{"templateName": "gate"}], "args": [{"name": "service-name", "value": "shop"}]}}
              for _ in range(gates)]
    return Rollout.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "shop"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "shop"}},
                 "template": {"metadata": {"labels": {"app": "shop"}},
                              "spec": {"containers": [{"name": "shop", "image": "shop:1.0"}]}},
                 "strategy": {"canary": {"canaryService": "shop-canary", "stableService": "shop-stable",
                                         "trafficRouting": {"nginx": {"stableIngress": "shop"}}, "steps": steps}}}})


def template(metric: dict[str, Any]) -> AnalysisTemplate:
    return AnalysisTemplate.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "gate"},
        "spec": {"args": [{"name": "service-name"}], "metrics": [metric]}})


def simulated(metric: dict[str, Any], error_rate: float, rps: float, gates: int, runs: int, seed: int) -> float:
    plan, gate = rollout(gates), template(metric)
    healthy = {"errorRate": error_rate}
    aborted = 0
    for run in range(runs):
        scenario = parse_scenario({"release": "shop:1.1", "seed": seed + run,
                                   "traffic": {"rps": rps, "versions": {"shop:1.0": healthy, "shop:1.1": healthy}}})
        aborted += simulate(plan, scenario, templates=[gate]).summary.aborted
    return aborted / runs


def predicted(metric: dict[str, Any], error_rate: float, rps: float, gates: int) -> tuple[float, str]:
    shape = gate_shape(Metric.model_validate(metric), {"service-name": "shop"})
    line, _, release = check_line(shape, Baseline(error_rate, rps, "given"), gates=gates, target=0.01,
                                  canary_weight=WEIGHT)
    return release, line


RUNBOOK = "runbook 99.5%/5m, 5 x 1m, failureLimit 1"
SLO_GATES = "slo-gates success-rate 99.5%/1m, 4 x 30s, failureLimit 1"
CASES = [  # (gate, metric, baseline error rate, service rps, gated steps)
    (RUNBOOK, runbook_on_canary, 0.005, 20, 1),
    (RUNBOOK, runbook_on_canary, 0.005, 20, 4),
    (RUNBOOK, runbook_on_canary, 0.0025, 20, 4),
    (SLO_GATES, lambda: shipped("slo-gates", "success-rate"), 0.005, 100, 4),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    print(f"healthy releases, canary at {WEIGHT} %, {args.runs} simulated per case (false rollbacks)")
    print(f"{'gate':58} {'errors':>6} {'rps':>4} {'gates':>5} {'gate check':>10} {'simulate':>9} {'diff':>6}")
    for name, make, error_rate, rps, gates in CASES:
        metric = make()
        expected, line = predicted(metric, error_rate, rps, gates)
        measured = simulated(metric, error_rate, rps, gates, args.runs, args.seed)
        print(f"{name:58} {error_rate:>6.2%} {rps:>4} {gates:>5} {expected:>10.1%} {measured:>9.1%} "
              f"{abs(expected - measured) * 100:>5.1f}p", flush=True)
        print(f"  gate check: {line}", flush=True)
    print(f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
