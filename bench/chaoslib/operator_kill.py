"""Fault family "operator-kill": the operator SIGKILLed at a moment of a canary or blue/green release chosen by
watching the objects (its analysis running, its abort under way, its promotion, right after one of its status
writes, or just after an operator's `rollouts abort`), plus a random delay; a new operator is started after
a random pause. Each run is judged against an undisturbed run of the same release on the same cluster: the same
final state, every gate passed only with its Successful AnalysisRun (watched while the release runs), one
promotion and each step completed once, an abort issued before the kill honoured."""

from __future__ import annotations

import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for `chaoslib`

from tests.e2e.harness import wait_until  # noqa: E402

from chaoslib import Outcome  # noqa: E402
from chaoslib._release import CANARY_STEPS, Bench, Recorded, Release  # noqa: E402
from rollouts.api import actions  # noqa: E402
from rollouts.kube.client import KubeStore  # noqa: E402
from rollouts.kube.config import load_config  # noqa: E402

FAMILY = "operator-kill"

# (strategy, kind of release, moment of the fault)
SCENARIOS: tuple[tuple[str, str, str], ...] = (
    ("canary", "good", "analysis"), ("canary", "good", "promotion"), ("canary", "good", "status-write"),
    ("canary", "bad", "abort"), ("canary", "abort", "abort-issued"),
    ("bluegreen", "good", "analysis"), ("bluegreen", "good", "promotion"), ("bluegreen", "good", "status-write"),
    ("bluegreen", "bad", "abort"), ("bluegreen", "abort", "abort-issued"),
)
MOMENT_TIMEOUT = 90.0
FINISHED = {"Successful", "Failed", "Error", "Inconclusive"}


def wait_for_moment(release: Release, moment: str, rng: random.Random) -> str:
    """Block until `moment` of `release` comes (watching the store), and say what was seen."""
    cluster = release.bench.cluster
    if moment == "analysis":
        # A short run on a loaded machine may be over between two looks: then the fault strikes just after it.
        wait_until(lambda: release.run_phase({"Running", *FINISHED}), MOMENT_TIMEOUT, "its AnalysisRun to run",
                   interval=0.03)
        return "analysis running" if release.run_phase({"Running"}) else "analysis just finished"
    if moment == "promotion":
        if release.strategy == "canary":
            wait_until(lambda: release.status().get("currentStepIndex") == CANARY_STEPS
                       and release.status().get("currentPodHash") == release.new_hash, MOMENT_TIMEOUT,
                       "the last step to end", interval=0.03)
            return "promotion (all steps done)"
        wait_until(lambda: release.run_phase({"Successful"}), MOMENT_TIMEOUT, "its pre-promotion analysis to pass",
                   interval=0.03)
        return "promotion (pre-promotion analysis passed)"
    if moment == "abort":
        wait_until(lambda: release.status().get("abort") or release.run_phase({"Failed", "Error"}), MOMENT_TIMEOUT,
                   "the failed analysis or the abort", interval=0.03)
        return "abort under way"
    if moment == "status-write":
        writes = rng.randint(1, 6)
        seen = [str((cluster.read("Rollout", release.rollout) or {})["metadata"]["resourceVersion"])]

        def another() -> bool:
            rollout = cluster.read("Rollout", release.rollout) or {}
            version = str(rollout["metadata"]["resourceVersion"])
            if version != seen[-1]:
                seen.append(version)
            return len(seen) > writes or release.done()

        wait_until(another, MOMENT_TIMEOUT, f"status write #{writes}", interval=0.01)
        return f"status write #{len(seen) - 1}"
    if moment == "abort-issued":
        if release.strategy == "canary":
            wait_until(lambda: (release.status().get("currentStepIndex") or 0) >= 1, MOMENT_TIMEOUT,
                       "the first step", interval=0.03)
        else:
            wait_until(lambda: release.run_phase({"Running", *FINISHED}), MOMENT_TIMEOUT,
                       "its pre-promotion analysis", interval=0.03)
        # `rollouts abort`'s own code through the API, in-process: a CLI start on a loaded machine takes
        # seconds, and the release may be over by then.
        store = KubeStore(load_config(kubeconfig=cluster.kubeconfig), user_agent="chaos-abort")
        try:
            result = actions.abort(store, "default", release.rollout)
        finally:
            store.close()
        return f"just after `rollouts abort` ({result.message})"
    raise ValueError(f"unknown moment {moment!r}")


