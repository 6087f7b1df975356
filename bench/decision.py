"""Decision-quality benchmark: how fast canary gates abort a bad release, how much traffic the bad release
serves before that, and how often each rolls back a healthy one. Seeded, simulated, stdlib only.

Setup (the running example of the canary-analysis notes): the canary takes 10 % of the traffic, so the
stable version serves 9x the canary's requests; the stable error rate is 0.5 %, and 2 % of either
version's requests are slower than the latency bound. Requests arrive at a constant rate; errors and slow
requests per 2-second tick are binomial. Every gate reads the canary's own counts.

Gates (one table, the bad release 0.5 % -> 2 % at 20 canary rps, false rollbacks at 2, 20 and 100 rps):
  (a) bench setting: rollouts/sequential (errors, alpha 0.01, minSamples 100) measured every 10 s on counts
      since the release started (one test over the whole release); aborts on `result.regression`.
  (s) the shipped `sequential-gate` template (infra/rollouts/analysis-templates.yaml, read as it is today):
      its since (`release`: one test over the release's step gates; `run`: one per gate), alpha, minSamples,
      maxSamples (each gate's budget), interval and count; a step ends at a healthy verdict (maxSamples
      reached in the step) or after `count` measurements, and the next step's gate continues the test.
      Both of its tests run: errors, and the latency twin on the slow requests (healthy in every scenario,
      so it can only add false rollbacks); the release aborts when either finds a regression.
  Argo-style: success rate over the last minute >= 99 %, measured every minute, 5 times per 5-minute step
      gate, failureLimit 0 / 1 / 2 (the step's run fails when failures exceed it).
  Flagger-style: success rate over the last minute >= 99 %, checked every minute; failed checks add up over
      the release (not necessarily consecutive) and the rollback happens at the check after the N-th
      failure (thresholdN, N = 1..5), as Flagger's scheduler does.
  runbook: success rate over the last 5 minutes >= 99.5 %, measured every minute, 5 times per step gate,
      failureLimit 1 (infra/rollouts/analysis-templates.yaml `success-rate`, on the canary's requests).

A healthy release (canary at 0.5 %) is observed for 20 minutes: the canary's total analysis time in the
runbook's 5-step plan (10 -> 25 -> 50 -> 75 -> 100 %, four gated steps of 5 minutes each). A rollback in that
time is a false rollback. Bad releases are followed for up to 60 minutes (step gates repeat every 5 minutes,
or as the shipped template's gates end). Wald's SPRT bound, printed beside the table, is the fewest canary
requests any test can average for 0.5 % -> 2 % at alpha 0.01 and 95 % power knowing both rates exactly
and looking after every request; (w) is the same SPRT (the regression's size known in advance) on what
the gates see: counts compared with the stable version's, read every 10 s (200 canary requests at 20
rps), the floor for any gate in this setting.

Run: python bench/decision.py [--quick] [--healthy-runs 1000] [--bad-runs 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rollouts.analysis.providers import sequential as seq_provider  # noqa: E402
from rollouts.analysis.sequential import ArmCounts, SequentialSettings, assess_sequential  # noqa: E402
from rollouts.simulate.traffic import binomial  # noqa: E402
from rollouts.spec.duration import parse_duration  # noqa: E402

TICK = 2  # seconds of simulated traffic per draw: the shipped template's interval must be a multiple
READ_TICKS = 10 // TICK  # (a) and (w) read every 10 s
MINUTE_TICKS = 60 // TICK
STEP_TICKS = 5 * MINUTE_TICKS  # a threshold step gate: 5 measurements, one a minute
STABLE_ERROR_RATE = 0.005
SLOW_SHARE = 0.02  # both versions' share of requests slower than the latency test's bound
BAD_ERROR_RATE = 0.02
MAIN_RPS = 20
CANARY_SHARE = 0.10
HEALTHY_SECONDS = 20 * 60
BAD_SECONDS = 60 * 60
CANARY_RPS = (2, 20, 100)
CANARY_ERROR_RATES = (0.005, 0.01, 0.02, 0.05, 0.5)
SETTINGS = SequentialSettings(alpha=0.01, min_samples=100)
KNOWN_RATIO = SequentialSettings(alpha=0.01, min_samples=100, alternatives=(BAD_ERROR_RATE / STABLE_ERROR_RATE,))
TEMPLATES = REPO / "infra" / "rollouts" / "analysis-templates.yaml"

Ticks = list[tuple[int, int, int, int, int, int]]
# A gate sees the per-tick (canary requests, canary errors, stable requests, stable errors, canary slow,
# stable slow) and answers whether it aborts at the end of tick i (0-based).
Gate = Callable[[Ticks], "int | None"]


def known_ratio_sprt(ticks: Ticks) -> int | None:
    """Wald's SPRT of the two-sample count test knowing the regression (4x), read every 10 s like the
    bench setting: the fewest canary requests any test reading these counts every 10 s can average."""
    return _every_10s(ticks, KNOWN_RATIO)


def sequential_gate(ticks: Ticks) -> int | None:
    return _every_10s(ticks, SETTINGS)


def _every_10s(ticks: Ticks, settings: SequentialSettings) -> int | None:
    cr = ce = sr = se = 0
    for i, (c_req, c_err, s_req, s_err, _, _) in enumerate(ticks):
        cr, ce, sr, se = cr + c_req, ce + c_err, sr + s_req, se + s_err
        if (i + 1) % READ_TICKS == 0 and assess_sequential(ArmCounts(cr, ce), ArmCounts(sr, se), settings).regression:
            return i
    return None


@dataclass(frozen=True)
class ShippedGate:
    """The shipped sequential-gate's errors metric and its latency twin (`latency`, None: errors only),
    from the template file: one test per release (since: release) or per step gate (since: run)."""

    settings: SequentialSettings
    interval_ticks: int
    count: int
    since: str
    latency: SequentialSettings | None = None

    @classmethod
    def load(cls, path: Path = TEMPLATES) -> ShippedGate:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("metadata", {}).get("name") == "sequential-gate":
                metrics = {m["name"]: m for m in doc["spec"]["metrics"]}
                errors, latency = metrics["sequential-errors"], metrics.get("sequential-latency")
                query = seq_provider.parse_config(errors["provider"]["plugin"][seq_provider.PLUGIN_NAME])
                interval = parse_duration(errors["interval"])
                if interval % TICK or (latency is not None and latency["interval"] != errors["interval"]):
                    raise SystemExit(f"{path}: sequential-gate: the bench needs one interval for both metrics, "
                                     f"a multiple of {TICK} s (got {errors['interval']})")
                twin = None
                if latency is not None:
                    twin = seq_provider.parse_config(latency["provider"]["plugin"][seq_provider.PLUGIN_NAME]).settings
                return cls(query.settings, round(interval / TICK), int(errors["count"]), query.since, twin)
        raise SystemExit(f"{path}: no AnalysisTemplate sequential-gate")

    def __call__(self, ticks: Ticks) -> int | None:
        # since: release counts from the release's first tick across gates (maxSamples is each gate's
        # budget, counted from the gate's start); since: run starts every gate's test afresh.
        # Each metric's step gate passes on its own (consecutiveSuccessLimit 1); the step ends when every
        # metric has passed or after `count` measurements.
        # (settings, index of the canary's events, index of the stable version's events) in a tick
        tests = [(self.settings, 1, 3)] + ([(self.latency, 4, 5)] if self.latency is not None else [])
        release = self.since == "release"
        start = 0
        totals = [0] * 6  # counts since the release started
        while start < len(ticks):
            gate = [0] * 6  # counts since this step's gate started
            passed = [False] * len(tests)
            end = min(start + self.interval_ticks * self.count, len(ticks))
            next_start = end
            for i in range(start, end):
                for k, value in enumerate(ticks[i]):
                    gate[k] += value
                    totals[k] += value
                if (i - start + 1) % self.interval_ticks:
                    continue
                for t, (settings, canary_events, stable_events) in enumerate(tests):
                    if passed[t]:
                        continue
                    counts = totals if release else gate
                    verdict = assess_sequential(ArmCounts(counts[0], counts[canary_events]),
                                                ArmCounts(counts[2], counts[stable_events]), settings,
                                                budget_requests=gate[0] if release else None)
                    if verdict.regression:
                        return i
                    passed[t] = verdict.decided
                if all(passed):
                    next_start = i + 1
                    break
            start = next_start
        return None


def _window_failed(ticks: Ticks, end: int, window_ticks: int, floor: float) -> bool:
    window = ticks[max(end - window_ticks + 1, 0): end + 1]
    requests = sum(t[0] for t in window)
    errors = sum(t[1] for t in window)
    return requests > 0 and (requests - errors) / requests < floor


def step_gate(floor: float, window_minutes: int, failure_limit: int) -> Gate:
    """Argo-style step gates: every 5 minutes a new run, measured at the end of each minute."""
    def gate(ticks: Ticks) -> int | None:
        for step_start in range(0, len(ticks), STEP_TICKS):
            failures = 0
            for end in range(step_start + MINUTE_TICKS - 1, min(step_start + STEP_TICKS, len(ticks)), MINUTE_TICKS):
                failures += _window_failed(ticks, end, window_minutes * MINUTE_TICKS, floor)
                if failures > failure_limit:
                    return end
        return None
    return gate


def flagger_gate(threshold: int, floor: float = 0.99) -> Gate:
    def gate(ticks: Ticks) -> int | None:
        failures = 0
        for end in range(MINUTE_TICKS - 1, len(ticks), MINUTE_TICKS):
            if failures >= threshold:
                return end
            failures += _window_failed(ticks, end, MINUTE_TICKS, floor)
        return None
    return gate


def build_gates() -> dict[str, Gate]:
    gates: dict[str, Gate] = {"(a) sequential, bench setting": sequential_gate,
                              "(s) shipped sequential-gate": ShippedGate.load(),
                              "(w) SPRT knowing 4x, every 10 s": known_ratio_sprt}
    for limit in (0, 1, 2):
        gates[f"Argo 99%/1m failureLimit {limit}"] = step_gate(0.99, 1, limit)
    for threshold in range(1, 6):
        gates[f"Flagger 99%/1m threshold {threshold}"] = flagger_gate(threshold)
    gates["runbook 99.5%/5m failureLimit 1"] = step_gate(0.995, 5, 1)
    return gates


def draw(rng: random.Random, canary_rps: int, canary_error: float, seconds: int) -> Ticks:
    c_req = canary_rps * TICK
    s_req = round(canary_rps * TICK * (1 - CANARY_SHARE) / CANARY_SHARE)
    return [(c_req, binomial(rng, c_req, canary_error), s_req, binomial(rng, s_req, STABLE_ERROR_RATE),
             binomial(rng, c_req, SLOW_SHARE), binomial(rng, s_req, SLOW_SHARE))
            for _ in range(seconds // TICK)]


@dataclass
class Cell:
    aborted: int = 0
    runs: int = 0
    times: list[float] | None = None
    requests: list[int] | None = None
    failed: list[int] | None = None

    def add(self, ticks: Ticks, at: int | None) -> None:
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


def wald_sprt_bound(p0: float, p1: float, alpha: float = 0.01, beta: float = 0.05) -> float:
    """Wald's approximation of the mean sample size of the SPRT of p0 against p1 when p1 is true: the fewest
    canary requests a test with these error rates averages, knowing both rates exactly."""
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    return ((1 - beta) * math.log((1 - beta) / alpha) + beta * math.log(beta / (1 - alpha))) / kl


def bad_cells(gates: dict[str, Gate], rps: int, error: float, runs: int, seed: int) -> dict[str, Cell]:
    cells = {name: Cell() for name in gates}
    rng = random.Random(f"{seed}-{rps}-{error}")
    for _ in range(runs):
        ticks = draw(rng, rps, error, BAD_SECONDS)
        for name, gate in gates.items():
            cells[name].add(ticks, gate(ticks))
    return cells


def false_rollbacks(gates: dict[str, Gate], rps: int, runs: int, seed: int) -> dict[str, float]:
    counts = dict.fromkeys(gates, 0)
    rng = random.Random(f"{seed}-healthy-{rps}")
    for _ in range(runs):
        ticks = draw(rng, rps, STABLE_ERROR_RATE, HEALTHY_SECONDS)
        for name, gate in gates.items():
            counts[name] += gate(ticks) is not None
    return {name: counts[name] / runs for name in gates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 healthy and 60 bad runs per cell (about a minute).")
    parser.add_argument("--healthy-runs", type=int, default=None, help="default 1000 (200 with --quick)")
    parser.add_argument("--bad-runs", type=int, default=None, help="default 300 (60 with --quick)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    healthy_runs = args.healthy_runs or (200 if args.quick else 1000)
    bad_runs = args.bad_runs or (60 if args.quick else 300)
    started = time.perf_counter()
    print(__doc__.split("Run:")[0].strip())
    print()
    gates = build_gates()
    shipped = gates["(s) shipped sequential-gate"]
    assert isinstance(shipped, ShippedGate)
    latency = (f"; latency twin alpha {shipped.latency.alpha:g}" if shipped.latency is not None
               else "; no latency twin")
    print(f"(s) as shipped: errors alpha {shipped.settings.alpha:g}{latency}; grid "
          f"{list(shipped.settings.alternatives) or 'Beta mixture'}, minSamples {shipped.settings.min_samples}, "
          f"maxSamples {shipped.settings.max_samples}, since: {shipped.since}, "
          f"{shipped.count} x {shipped.interval_ticks * TICK} s")
    print()

    main_cells = bad_cells(gates, MAIN_RPS, BAD_ERROR_RATE, bad_runs, args.seed)
    false_rates = {rps: false_rollbacks(gates, rps, healthy_runs, args.seed) for rps in CANARY_RPS}
    print(f"Bad release 0.5 % -> 2 % at {MAIN_RPS} canary rps ({bad_runs} runs, followed up to 60 min; times in "
          f"seconds, means over aborted runs) and false rollbacks of {healthy_runs} healthy releases per traffic "
          "level (20 min)")
    print(f"{'gate':<34} {'aborted':>8} {'mean t':>7} {'p90 t':>6} {'mean req':>9} {'p90 req':>8} "
          f"{'mean failed':>11}  " + "  ".join(f"{f'false@{r}rps':>11}" for r in CANARY_RPS))
    for name, cell in main_cells.items():
        print(f"{name:<34} {cell.aborted / cell.runs:>8.1%} {fmt(cell.times, statistics.mean):>7} "
              f"{fmt(cell.times, p90):>6} {fmt(cell.requests, statistics.mean):>9} {fmt(cell.requests, p90):>8} "
              f"{fmt(cell.failed, statistics.mean):>11}  "
              + "  ".join(f"{false_rates[r][name]:>11.1%}" for r in CANARY_RPS))
    bound = wald_sprt_bound(STABLE_ERROR_RATE, BAD_ERROR_RATE)
    print(f"{'Wald SPRT bound (alpha 0.01, 95 %)':<34} {'':>8} {'':>7} {'':>6} {bound:>9,.0f} {'':>8} "
          f"{bound * BAD_ERROR_RATE:>11.1f}")

    sequential = {k: gates[k] for k in ("(a) sequential, bench setting", "(s) shipped sequential-gate")}
    print()
    print("The sequential gates over other traffic levels and regressions")
    print(f"{'canary rps':>10} {'canary err':>10}  {'gate':<30} {'aborted':>8} {'mean t':>7} {'p90 t':>6} "
          f"{'mean req':>9} {'p90 req':>8} {'mean failed':>11}")
    results: dict[tuple[int, float, str], Cell] = {}
    for rps in CANARY_RPS:
        for error in CANARY_ERROR_RATES[1:]:
            cells = (main_cells if (rps, error) == (MAIN_RPS, BAD_ERROR_RATE)
                     else bad_cells(sequential, rps, error, bad_runs, args.seed))
            for name in sequential:
                cell = cells[name]
                results[(rps, error, name)] = cell
                print(f"{rps:>10} {error * 100:>9.1f}%  {name:<30} {cell.aborted / cell.runs:>8.1%} "
                      f"{fmt(cell.times, statistics.mean):>7} {fmt(cell.times, p90):>6} "
                      f"{fmt(cell.requests, statistics.mean):>9} {fmt(cell.requests, p90):>8} "
                      f"{fmt(cell.failed, statistics.mean):>11}")

    print()
    print("Targets")
    seq, flag = main_cells["(a) sequential, bench setting"], main_cells["Flagger 99%/1m threshold 5"]
    mean_req = statistics.mean(seq.requests or [0])
    mean_failed = statistics.mean(seq.failed or [0])
    ratio = statistics.mean(flag.requests or [0]) / mean_req if mean_req else float("inf")
    checks = [
        ("(a) 0.5 % -> 2 % at 20 rps: mean canary requests before abort <= 1,000", f"{mean_req:,.0f}",
         mean_req <= 1000 and seq.aborted == seq.runs),
        ("(a) 0.5 % -> 2 % at 20 rps: mean failed requests before abort <= 20", f"{mean_failed:.1f}", mean_failed <= 20),
        ("(a) 0.5 % -> 2 % at 20 rps: >= 5x fewer canary requests than Flagger threshold 5", f"{ratio:.1f}x",
         ratio >= 5),
    ]
    for rps in CANARY_RPS:
        rate = false_rates[rps]["(a) sequential, bench setting"]
        checks.append((f"(a) false rollbacks of healthy releases at {rps} rps <= 1 %", f"{rate:.1%}", rate <= 0.01))
    runbook_low = false_rates[2]["runbook 99.5%/5m failureLimit 1"]
    checks.append(("runbook gate: false rollbacks at 2 rps far above 1 %", f"{runbook_low:.1%}", runbook_low > 0.05))
    for rps in CANARY_RPS:
        cell = results[(rps, 0.5, "(a) sequential, bench setting")]
        worst = max(cell.times or [float("inf")])
        checks.append((f"(a) 50 % errors at {rps} rps aborted within one interval ({READ_TICKS * TICK} s)",
                       f"max {worst:g} s", cell.aborted == cell.runs and worst <= READ_TICKS * TICK))
    ok = True
    for text, value, passed in checks:
        ok &= passed
        print(f"  [{'met' if passed else 'NOT MET'}] {text}: {value}")
    shipped_cell = main_cells["(s) shipped sequential-gate"]
    s_req = statistics.mean(shipped_cell.requests or [0])
    s_failed = statistics.mean(shipped_cell.failed or [0])
    print(f"  shipped template (Wald SPRT bound {bound:,.0f} canary requests, {bound * BAD_ERROR_RATE:.1f} failed):")
    for text, value, passed in [
        ("(s) 0.5 % -> 2 % at 20 rps: mean canary requests before abort <= 600", f"{s_req:,.0f}",
         s_req <= 600 and shipped_cell.aborted == shipped_cell.runs),
        ("(s) 0.5 % -> 2 % at 20 rps: mean failed requests before abort <= 15", f"{s_failed:.1f}", s_failed <= 15),
        *[(f"(s) false rollbacks at {rps} rps <= 1 %", f"{false_rates[rps]['(s) shipped sequential-gate']:.1%}",
           false_rates[rps]["(s) shipped sequential-gate"] <= 0.01) for rps in CANARY_RPS],
    ]:
        ok &= passed
        print(f"    [{'met' if passed else 'NOT MET'}] {text}: {value}")
    print(f"\n{time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
