"""Two operator processes on one cluster with leader election, as two replicas of the Deployment run: only the
holder of the `argo-rollouts-controller-lock` Lease acts. Stop it mid-canary and the other takes over: after
SIGKILL within the lease duration (15 s, plus its 2 s retry); after SIGTERM at once (the stopping leader
gives the Lease up), well before a lease left to expire could be taken. Either way the release ends as an
undisturbed one does: every step completed exactly once, each weight set and each scale made exactly once,
nothing skipped and nothing done twice; and the API server's write log (each operator names itself in its
User-Agent) shows one actor, then the other, never both."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import RemoteCluster, actor_spans, wait_until
from tests.e2e.manifests import shop_services

pytestmark = pytest.mark.integration

LEASE = "argo-rollouts-controller-lock"
LEASE_SECONDS, RETRY_SECONDS = 15.0, 2.0
# A slow CI machine may need a moment beyond the lease arithmetic to notice and write the Lease.
TAKEOVER_SLACK_SECONDS = 5.0
# After SIGTERM the Lease is released: the standby takes it at its next retry. A Lease left to expire instead
# could not be taken before LEASE_SECONDS - RETRY_SECONDS after the signal (the standby saw its last renewal
# at most one retry earlier), so a takeover inside this bound shows the release did it.
RELEASED_TAKEOVER_SECONDS = 10.0

STEPPED = """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: shop
        image: rollouts-demo:blue
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      scaleDownDelaySeconds: 2
      trafficRouting:
        nginx: {stableIngress: shop}
      steps:
      - setWeight: 20
      - pause: {duration: 6s}
      - setWeight: 50
      - pause: {duration: 6s}
      - setWeight: 80
      - pause: {duration: 6s}