def judge(family: str, fault: str, release: Release, baseline: dict[str, object], seconds: float,
          extra: dict[str, float] | None = None) -> Outcome:
    """One Outcome from what the release left against its undisturbed run."""
    summary = release.summary()
    unsafe = 1 if release.ungated else 0
    double = max(0, release.promotions() - 1)
    forgotten = 1 if release.kind == "abort" and not summary["abort"] else 0
    same = summary == baseline
    detail = "" if same else f"final {summary} != undisturbed {baseline}"
    if release.ungated:
        detail += f" ungated: {sorted(set(release.ungated))}"
    return Outcome(family=family, fault=fault, final=f"{summary['phase']} stable={summary['stable']}",
                   ok=same and not unsafe and not double and not forgotten, lost_writes=forgotten,
                   unsafe_promotions=unsafe, double_actions=double, seconds=seconds, detail=detail.strip(),
                   extra={"repeated events": float(release.repeated_events()), **(extra or {})})


class Baselines:
    """Undisturbed runs of each (strategy, kind), made once on the family's cluster when first needed."""

    def __init__(self, bench: Bench, rng: random.Random) -> None:
        self.bench, self.rng = bench, rng
        self.summaries: dict[tuple[str, str], dict[str, object]] = {}

    def get(self, strategy: str, kind: str) -> dict[str, object]:
        if (strategy, kind) not in self.summaries:
            moment = "abort-issued" if kind == "abort" else "analysis"
            release, _ = self.bench.release(strategy, kind, lambda r: wait_for_moment(r, moment, self.rng))
            if release.ungated:
                raise AssertionError(f"an undisturbed {strategy} {kind} release passed a gate: {release.ungated}")
            self.summaries[(strategy, kind)] = release.summary()
        return self.summaries[(strategy, kind)]


def schedule(runs: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """Every scenario once per round (in a seeded order), as many rounds as `runs` needs."""
    order: list[tuple[str, str, str]] = []
    while len(order) < runs:
        round_ = list(SCENARIOS)
        rng.shuffle(round_)
        order += round_
    return order[:runs]


def run(runs: int, seed: int, workdir: Path) -> list[Outcome]:
    rng = random.Random(seed)
    outcomes = Recorded(workdir / "outcomes.jsonl")
    with Bench(workdir / FAMILY, seed) as bench:
        baselines = Baselines(bench, rng)
        for strategy, kind, moment in schedule(runs, rng):
            delay, pause = rng.uniform(0, 0.3), rng.uniform(0, 0.5)
            started = time.monotonic()
            fault = f"SIGKILL operator {strategy} {kind} release at {moment} +{delay:.2f}s"

            def inject(release: Release, moment: str = moment, delay: float = delay, pause: float = pause) -> str:
                seen = wait_for_moment(release, moment, rng)
                if moment != "abort-issued":  # the abort's kill comes at once: before the operator acts on it
                    time.sleep(delay)  # bench: the random part of the moment
                name = bench.operator()
                bench.cluster.signal_operator(name, signal.SIGKILL)
                time.sleep(pause)  # bench: the operator stays away a random while
                bench.restart_operator(name)
                return f"{seen}, kill, restart after {pause:.2f}s"

            try:
                baseline = baselines.get(strategy, kind)
                started = time.monotonic()
                release, what = bench.release(strategy, kind, inject)
            except Exception as exc:  # noqa: BLE001 - a run that broke is a failed row, the bench goes on
                outcomes.append(Outcome(FAMILY, fault, "did not finish", ok=False, seconds=time.monotonic() - started,
                                        detail=brief(exc)))
                _recover(bench)
                continue
            outcomes.append(judge(FAMILY, f"{fault} ({what})", release, baseline, time.monotonic() - started))
    return outcomes


def brief(exc: BaseException) -> str:
    """An error for the table's failure line: its first line, and the end of what it carries (logs)."""
    text = str(exc)
    return text if len(text) < 1200 else f"{text[:400]} ... {text[-800:]}"


def _recover(bench: Bench, starter: Callable[[], None] | None = None) -> None:
    """After a run that did not finish: make sure an operator runs, so the next run is not judged on this one."""
    for name in bench.operator_names:
        process = bench.cluster.operators.get(name)
        if process is None or process.poll() is not None:
            bench.restart_operator(name)
    if starter is not None:
        starter()
