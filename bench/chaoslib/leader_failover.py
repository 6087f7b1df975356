"""Fault family "leader-failover": two operators with leader election on one cluster while a release runs; at
a moment chosen by watching the objects the Lease holder is stopped, by SIGTERM (it finishes its writes and
gives the Lease up: the other takes over within its 2 s retry) or by SIGKILL (the Lease must expire: 15 s),
and a new standby is started under a new identity (a new Pod). Never two actors at once is checked on the API
server's own write log, where every operator names itself (User-Agent): during the release the writers take
turns, each identity acts in one turn only, and no write of the stopped leader follows the first write of its
successor. Plus the operator-kill judgement against an undisturbed run (final state, gates, one promotion)."""

from __future__ import annotations

import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for `chaoslib`

from tests.e2e.harness import RemoteCluster, actor_spans, wait_until  # noqa: E402

from chaoslib import Outcome  # noqa: E402
from chaoslib._release import Bench, Recorded, Release  # noqa: E402
from chaoslib.operator_kill import Baselines, brief, judge, wait_for_moment  # noqa: E402

FAMILY = "leader-failover"
LEASE = "argo-rollouts-controller-lock"
TAKEOVER_LIMIT = 15.0 + 2.0 + 8.0  # lease duration + retry + a loaded machine's slack

SCENARIOS: tuple[tuple[str, str, str], ...] = (
    ("canary", "good", "analysis"), ("canary", "good", "status-write"), ("canary", "bad", "abort"),
    ("bluegreen", "good", "analysis"), ("bluegreen", "good", "promotion"),
)
SIGKILL_SHARE = 0.25  # a SIGKILL costs a whole lease duration: one run in four


def holder(cluster: RemoteCluster) -> str:
    lease = cluster.read("Lease", LEASE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def overlaps(spans: list[tuple[str, float, float]], stopped: str, successor: str) -> int:
    """Actions taken while another actor was acting: an identity acting in more than one turn, and writes of
    the stopped leader after its successor's first."""
    names = [name for name, _, _ in spans]
    twice = len(names) - len(set(names))
    first_new = min((start for name, start, _ in spans if name == successor), default=None)
    late = sum(1 for name, _, end in spans if name == stopped and first_new is not None and end > first_new)
    return twice + late


def run(runs: int, seed: int, workdir: Path) -> list[Outcome]:
    rng = random.Random(seed)
    outcomes = Recorded(workdir / "outcomes.jsonl")
    names = iter(f"op-{n}" for n in range(1, 10_000))
    with Bench(workdir / FAMILY, seed, operators=(next(names), next(names)), leader_elect=True) as bench:
        cluster = bench.cluster
        wait_until(lambda: holder(cluster) in bench.operator_names, 40, "one operator to hold the Lease")
        baselines = Baselines(bench, rng)
        order = [SCENARIOS[i % len(SCENARIOS)] for i in range(runs)]
        rng.shuffle(order)
        for strategy, kind, moment in order:
            sig = signal.SIGKILL if rng.random() < SIGKILL_SHARE else signal.SIGTERM
            delay = rng.uniform(0, 0.3)
            fault = f"{sig.name} leader {strategy} {kind} release at {moment} +{delay:.2f}s"
            started = time.monotonic()
            seen_handover: dict[str, object] = {}

            def inject(release: Release, moment: str = moment, delay: float = delay, sig: signal.Signals = sig,
                       handover: dict[str, object] = seen_handover) -> str:
                seen = wait_for_moment(release, moment, rng)
                time.sleep(delay)  # bench: the random part of the moment
                leader = holder(cluster)
                stopped_at = time.monotonic()
                cluster.signal_operator(leader, sig)
                exited = time.monotonic() - stopped_at
                bench.restart_operator(leader, next(names))  # a new Pod: a new identity, standing by
                # A released Lease goes to whichever replica asks first: the standby, or the Pod started just
                # now if its first attempt comes before the standby's next retry. Either is a hand-over.
                wait_until(lambda: holder(cluster) in bench.operator_names, TAKEOVER_LIMIT,
                           f"a standby of {bench.operator_names} to take the Lease", interval=0.05)
                successor = holder(cluster)
                handover.update(leader=leader, successor=successor, seconds=time.monotonic() - stopped_at,
                                exited=exited)
                return (f"{seen}, {leader} stopped (exited in {exited:.1f}s), {successor} leads "
                        f"{handover['seconds']:.1f}s later")

            try:
                baseline = baselines.get(strategy, kind)
                first = len(cluster.writes())
                started = time.monotonic()
                release, what = bench.release(strategy, kind, inject)
            except Exception as exc:  # noqa: BLE001 - a run that broke is a failed row, the bench goes on
                outcomes.append(Outcome(FAMILY, fault, "did not finish", ok=False,
                                        seconds=time.monotonic() - started, detail=brief(exc)))
                continue
            spans = actor_spans(cluster.writes()[first:])
            double = overlaps(spans, str(seen_handover["leader"]), str(seen_handover["successor"]))
            outcome = judge(FAMILY, f"{fault} ({what})", release, baseline, time.monotonic() - started,
                            extra={f"{sig.name} takeovers": 1.0,
                                   f"{sig.name} takeover s": float(str(seen_handover["seconds"])),
                                   f"{sig.name} exit s": float(str(seen_handover["exited"])),
                                   "writer turns": float(len(spans))})
            if double:
                outcome.double_actions += double
                outcome.ok = False
                outcome.detail = f"writers {spans}; {outcome.detail}"
            outcomes.append(outcome)
    return outcomes
