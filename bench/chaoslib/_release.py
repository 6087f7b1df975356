"""Releases the process-fault families inject their faults into: one local cluster (`rollouts cluster up`) with
operators over its kubeconfig, a canary (`shop`) and a blue/green (`bg`) rollout gated by analysis, and one
release per chaos run (a new image each time). A release is watched from the store while it runs (so a gate
passed without its Successful AnalysisRun is seen when it happens) and summed up afterwards in terms that do not
depend on timing, so that a disturbed run can be compared with an undisturbed run of the same release.

Cheap on purpose: one replica, 1 s pauses, 0.3 s measurement intervals, probe period 0.2 s.
Not a family (no FAMILY): `bench/chaos.py` skips it."""

from __future__ import annotations

import collections
import dataclasses
import json
import random
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.harness import RemoteCluster, wait_until  # noqa: E402

from chaoslib import Outcome  # noqa: E402
from rollouts.demo import releases  # noqa: E402
from rollouts.demo.prometheus import free_port  # noqa: E402

HASH_LABEL = "rollouts-pod-template-hash"
CANARY_STEPS = 5
ANALYSIS_STEP = 2  # index of the canary's analysis step: the index may pass it only after a Successful run
RELEASE_TIMEOUT = 150.0  # a release takes seconds; a machine loaded 10x over takes minutes


def manifests(canary_port: int, preview_port: int) -> str:
    """The template judges a Service's own /color: a `red...` build is a known-bad one."""
    template = releases.color_template("not-red", "http://127.0.0.1:{{args.port}}/color", {
        "interval": "300ms", "count": 3, "failureLimit": 0, "successCondition": "!(result startsWith 'red')"},
        args=("port",))
    shop = releases.shop_canary([{"setWeight": 30}, {"pause": {"duration": "1s"}},
                                 {"analysis": releases.gate("not-red", port=canary_port)},
                                 {"setWeight": 60}, {"pause": {"duration": "1s"}}], grace=1, delay=1)
    bg = releases.bg_bluegreen(grace=1, delay=1, pre=releases.gate("not-red", port=preview_port))
    return releases.to_yaml(template, shop, bg, *releases.bg_services(preview_port),
                            *releases.shop_services(canary_port))


class Recorded(list[Outcome]):
    """The outcomes of a family's runs, each also appended to a JSON-lines file as it is made, so a long
    bench cut short still tells what its finished runs did (`bench/chaos.py --from-records`)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def append(self, outcome: Outcome) -> None:
        super().append(outcome)
        with self.path.open("a") as out:
            out.write(json.dumps(dataclasses.asdict(outcome)) + "\n")


@dataclass
class Release:
    """One release in flight: which rollout, what it should end as, and what the watcher saw."""

    bench: Bench
    rollout: str
    strategy: str           # "canary" | "bluegreen"
    kind: str               # "good" | "bad" (the analysis fails) | "abort" (the operator's `rollouts abort`)
    image: str
    old_hash: str
    before_events: collections.Counter[tuple[str, str]]
    before_runs: set[str]
    new_hash: str = ""
    # The revision the last release left as current: an aborted one stays current (Argo keeps it), and must not
    # be taken for this release's before the operator has seen the new image.
    previous_hash: str = ""
    ungated: list[str] = field(default_factory=list)  # what the watcher saw pass without its evidence

    # -- watching ------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.bench.cluster.status(self.rollout)

    def runs(self) -> list[dict[str, Any]]:
        """This release's AnalysisRuns."""
        with self.bench.cluster.store() as store:
            found = store.list("AnalysisRun", "default")
        return [r for r in found if r["metadata"]["name"] not in self.before_runs
                and r["metadata"]["name"].startswith(f"{self.rollout}-")]

    def run_phase(self, phases: set[str]) -> bool:
        return any((r.get("status") or {}).get("phase") in phases for r in self.runs())

    def current_hash(self) -> str:
        current = str(self.status().get("currentPodHash") or "")
        if current and current not in (self.old_hash, self.previous_hash):
            self.new_hash = current
        return self.new_hash

    def done(self) -> bool:
        status = self.status()
        if not self.current_hash() or status.get("currentPodHash") != self.new_hash:
            return False
        promoted = status.get("phase") == "Healthy" and status.get("stableRS") == self.new_hash
        # Aborted, or promoted (an abort that came too late, or was forgotten: the judgement tells which).
        return promoted or bool(status.get("abort")) and status.get("phase") == "Degraded"

    def watch_once(self) -> None:
        """One look at the store: has a gate been passed without a Successful AnalysisRun of this revision?"""
        new = self.current_hash()
        if not new:
            return
        status = self.status()
        successful = any((r.get("status") or {}).get("phase") == "Successful"
                         and r["metadata"].get("labels", {}).get(HASH_LABEL) == new for r in self.runs())
        if self.strategy == "canary":
            index = status.get("currentStepIndex")
            passed = status.get("currentPodHash") == new and isinstance(index, int) and index > ANALYSIS_STEP
            what = f"step index {index} past the analysis step"
        else:
            active = self.bench.cluster.read("Service", "bg-active") or {}
            passed = ((active.get("spec") or {}).get("selector") or {}).get(HASH_LABEL) == new
            what = "bg-active switched to the new revision"
        if status.get("stableRS") == new and self.kind != "good":
            self.ungated.append(f"a {self.kind} release became stable")
        elif passed and not successful and self.kind != "abort":
            self.ungated.append(f"{what} without a Successful AnalysisRun")

    # -- judging -------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What the release left, in terms that do not depend on when a fault struck."""
        status = self.status()
        events = self.bench.event_counts(self.rollout)
        delta = {key: events[key] - self.before_events.get(key, 0) for key in events
                 if events[key] != self.before_events.get(key, 0)}
        steps = sorted((message, count) for (reason, message), count in delta.items()
                       if reason == "RolloutStepCompleted")
        summary: dict[str, Any] = {
            "phase": status.get("phase"),
            "abort": bool(status.get("abort")),
            "stable": "new" if status.get("stableRS") == self.new_hash else
                      "old" if status.get("stableRS") == self.old_hash else "?",
            "completed": sum(c for (reason, message), c in delta.items()
                             if reason == "RolloutCompleted" and self.new_hash in message),
            # An event the operator wrote just before a SIGKILL may be written again by the next one (the status
            # recording it had not been stored): at-least-once, so whether, not how often (`repeated_events`).
            "aborted": any(reason == "RolloutAborted" for reason, _ in delta),
        }
        if self.kind != "abort":  # an abort lands at whatever step the release had reached: timing, not outcome
            summary["steps"] = sorted(message for message, _ in steps)
            summary["runs"] = sorted(((r["metadata"].get("labels") or {}).get("rollout-type", "?"),
                                      (r.get("status") or {}).get("phase", "")) for r in self.runs())
        return summary

    def promotions(self) -> int:
        """How many times this release was promoted: its RolloutCompleted events (one when all went well)."""
        return int(self.summary()["completed"])

    def repeated_events(self) -> int:
        """Events of this release recorded more than once (a step completed, an abort), promotions aside."""
        events = self.bench.event_counts(self.rollout)
        return sum(max(0, events[key] - self.before_events.get(key, 0) - 1) for key in events
                   if key[0] in ("RolloutStepCompleted", "RolloutAborted"))


