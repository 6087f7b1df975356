"""Fault family "apiserver-restart": the local cluster's process (its API server) SIGKILLed under a running
operator at a moment of a release chosen by watching the objects, kept down a random while (the operator's
watches drop, its requests are refused), started again on its port (watches resume, or answer 410 and the
informers list again); right after, another client writes the Rollout, so the operator's cache is stale.
Judged against an undisturbed run of the same release: same final state, no gate passed without its evidence;
and the staleness is checked where it matters: a write carrying the resourceVersion read before the outage is
refused with 409, and the operator's own writes answered 409 are counted with those written again after a
re-read (figures `conflicts` and `retried`)."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for `chaoslib`

from tests.e2e.harness import conflicts_retried, stale_write_refused  # noqa: E402

from chaoslib import Outcome  # noqa: E402
from chaoslib._release import Bench, Recorded, Release  # noqa: E402
from chaoslib.operator_kill import Baselines, brief, judge, wait_for_moment  # noqa: E402
from rollouts.kube.client import KubeStore  # noqa: E402
from rollouts.kube.config import load_config  # noqa: E402

FAMILY = "apiserver-restart"

SCENARIOS: tuple[tuple[str, str, str], ...] = (
    ("canary", "good", "analysis"), ("canary", "good", "status-write"), ("canary", "good", "promotion"),
    ("canary", "bad", "abort"), ("bluegreen", "good", "analysis"), ("bluegreen", "good", "promotion"),
    ("bluegreen", "bad", "abort"),
)


def touch(bench: Bench, rollout: str, value: str) -> None:
    """A write by another client (as `kubectl annotate` makes): the operator's cached Rollout is now stale."""
    store = KubeStore(load_config(kubeconfig=bench.cluster.kubeconfig), user_agent="chaos-other-client")
    try:
        store.patch("Rollout", "default", rollout, {"metadata": {"annotations": {"chaos.rollouts.io/touch": value}}})
    finally:
        store.close()


def run(runs: int, seed: int, workdir: Path) -> list[Outcome]:
    rng = random.Random(seed)
    outcomes = Recorded(workdir / "outcomes.jsonl")
    with Bench(workdir / FAMILY, seed) as bench:
        baselines = Baselines(bench, rng)
        order = [SCENARIOS[i % len(SCENARIOS)] for i in range(runs)]
        rng.shuffle(order)
        for number, (strategy, kind, moment) in enumerate(order):
            delay, down = rng.uniform(0, 0.3), rng.uniform(0.2, 1.5)
            fault = f"SIGKILL API server {strategy} {kind} release at {moment} +{delay:.2f}s, down {down:.2f}s"
            started = time.monotonic()
            stale: dict[str, object] = {}

            def inject(release: Release, moment: str = moment, delay: float = delay, down: float = down,
                       number: int = number, stale: dict[str, object] = stale) -> str:
                seen = wait_for_moment(release, moment, rng)
                time.sleep(delay)  # bench: the random part of the moment
                stale.update(bench.cluster.read("Rollout", release.rollout) or {})
                bench.cluster.kill_apiserver()
                time.sleep(down)  # bench: requests refused meanwhile
                bench.cluster.up()
                touch(bench, release.rollout, str(number))
                return f"{seen}, API server killed, back after {down:.2f}s"

            try:
                baseline = baselines.get(strategy, kind)
                first = len(bench.cluster.writes())
                started = time.monotonic()
                release, what = bench.release(strategy, kind, inject)
            except Exception as exc:  # noqa: BLE001 - a run that broke is a failed row, the bench goes on
                outcomes.append(Outcome(FAMILY, fault, "did not finish", ok=False,
                                        seconds=time.monotonic() - started, detail=brief(exc)))
                if bench.cluster.apiserver_pid() is None:
                    bench.cluster.up()
                continue
            conflicts, retried = conflicts_retried(bench.cluster.writes()[first:])
            refused = stale_write_refused(bench.cluster.kubeconfig, stale)
            outcome = judge(FAMILY, f"{fault} ({what})", release, baseline, time.monotonic() - started,
                            extra={"conflicts": float(conflicts), "retried": float(retried)})
            if not refused:  # a write from before the outage was applied over newer ones
                outcome.lost_writes += 1
                outcome.ok = False
                outcome.detail = f"a status write with the stale resourceVersion was applied; {outcome.detail}"
            outcomes.append(outcome)
    return outcomes