""" + shop_services()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[RemoteCluster]:
    with RemoteCluster(tmp_path) as cluster:
        for name in ("op-a", "op-b"):
            cluster.start_operator(name, leader_elect=True, wait=False)
        wait_until(lambda: holder(cluster) in cluster.operators, 40, "one operator to hold the Lease")
        yield cluster


def holder(cluster: RemoteCluster) -> str:
    lease = cluster.read("Lease", LEASE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def _phase(pair: RemoteCluster) -> str:
    rollout = pair.read("Rollout", "shop") or {}
    return str((rollout.get("status") or {}).get("phase") or "")


def _step(pair: RemoteCluster) -> int:
    rollout = pair.read("Rollout", "shop") or {}
    return int((rollout.get("status") or {}).get("currentStepIndex") or 0)


def test_sigkill_of_the_leader_mid_canary_hands_over_within_the_lease_and_acts_once(
        pair: RemoteCluster, tmp_path: Path) -> None:
    _start_canary(pair, tmp_path)
    leader = holder(pair)
    other = next(name for name in pair.operators if name != leader)
    pair.signal_operator(leader, signal.SIGKILL)
    killed_at, killed_wall = time.monotonic(), time.time()
    wait_until(lambda: holder(pair) == other, LEASE_SECONDS + RETRY_SECONDS + TAKEOVER_SLACK_SECONDS,
               f"{other} to take the Lease\n{pair.tails()}")
    takeover = time.monotonic() - killed_at
    print(f"\nleader {leader} SIGKILLed at step {_step(pair)}; {other} holds the Lease {takeover:.1f}s later")

    _assert_completed_acting_once(pair, other)
    # Who wrote what, from the API server's own log: the leader's turn, then the other's, never interleaved.
    spans = actor_spans(pair.writes())
    assert [name for name, _, _ in spans] == [leader, other], spans
    assert spans[0][2] < killed_wall <= spans[1][1], (spans, killed_wall)


def _start_canary(pair: RemoteCluster, tmp_path: Path) -> None:
    """The first revision Healthy (only the Lease holder having acted), then the second one's canary past its
    first step."""
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(STEPPED)
    pair.cli("apply", "-f", str(manifest))
    wait_until(lambda: _phase(pair) == "Healthy", 90, f"the first revision to be Healthy\n{pair.tails()}")
    standby_logs = {name: log.read_text() for name, log in pair.logs.items() if name != holder(pair)}
    assert all("reconciled" not in text for text in standby_logs.values()), "a standby acted"
    pair.cli("set", "image", "shop", "shop=rollouts-demo:green")
    wait_until(lambda: _step(pair) >= 1, 60, f"the canary's first step\n{pair.tails()}")


def _assert_completed_acting_once(pair: RemoteCluster, successor: str) -> None:
    """The release completes under `successor`, and the Rollout's Events show every action of it once: each
    step completed, each weight set and each ReplicaSet scale made a single time (a repeated one would be a
    second Event with the same message or a count above 1)."""
    wait_until(lambda: _phase(pair) == "Healthy" and _step(pair) == 6, 120,
               f"the release to complete under {successor}\n{pair.tails()}")
    status = (pair.read("Rollout", "shop") or {})["status"]
    assert status["stableRS"] == status["currentPodHash"]


    def old_scaled_down() -> list[dict[str, Any]] | None:
        # The old ReplicaSet goes down scaleDownDelaySeconds after the promotion, so possibly after Healthy.
        events = pair.events("shop")
        down = any(e["reason"] == "ScalingReplicaSet" and "Scaled down" in e["message"]
                   and "(revision 1)" in e["message"] for e in events)
        return events if down else None

    events = wait_until(old_scaled_down, 30, f"the old ReplicaSet to be scaled down\n{pair.tails()}")
    completed = sorted(e["message"] for e in events if e["reason"] == "RolloutStepCompleted")
    # Each step of each release completed once: the second release's six steps, none repeated (count 1).
    second = [m for m in completed if "/6" in m]
    assert len(second) == len(set(second)) == 6, completed
    assert all(int(e.get("count") or 1) == 1 for e in events if e["reason"] == "RolloutStepCompleted"), events
    weights = [e for e in events if e["reason"] == "TrafficWeightUpdated"]
    messages = [e["message"] for e in weights]
    assert len(messages) == len(set(messages)), messages  # no weight set twice
    assert all(int(e.get("count") or 1) == 1 for e in weights), weights
    for weight in (20, 50, 80):
        assert any(f"{weight}" in m for m in messages), (weight, messages)
    scales = [e for e in events if e["reason"] == "ScalingReplicaSet"]
    scaled = [e["message"] for e in scales]
    assert len(scaled) == len(set(scaled)), scaled  # no ReplicaSet scaled twice to the same size
    assert all(int(e.get("count") or 1) == 1 for e in scales), scales
    assert any("Scaled up" in m and "(revision 2)" in m for m in scaled), scaled


def test_sigterm_of_the_leader_mid_canary_releases_the_lease_and_the_standby_takes_over_at_once(
        pair: RemoteCluster, tmp_path: Path) -> None:
    _start_canary(pair, tmp_path)
    leader = holder(pair)
    other = next(name for name in pair.operators if name != leader)
    process = pair.operators[leader]
    signalled_at, signalled_wall = time.monotonic(), time.time()
    process.send_signal(signal.SIGTERM)
    # The bound is generous so that a lease left to expire shows as a too-slow takeover, not a timeout.
    wait_until(lambda: holder(pair) == other, LEASE_SECONDS + RETRY_SECONDS + TAKEOVER_SLACK_SECONDS,
               f"{other} to take the Lease\n{pair.tails()}", interval=0.05)
    takeover = time.monotonic() - signalled_at
    code = process.wait(timeout=60)
    exited = time.monotonic() - signalled_at
    print(f"\nleader {leader} SIGTERMed at step {_step(pair)}; {other} holds the Lease {takeover:.1f}s later; "
          f"{leader} exited after {exited:.1f}s")
    assert code == 0, f"{leader} exited with {code}\n{pair.tails()}"
    leader_log = pair.logs[leader].read_text(errors="replace")
    assert f"released by {leader}" in leader_log, leader_log[-2500:]
    assert takeover < RELEASED_TAKEOVER_SECONDS, f"takeover {takeover:.1f}s after SIGTERM: the Lease expired?"

    _assert_completed_acting_once(pair, other)
    # The stopping leader may finish a write after the signal, but none after its successor's first.
    spans = actor_spans(pair.writes())
    assert [name for name, _, _ in spans] == [leader, other], spans
    assert spans[0][2] < spans[1][1] and signalled_wall <= spans[1][1], (spans, signalled_wall)