class Bench:
    """The cluster the runs of one family share, and its operators."""

    def __init__(self, workdir: Path, seed: int, operators: tuple[str, ...] = ("operator",),
                 leader_elect: bool = False) -> None:
        self.cluster = RemoteCluster(workdir)
        self.rng = random.Random(seed)
        self.operator_names = list(operators)
        self.leader_elect = leader_elect
        self.releases = 0

    def __enter__(self) -> Bench:
        self.cluster.__enter__()
        try:
            for name in self.operator_names:
                self.cluster.start_operator(name, leader_elect=self.leader_elect)
            manifest = self.cluster.root / "release.yaml"
            manifest.write_text(manifests(free_port(), free_port()))
            self.cluster.cli("apply", "-f", str(manifest))
            for rollout in ("shop", "bg"):
                wait_until(lambda r=rollout: self.cluster.status(r).get("phase") == "Healthy", 90,
                           f"{rollout}'s first revision\n{self.cluster.tails()}")
        except BaseException:
            self.cluster.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.close()

    def event_counts(self, involved: str) -> collections.Counter[tuple[str, str]]:
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for event in self.cluster.events(involved):
            counts[(event["reason"], event["message"])] += int(event.get("count") or 1)
        return counts

    def operator(self, pick: Callable[[], str] | None = None) -> str:
        return pick() if pick else self.operator_names[0]

    def restart_operator(self, name: str, new_name: str | None = None) -> None:
        """A new operator process after `name` was killed (a new Pod: a new identity when `new_name`)."""
        if new_name is not None:
            self.operator_names[self.operator_names.index(name)] = new_name
        self.cluster.start_operator(new_name or name, leader_elect=self.leader_elect,
                                    wait=not self.leader_elect)

    def release(self, strategy: str, kind: str, fault: Callable[[Release], str]) -> tuple[Release, str]:
        """Run one release of `strategy` ("canary"/"bluegreen") of `kind`, calling `fault` once it has started
        (it injects the fault and says what it did), and wait until the release is over."""
        rollout = "shop" if strategy == "canary" else "bg"
        self.releases += 1
        color = f"red{self.releases}" if kind == "bad" else f"c{self.releases}"  # a new image every release
        image = f"rollouts-demo:{color}"
        with self.cluster.store() as store:
            before_runs = {r["metadata"]["name"] for r in store.list("AnalysisRun", "default")}
        wait_until(lambda: self.cluster.status(rollout).get("phase") in ("Healthy", "Degraded"), 60,
                   f"{rollout} to settle before the next release")
        before = self.cluster.status(rollout)
        release = Release(self, rollout, strategy, kind, image, str(before.get("stableRS")),
                          self.event_counts(rollout), before_runs, previous_hash=str(before.get("currentPodHash") or ""))
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.05):
                try:
                    release.watch_once()
                except Exception:  # noqa: BLE001 - a read racing a write: the next look tells
                    continue

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            self.cluster.cli("set", "image", rollout, f"{rollout}={image}")
            wait_until(release.current_hash, 30, f"{rollout} to start releasing {image}", interval=0.05)
            what = fault(release)
            wait_until(release.done, RELEASE_TIMEOUT, f"{rollout} to finish releasing {image} after {what}\n"
                       f"{self.cluster.tails()}", interval=0.1)
        finally:
            stop.set()
            watcher.join(timeout=5)
        release.watch_once()  # and one look at the final state
        return release, what
