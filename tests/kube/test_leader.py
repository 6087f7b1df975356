"""Lease leader election against the real local API server: one leader, takeover, loss, release; a leader
whose renewals stop (a blocked loop, a foreign holder, an API server that never answers) stops acting."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.coordination_v1 import Lease

from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.kube.leader import FencedKubeStore, LeaderElector, LeaseLost
from tests.kube.conftest import Cluster, until

# Scaled down from client-go's 15/10/2 s, same proportions; the Lease holds whole seconds.
TIMINGS = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


def _run(cluster: Cluster, body: Callable[[AsyncClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = AsyncClient(config=load_config(kubeconfig=cluster.kubeconfig).to_lightkube())
        try:
            return await asyncio.wait_for(body(client), 20)
        finally:
            await client.close()
    return asyncio.run(main())



def _elector(client: AsyncClient, lease: str, identity: str, log: list[str]) -> LeaderElector:
    return LeaderElector(client, "default", lease, identity, **TIMINGS,
                         on_started_leading=lambda: log.append(f"start {identity}"),
                         on_stopped_leading=lambda: log.append(f"stop {identity}"))


def test_two_electors_only_one_leads_and_the_other_takes_over(cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> tuple[list[str], float, Any]:
        log: list[str] = []
        one, two = _elector(client, "lead-a", "one", log), _elector(client, "lead-a", "two", log)
        one.start()
        await until(lambda: one.is_leader, 5)
        two.start()
        await asyncio.sleep(TIMINGS["lease_duration"] * 0.75)  # several renewals: two must stay out
        assert one.is_leader and not two.is_leader and two.observed_holder == "one"
        # The holder stops renewing without releasing (a crash): two takes over within the lease duration
        # (plus one retry period to notice).
        await one.stop(release=False)
        waited = await until(lambda: two.is_leader, TIMINGS["lease_duration"] + 2 * TIMINGS["retry_period"] + 1)
        lease = await client.get(Lease, "lead-a", namespace="default")
        await two.stop()
        return log, waited, lease.spec
    log, waited, spec = _run(cluster, body)
    assert log == ["start one", "stop one", "start two", "stop two"]
    assert waited <= TIMINGS["lease_duration"] + 2 * TIMINGS["retry_period"] + 0.5
    assert spec.holderIdentity == "two" and spec.leaseTransitions == 1 and spec.leaseDurationSeconds == 2


def test_graceful_release_hands_over_at_once(cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> float:
        log: list[str] = []
        one, two = _elector(client, "lead-b", "one", log), _elector(client, "lead-b", "two", log)
        one.start()
        await until(lambda: one.is_leader, 5)
        two.start()
        await asyncio.sleep(0.3)
        await one.stop(release=True)
        waited = await until(lambda: two.is_leader, 5)
        await two.stop()
        return waited
    assert _run(cluster, body) < TIMINGS["lease_duration"]  # no wait for expiry after a release


def test_leader_that_cannot_renew_stops_before_the_lease_expires(cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> tuple[float, float, bool]:
        log: list[str] = []
        one = _elector(client, "lead-c", "one", log)
        task = one.start()
        await until(lambda: one.is_leader, 5)
        lease = await client.get(Lease, "lead-c", namespace="default")
        renewed_at = time.monotonic()
        # Another writer grabs the Lease behind the leader's back (as if the leader were partitioned):
        # every renewal now sees a live foreign holder and fails.
        lease.spec.holderIdentity = "intruder"
        await client.replace(lease)
        await until(lambda: not one.is_leader, 5)
        stopped_after = time.monotonic() - renewed_at
        await asyncio.wait_for(task, 2)  # run() returns after losing leadership
        return stopped_after, TIMINGS["lease_duration"], log == ["start one", "stop one"]
    stopped_after, lease_duration, logged = _run(cluster, body)
    assert stopped_after < lease_duration and logged
    # Seeing another holder ends leadership at the next renewal, not at the renew deadline.
    assert stopped_after < TIMINGS["renew_deadline"], stopped_after


def test_a_leader_whose_loop_is_blocked_past_the_renew_deadline_is_no_longer_leader(cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> tuple[bool, bool, bool, bool]:
        one = _elector(client, "lead-e", "one", [])
        one.start()
        await until(lambda: one.is_leader, 5)
        one.fence()  # leading: writes pass
        # A long synchronous reconcile holds the event loop: the renew loop cannot run, but the clock goes on.
        time.sleep(TIMINGS["renew_deadline"] + 0.1)
        leader_after = one.is_leader
        try:
            one.fence()
            fenced = False
        except LeaseLost:
            fenced = True
        # Once the loop turns again the renew loop ends leadership (the flag the operator waits on).
        await until(lambda: not one.leading.is_set(), 3)
        stopped = not one.leading.is_set()
        await one.stop()
        return one.is_leader, leader_after, fenced, stopped
    is_leader, leader_after, fenced, stopped = _run(cluster, body)
    assert not leader_after and fenced and stopped and not is_leader


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (an API server wedged under load)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_attempts_and_the_release_are_bounded_when_the_api_server_never_answers(
        cluster: Cluster, silent_server: int) -> None:
    config = dataclasses.replace(load_config(kubeconfig=cluster.kubeconfig), server=f"https://127.0.0.1:{silent_server}")

    async def main() -> tuple[float, float, bool, bool]:
        client = AsyncClient(config=config.to_lightkube())
        try:
            one = _elector(client, "lead-f", "one", [])
            began = time.monotonic()
            won = await one._attempt()
            attempt = time.monotonic() - began
            one.leading.set()  # as if it had led: stop() must not wait on the silent server either
            one._renewed_at = time.monotonic()
            began = time.monotonic()
            await one.stop(release=True)
            return attempt, time.monotonic() - began, won, one.is_leader
        finally:
            await client.close()
    attempt, stopping, won, leader = asyncio.run(asyncio.wait_for(main(), 30))
    assert not won and not leader
    assert attempt < TIMINGS["renew_deadline"] + 1.0, attempt  # lightkube alone would wait 10 s per request
    assert stopping < 3.0 + 1.0, stopping  # leader.RELEASE_SECONDS


def test_fenced_store_refuses_writes_once_the_lease_is_not_held(cluster: Cluster) -> None:
    held = [True]

    def fence() -> None:
        if not held[0]:
            raise LeaseLost("not leading")
    base = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
    store = FencedKubeStore(base, fence)
    try:
        made = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fenced", "namespace": "default"}}
        store.create(made)
        held[0] = False
        with pytest.raises(LeaseLost):
            store.create({**made, "metadata": {"name": "fenced-2", "namespace": "default"}})
        with pytest.raises(LeaseLost):
            store.delete("ConfigMap", "default", "fenced")
        assert store.get("ConfigMap", "default", "fenced")["metadata"]["name"] == "fenced"  # reads pass
        with pytest.raises(Exception, match="not found"):
            base.get("ConfigMap", "default", "fenced-2")  # nothing was sent
    finally:
        store.close()
        base.close()


def test_stale_write_loses_with_409(cluster: Cluster) -> None:
    async def body(client: AsyncClient) -> tuple[bool, bool]:
        one = _elector(client, "lead-d", "one", [])
        assert await one.try_acquire_or_renew()
        stale = await client.get(Lease, "lead-d", namespace="default")
        assert await one.try_acquire_or_renew()  # renewed: the resourceVersion moved on
        stale.spec.holderIdentity = "two"
        try:
            await client.replace(stale)
            conflicted = False
        except Exception as exc:  # noqa: BLE001
            conflicted = getattr(getattr(exc, "status", None), "code", None) == 409
        two = _elector(client, "lead-d", "two", [])
        return conflicted, await two.try_acquire_or_renew()
    conflicted, two_acquired = _run(cluster, body)
    assert conflicted and not two_acquired
