"""Decision-quality benchmark: how fast three canary gates abort a bad release, how much traffic the bad
release serves before that, and how often each rolls back a healthy one. Seeded, simulated, stdlib only.

Setup (the running example of the canary-analysis notes): the canary takes 10 % of the traffic, so the
stable version serves 9x the canary's requests; the stable error rate is 0.5 %. Requests arrive at a
constant rate; errors per 10-second tick are binomial.

Gates:
  (a) sequential: provider rollouts/sequential (test errors, alpha 0.01, minSamples 100), measured every
      10 s on counts since the analysis started; aborts on `result.regression`.
  (b) runbook:    canary success rate over the last minute >= 99.5 %, measured every minute, failureLimit 0
      (the first failed check aborts).
  (c) flagger:    canary success rate over the last minute >= 99 %, checked every minute; failed checks add
      up (not necessarily consecutive) and the rollback happens at the check after the 5th failure, as
      Flagger's scheduler does (threshold tested before the analysis of the tick).

A healthy release (canary at 0.5 %) is observed for 20 minutes: the canary's total analysis time in the
runbook's 5-step plan (10 -> 25 -> 50 -> 75 -> 100 %, four gated steps of 5 minutes each), judged as one
sequential test over the whole time (the sequential gate with `since: release`). A rollback in that time
is a false rollback. Bad releases are followed for up to 60 minutes.

Run: python bench/decision.py [--healthy-runs 1000] [--bad-runs 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rollouts.analysis.sequential import ArmCounts, SequentialSettings, assess_sequential  # noqa: E402
from rollouts.simulate.traffic import binomial  # noqa: E402

TICK = 10  # seconds between sequential measurements
MINUTE_TICKS = 60 // TICK
STABLE_ERROR_RATE = 0.005
CANARY_SHARE = 0.10
HEALTHY_SECONDS = 20 * 60
BAD_SECONDS = 60 * 60
CANARY_RPS = (2, 20, 100)
CANARY_ERROR_RATES = (0.005, 0.01, 0.02, 0.05, 0.5)
SETTINGS = SequentialSettings(alpha=0.01, min_samples=100)

# A gate sees the per-tick (canary requests, canary errors, stable requests, stable errors) and answers
# whether it aborts at the end of tick i (0-based).
Gate = Callable[[list[tuple[int, int, int, int]]], "int | None"]


def sequential_gate(ticks: list[tuple[int, int, int, int]]) -> int | None:
    cr = ce = sr = se = 0
    for i, (c_req, c_err, s_req, s_err) in enumerate(ticks):
        cr, ce, sr, se = cr + c_req, ce + c_err, sr + s_req, se + s_err
        if assess_sequential(ArmCounts(cr, ce), ArmCounts(sr, se), SETTINGS).regression:
            return i
    return None


def _minute_checks(ticks: list[tuple[int, int, int, int]], floor: float) -> list[tuple[int, bool]]:
    out = []
    for end in range(MINUTE_TICKS - 1, len(ticks), MINUTE_TICKS):
        window = ticks[end - MINUTE_TICKS + 1: end + 1]
        requests = sum(t[0] for t in window)
        errors = sum(t[1] for t in window)
        out.append((end, requests > 0 and (requests - errors) / requests < floor))
    return out


def runbook_gate(ticks: list[tuple[int, int, int, int]]) -> int | None:
    for end, failed in _minute_checks(ticks, 0.995):
        if failed:
            return end
    return None


def flagger_gate(ticks: list[tuple[int, int, int, int]]) -> int | None:
    failures = 0
    for end, failed in _minute_checks(ticks, 0.99):
        if failures >= 5:
            return end
        failures += failed
    return None


GATES: dict[str, Gate] = {"(a) sequential": sequential_gate, "(b) runbook 99.5%/1m": runbook_gate,
                          "(c) flagger 99%/1m x5": flagger_gate}


def draw(rng: random.Random, canary_rps: int, canary_error: float, seconds: int) -> list[tuple[int, int, int, int]]:
    c_req = canary_rps * TICK
    s_req = round(canary_rps * TICK * (1 - CANARY_SHARE) / CANARY_SHARE)
    return [(c_req, binomial(rng, c_req, canary_error), s_req, binomial(rng, s_req, STABLE_ERROR_RATE))
            for _ in range(seconds // TICK)]


@dataclass
class Cell:
    aborted: int = 0
    runs: int = 0
    times: list[float] | None = None
    requests: list[int] | None = None
    failed: list[int] | None = None

    def add(self, ticks: list[tuple[int, int, int, int]], at: int | None) -> None:
        self.runs += 1
        if at is None:
            return
        self.aborted += 1
        served = ticks[: at + 1]
        for name, value in (("times", (at + 1) * TICK), ("requests", sum(t[0] for t in served)),
                            ("failed", sum(t[1] for t in served))):
            bucket = getattr(self, name) or []
            bucket.append(value)
            setattr(self, name, bucket)


def p90(values: list[float] | list[int]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def fmt(values: list[float] | list[int] | None, f: Callable[[list[float] | list[int]], float]) -> str:
    return "-" if not values else f"{f(values):,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy-runs", type=int, default=1000)
    parser.add_argument("--bad-runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    print(__doc__.split("Run:")[0].strip())
    print()
    header = (f"{'canary rps':>10} {'canary err':>10}  {'gate':<22} {'aborted':>8} {'mean t':>7} {'p90 t':>6} "
              f"{'mean req':>9} {'p90 req':>8} {'mean failed':>11}")
    print("Bad releases (stable 0.5 %), followed up to 60 min; times in seconds, means over aborted runs")
    print(header)
    results: dict[tuple[int, float, str], Cell] = {}
    for rps in CANARY_RPS:
        for error in CANARY_ERROR_RATES[1:]:
            cells = {name: Cell() for name in GATES}
            rng = random.Random(f"{args.seed}-{rps}-{error}")
            for _ in range(args.bad_runs):
                ticks = draw(rng, rps, error, BAD_SECONDS)
                for name, gate in GATES.items():
                    cells[name].add(ticks, gate(ticks))
            for name, cell in cells.items():
                results[(rps, error, name)] = cell
                print(f"{rps:>10} {error * 100:>9.1f}%  {name:<22} {cell.aborted / cell.runs:>8.1%} "
                      f"{fmt(cell.times, statistics.mean):>7} {fmt(cell.times, p90):>6} "
                      f"{fmt(cell.requests, statistics.mean):>9} {fmt(cell.requests, p90):>8} "
                      f"{fmt(cell.failed, statistics.mean):>11}")
    print()
    print(f"Healthy releases (canary 0.5 % = stable), {args.healthy_runs} per traffic level, observed "
          f"{HEALTHY_SECONDS // 60} min (4 gated steps x 5 min of the runbook plan): false rollback rate")
    print(f"{'canary rps':>10}  " + "  ".join(f"{name:>22}" for name in GATES))
    false_rates: dict[tuple[int, str], float] = {}
    for rps in CANARY_RPS:
        counts = dict.fromkeys(GATES, 0)
        rng = random.Random(f"{args.seed}-healthy-{rps}")
        for _ in range(args.healthy_runs):
            ticks = draw(rng, rps, STABLE_ERROR_RATE, HEALTHY_SECONDS)
            for name, gate in GATES.items():
                counts[name] += gate(ticks) is not None
        for name in GATES:
            false_rates[(rps, name)] = counts[name] / args.healthy_runs
        print(f"{rps:>10}  " + "  ".join(f"{counts[n] / args.healthy_runs:>22.1%}" for n in GATES))

    print()
    print("Targets")
    seq, flag = results[(20, 0.02, "(a) sequential")], results[(20, 0.02, "(c) flagger 99%/1m x5")]
    mean_req = statistics.mean(seq.requests or [0])
    mean_failed = statistics.mean(seq.failed or [0])
    ratio = statistics.mean(flag.requests or [0]) / mean_req if mean_req else float("inf")
    checks = [
        ("0.5 % -> 2 % at 20 rps: mean canary requests before abort <= 1,000", f"{mean_req:,.0f}",
         mean_req <= 1000 and seq.aborted == seq.runs),
        ("0.5 % -> 2 % at 20 rps: mean failed requests before abort <= 20", f"{mean_failed:.1f}", mean_failed <= 20),
        ("0.5 % -> 2 % at 20 rps: >= 5x fewer canary requests than (c)", f"{ratio:.1f}x", ratio >= 5),
    ]
    for rps in CANARY_RPS:
        rate = false_rates[(rps, "(a) sequential")]
        checks.append((f"false rollbacks of healthy releases at {rps} rps <= 1 %", f"{rate:.1%}", rate <= 0.01))
    runbook_low = false_rates[(2, "(b) runbook 99.5%/1m")]
    checks.append(("(b) false rollbacks at 2 rps far above 1 %", f"{runbook_low:.1%}", runbook_low > 0.05))
    for rps in CANARY_RPS:
        cell = results[(rps, 0.5, "(a) sequential")]
        worst = max(cell.times or [float("inf")])
        checks.append((f"50 % errors at {rps} rps aborted within one interval ({TICK} s)", f"max {worst:g} s",
                       cell.aborted == cell.runs and worst <= TICK))
    ok = True
    for text, value, passed in checks:
        ok &= passed
        print(f"  [{'met' if passed else 'NOT MET'}] {text}: {value}")
    print(f"\n{time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
