"""run_operator against an in-process API server (no runtime): a canary with a pause and a promote driven by
informer events and the work queue, requeue and backoff, work-queue metrics, and leader election between two
operators on one Lease (only the leader acts; a crashed leader is replaced within the lease duration; a lost
lease stops the workers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.coordination_v1 import Lease

from rollouts.api import actions
from rollouts.controller.loop import Controller
from rollouts.controller.operator import ROLLOUTS, Operator, WorkQueueMetrics
from rollouts.kube.cache import DEFAULT_KINDS, CachedStore
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.kube.kinds import KINDS
from rollouts.kube.leader import LeaderElector
from rollouts.kube.permissions import triples
from rollouts.store.protocol import NotFound
from tests.cluster.conftest import Cluster, rollout, start_cluster
from tests.controller.kubelet import Kubelet
from tests.kube.conftest import until

# Scaled down from client-go's 15/10/2 s, same proportions (the Lease holds whole seconds).
TIMINGS = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("operator-home"))
    yield found
    stop()


class Counting(Controller):
    """A Controller that counts the rollout reconciles it was asked for."""

    reconciles: int = 0

    def reconcile_rollout(self, obj: Any) -> float | None:
        self.reconciles += 1
        return super().reconcile_rollout(obj)


@asynccontextmanager
async def _operator(cluster: Cluster, namespace: str, *, lease: str | None = None, identity: str = "one",
                    **options: Any) -> AsyncIterator[tuple[Operator, asyncio.Event, asyncio.Task[None]]]:
    config = load_config(kubeconfig=cluster.kubeconfig)
    cache = CachedStore.connect(KubeStore(config), namespace=namespace)
    elector = None
    if lease is not None:
        elector = LeaderElector(AsyncClient(config=config.to_lightkube()), namespace, lease, identity, **TIMINGS)
    operator = Operator(Counting(store=cache), cache, elector=elector, **options)
    stop = asyncio.Event()
    task = asyncio.ensure_future(operator.run(stop))
    try:
        yield operator, stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await cache.aclose()
        if elector is not None:
            await elector.client.close()


def _status(store: KubeStore, namespace: str, name: str) -> dict[str, Any]:
    try:
        return dict(store.get("Rollout", namespace, name).get("status") or {})
    except NotFound:
        return {}


def _release(store: KubeStore, namespace: str, name: str, image: str) -> None:
    obj = rollout(name, image=image)
    obj["metadata"]["namespace"] = namespace
    try:
        store.get("Rollout", namespace, name)
    except NotFound:
        store.create(obj)
        return
    store.patch("Rollout", namespace, name, {"spec": {"template": obj["spec"]["template"]}})


def _run(body: Callable[[], Any]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 60))


class ApiCalls:
    """The (API group, resource, verb) of every request a KubeStore sends, as RBAC names them."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, str]] = set()

    def watch(self, store: KubeStore) -> None:
        real = store.request

        def request(method: str, path: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
            self.seen.add(self.triple(method, path, params or {}))
            return real(method, path, params, *args, **kwargs)
        store.request = request  # type: ignore[method-assign]

    @staticmethod
    def triple(method: str, path: str, params: Any) -> tuple[str, str, str]:
        parts = path.strip("/").split("/")
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        if rest[0] == "namespaces" and len(rest) > 2:
            rest = rest[2:]
        resource = "/".join([rest[0], *rest[2:3]])
        named = len(rest) > 1
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None:
            verb = "get" if named else ("watch" if params.get("watch") else "list")
        return group, resource, verb


def test_operator_drives_a_canary_through_pause_and_promote(cluster: Cluster) -> None:
    namespace = "op-canary"
    calls = ApiCalls()

    async def body() -> tuple[dict[str, Any], Operator, bytes]:
        cli = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
        kubelet = Kubelet(cluster, namespace)
        kubelet.start()
        try:
            async with _operator(cluster, namespace) as (operator, _, _):
                calls.watch(operator.cache.store)
                await asyncio.to_thread(_release, cli, namespace, "web", "demo:1")
                await until(lambda: _status(cli, namespace, "web").get("phase") == "Healthy")
                await asyncio.to_thread(_release, cli, namespace, "web", "demo:2")
                await until(lambda: (_status(cli, namespace, "web").get("phase"),
                                     _status(cli, namespace, "web").get("currentStepIndex")) == ("Paused", 1))
                paused = _status(cli, namespace, "web")
                # Paused on `pause: {}`: nothing is due, so nothing is reconciled while it waits.
                controller = operator.controller
                assert isinstance(controller, Counting)
                before = controller.reconciles
                await asyncio.sleep(0.5)
                assert controller.reconciles - before <= 1
                await asyncio.to_thread(actions.promote, cli, namespace, "web")
                await until(lambda: _status(cli, namespace, "web").get("phase") == "Healthy"
                            and _status(cli, namespace, "web").get("stableRS") == paused.get("currentPodHash"))
                return _status(cli, namespace, "web"), operator, operator.metrics.render()
        finally:
            kubelet.halt.set()
            kubelet.join(5)
            cli.close()
    status, operator, metrics = _run(body)
    assert status["currentStepIndex"] == 2 and status["stableRS"] == status["currentPodHash"]
    assert operator.terms == 1
    text = metrics.decode()
    assert f'workqueue_adds_total{{name="{ROLLOUTS}"}}' in text and 'workqueue_depth{name="AnalysisRuns"} 0' in text
    adds = int(next(line.split()[-1] for line in text.splitlines()
                    if line.startswith(f'workqueue_adds_total{{name="{ROLLOUTS}"}}')))
    assert adds > 3
    assert f'workqueue_queue_duration_seconds_count{{name="{ROLLOUTS}"}}' in text
    # Every call the operator made (its writes and uncached reads, plus the informers' list+watch) is granted by
    # the RBAC table the install manifests are checked against.
    informers = {(KINDS[k].group, KINDS[k].plural, verb) for k in DEFAULT_KINDS for verb in ("list", "watch")}
    assert calls.seen, "no API call was recorded"
    assert (calls.seen | informers) - triples() == set()


def test_operator_retries_a_raising_key_with_capped_backoff(cluster: Cluster,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = "op-backoff"
    calls: list[float] = []

    def failing(self: Controller, obj: Any) -> float | None:
        calls.append(time.monotonic())
        raise RuntimeError("store unreachable")

    monkeypatch.setattr(Counting, "reconcile_rollout", failing)

    async def body() -> WorkQueueMetrics:
        cli = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
        try:
            async with _operator(cluster, namespace) as (operator, _, _):
                await asyncio.to_thread(_release, cli, namespace, "web", "demo:1")
                await until(lambda: len(calls) >= 6)
                return operator.metrics
        finally:
            cli.close()
    metrics = _run(body)
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert gaps[4] > gaps[0]  # 5 ms, 10 ms, 20 ms... doubling
    assert metrics.queues[ROLLOUTS].retries >= 5


def test_operator_resync_requeues_every_rollout(cluster: Cluster) -> None:
    namespace = "op-resync"

    async def body() -> tuple[int, int]:
        cli = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
        try:
            await asyncio.to_thread(_release, cli, namespace, "idle", "demo:1")
            async with _operator(cluster, namespace, resync=0.3) as (operator, _, _):
                controller = operator.controller
                assert isinstance(controller, Counting)
                await until(lambda: controller.reconciles >= 1)
                await asyncio.sleep(0.3)
                first = controller.reconciles
                await asyncio.sleep(1.0)
                return first, controller.reconciles
        finally:
            cli.close()
    first, later = _run(body)
    assert later - first >= 2  # nothing changed: only the resync asked


def _workers(operator: Operator) -> int:
    controller = operator.controller
    assert isinstance(controller, Counting)
    return controller.reconciles


@pytest.mark.parametrize("crash", [True, False], ids=["leader-crashes", "leader-shuts-down"])
def test_two_operators_on_one_lease_only_the_leader_acts_and_the_other_takes_over(
        cluster: Cluster, crash: bool) -> None:
    namespace = f"op-lease-{'crash' if crash else 'graceful'}"

    async def body() -> tuple[float, int, int]:
        cli = KubeStore(load_config(kubeconfig=cluster.kubeconfig))
        try:
            async with _operator(cluster, namespace, lease="rollouts-controller", identity="one") as (one, stop1, t1):
                await until(lambda: one.working)
                async with _operator(cluster, namespace, lease="rollouts-controller", identity="two") as (two, _, _):
                    await asyncio.to_thread(_release, cli, namespace, "web", "demo:1")
                    await until(lambda: _status(cli, namespace, "web").get("phase") not in (None, ""))
                    await asyncio.sleep(TIMINGS["lease_duration"] * 0.75)  # several renewals: two stays out
                    assert one.working and not two.working
                    acted_by_two = _workers(two)
                    if crash:
                        assert one.elector is not None

                        async def no_release() -> bool:
                            return False
                        one.elector.release = no_release  # type: ignore[method-assign]
                    stopped_at = time.monotonic()
                    stop1.set()
                    await asyncio.wait_for(t1, 10)
                    assert not one.working
                    await until(lambda: two.working, TIMINGS["lease_duration"] + 2)
                    waited = time.monotonic() - stopped_at
                    # The new leader picks the rollouts up: an edit is acted on by two.
                    await asyncio.to_thread(_release, cli, namespace, "web", "demo:2")
                    await until(lambda: _workers(two) > 0)
                    return waited, acted_by_two, _workers(two)
        finally:
            cli.close()
    waited, before_takeover, after = _run(body)
    assert before_takeover == 0  # the follower never reconciled while the other led
    assert after > 0
    if crash:
        assert waited <= TIMINGS["lease_duration"] + 2 * TIMINGS["retry_period"] + 0.5
    else:
        assert waited < TIMINGS["lease_duration"]  # released: no wait for expiry


def test_operator_stops_working_when_its_lease_is_taken(cluster: Cluster) -> None:
    namespace = "op-lease-lost"

    async def body() -> tuple[float, int]:
        config = load_config(kubeconfig=cluster.kubeconfig)
        cli = KubeStore(config)
        client = AsyncClient(config=config.to_lightkube())
        try:
            await asyncio.to_thread(_release, cli, namespace, "web", "demo:1")
            async with _operator(cluster, namespace, lease="stolen", identity="one") as (one, _, _):
                await until(lambda: one.working)
                # Someone else writes itself in as the holder (another replica that saw the lease expire).
                lease = await client.get(Lease, "stolen", namespace=namespace)
                assert lease.spec is not None
                lease.spec.holderIdentity = "intruder"
                lease.spec.renewTime = datetime.now(UTC) + timedelta(seconds=60)
                await client.replace(lease)
                taken = time.monotonic()
                await until(lambda: not one.working, TIMINGS["renew_deadline"] + 1)
                lost_after = time.monotonic() - taken
                # While another holds the lease nothing is reconciled, even on a change.
                before = _workers(one)
                await asyncio.to_thread(_release, cli, namespace, "web", "demo:2")
                await asyncio.sleep(0.5)
                return lost_after, _workers(one) - before
        finally:
            await client.close()
            cli.close()
    lost_after, acted = _run(body)
    # Stopped within the renew deadline: before anyone who saw the takeover could count the lease expired.
    assert lost_after <= TIMINGS["renew_deadline"] + TIMINGS["retry_period"] + 0.3
    assert acted == 0

