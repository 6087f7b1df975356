"""The operator's events against the real local API server (rollouts.kube.events through CachedStore): one
decision, one event, however often it is taken again; the same event said again on a new status still counts;
event writes the API could not take while it was down are kept, bounded, and land once it is back; a decision
whose status write the API applied but never answered is not taken again from the status that write replaced."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

from rollouts.controller.apply import apply_action
from rollouts.controller.loop import Controller
from rollouts.controller.operator import ROLLOUTS, Operator
from rollouts.engine.types import EmitEvent
from rollouts.kube.cache import CachedStore
from rollouts.kube.client import ApiError, KubeStore, Unreachable
from rollouts.kube.config import load_config
from rollouts.kube.events import unavailable
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import Conflict, Invalid, JSONObject
from tests.cluster.conftest import start_cluster
from tests.kube.conftest import FEED_LIMIT, Cluster, rollout, serve_on, until

COMPLETED = "Rollout completed update to revision 2 (abc): Completed blue-green update"



def _run(cluster: Cluster, body: Callable[[CachedStore, KubeStore], Awaitable[Any]]) -> Any:
    """body(cache, other): a started operator cache (its own event memory) and a plain client."""
    async def main() -> Any:
        config = load_config(kubeconfig=cluster.kubeconfig)
        cache = CachedStore.connect(KubeStore(config), kinds=("Rollout",))
        other = KubeStore(config)
        try:
            await cache.start()
            await cache.wait_synced(10)
            return await asyncio.wait_for(body(cache, other), 60)
        finally:
            await cache.aclose()
            other.close()
    return asyncio.run(main())


def _rollout(namespace: str, version: str, status: dict[str, Any], **annotations: str) -> Rollout:
    obj = rollout("web")
    obj["metadata"].update(namespace=namespace, uid=f"uid-{namespace}", resourceVersion=version,
                           annotations=annotations)
    obj["status"] = status
    return Rollout.model_validate(obj)


def _counts(store: KubeStore, namespace: str) -> list[tuple[str, str, int]]:
    return sorted((e["reason"], e["message"], int(e.get("count") or 1)) for e in store.list("Event", namespace))


def _event(reason: str, message: str = "") -> EmitEvent:
    return EmitEvent(type="Normal", reason=reason, message=message or reason)


PROMOTING: dict[str, Any] = {"phase": "Progressing", "currentPodHash": "abc", "stableRS": "old",
             "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
HEALTHY = {"phase": "Healthy", "currentPodHash": "abc", "stableRS": "abc"}


def test_a_decision_taken_again_from_a_new_version_of_the_same_status_records_its_event_once(
        cluster: Cluster) -> None:
    # The API server died at a promotion: the status write recording it never landed, another client annotated
    # the Rollout meanwhile, and the operator (alive, its event memory intact) takes the decision again from the
    # new version. A failed reconcile's own condition, written in between, does not make it a new decision.
    ns = "ev-retake"

    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, int]]:
        apply_action(cache, _rollout(ns, "41", PROMOTING), _event("RolloutCompleted", COMPLETED))
        apply_action(cache, _rollout(ns, "45", PROMOTING, touch="1"), _event("RolloutCompleted", COMPLETED))
        failed = copy.deepcopy(PROMOTING)
        failed["conditions"].append({"type": "ReconcileError", "status": "True", "reason": "ReconcileError",
                                     "message": "reconcile failed: Unreachable"})
        apply_action(cache, _rollout(ns, "47", failed, touch="2"), _event("RolloutCompleted", COMPLETED))
        return _counts(other, ns)
    assert _run(cluster, body) == [("RolloutCompleted", COMPLETED, 1)]

    async def restarted(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, int]]:
        # A new operator (no memory) taking it again from the same status finds the event there.
        apply_action(cache, _rollout(ns, "49", PROMOTING, touch="3"), _event("RolloutCompleted", COMPLETED))
        return _counts(other, ns)
    assert _run(cluster, restarted) == [("RolloutCompleted", COMPLETED, 1)]


def test_the_same_event_said_again_on_a_new_status_counts_again(cluster: Cluster) -> None:
    ns = "ev-repeat"

    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, int]]:
        apply_action(cache, _rollout(ns, "10", {"phase": "Progressing", "currentStepIndex": 1}), _event("RolloutPaused"))
        apply_action(cache, _rollout(ns, "12", {"phase": "Paused", "currentStepIndex": 2}), _event("RolloutResumed"))
        apply_action(cache, _rollout(ns, "14", {"phase": "Progressing", "currentStepIndex": 3}), _event("RolloutPaused"))
        apply_action(cache, _rollout(ns, "16", {"phase": "Paused", "currentStepIndex": 3}), _event("RolloutResumed"))
        apply_action(cache, _rollout(ns, "18", {"phase": "Progressing", "currentStepIndex": 4}), _event("RolloutPaused"))
        # Back to back: the latest event said again by the next decision bumps its count.
        apply_action(cache, _rollout(ns, "20", {"phase": "Progressing", "currentStepIndex": 5}), _event("RolloutPaused"))
        return _counts(other, ns)
    assert _run(cluster, body) == [("RolloutPaused", "RolloutPaused", 1), ("RolloutPaused", "RolloutPaused", 1),
                                   ("RolloutPaused", "RolloutPaused", 2), ("RolloutResumed", "RolloutResumed", 1),
                                   ("RolloutResumed", "RolloutResumed", 1)]


def test_a_decision_whose_first_event_bumped_a_repeat_is_recorded_once_when_taken_again(cluster: Cluster) -> None:
    # The decision's first event repeats the latest one (a bump, not a new Event), others follow; its status
    # write is refused, and it is taken again from the same status: neither the bump nor the others again.
    ns = "ev-bump"

    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, int]]:
        apply_action(cache, _rollout(ns, "10", {"phase": "Progressing", "currentStepIndex": 1}),
                     _event("ScalingReplicaSet", "Scaled up ReplicaSet web-abc from 1 to 2"))
        for version in ("12", "15"):
            decision = _rollout(ns, version, {"phase": "Progressing", "currentStepIndex": 2}, touch=version)
            apply_action(cache, decision, _event("ScalingReplicaSet", "Scaled up ReplicaSet web-abc from 1 to 2"))
            apply_action(cache, decision, _event("RolloutStepCompleted", "Rollout step 2/4 completed"))
        return _counts(other, ns)
    assert _run(cluster, body) == [("RolloutStepCompleted", "Rollout step 2/4 completed", 1),
                                   ("ScalingReplicaSet", "Scaled up ReplicaSet web-abc from 1 to 2", 2)]


def test_availability_errors_are_the_ones_worth_retrying() -> None:
    assert unavailable(Unreachable("connection refused"))
    assert all(unavailable(ApiError(code, "x", "y")) for code in (429, 500, 503, 504))
    assert not any(unavailable(exc) for exc in (ApiError(403, "Forbidden", "no"), ApiError(401, "", ""),
                                                 Invalid("bad"), Conflict("Event", "ns", "e", "1", "2")))


@pytest.fixture
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, list[Any]]]:
    found, stop = start_cluster(tmp_path_factory.mktemp("events-home"), feed_limit=FEED_LIMIT)
    stops = [stop]
    yield found, stops
    stops[-1]()


def test_events_written_while_the_api_server_is_down_land_once_it_is_back(
        restartable: tuple[Cluster, list[Any]]) -> None:
    cluster, stops = restartable
    port = urlsplit(cluster.url).port
    assert port is not None
    ns = "default"

    async def body(cache: CachedStore, other: KubeStore) -> tuple[int, list[tuple[str, str, int]]]:
        aborting = _rollout(ns, "30", {"phase": "Progressing", "currentStepIndex": 1})
        apply_action(cache, aborting, _event("RolloutStepCompleted", "Rollout step 1/4 completed"))
        await asyncio.to_thread(stops.pop())  # the API server goes away mid-decision
        # The decision goes on: its events are kept, not raised; taken again (its status write failed), not
        # queued twice; a repeat by a later decision coalesces with them while they wait.
        for _ in range(2):
            apply_action(cache, aborting, _event("RolloutAborted", "Rollout aborted update to revision 2"))
            apply_action(cache, aborting, _event("ScalingReplicaSet", "Scaled down ReplicaSet web-abc from 1 to 0"))
        later = _rollout(ns, "33", {"phase": "Degraded", "abort": True})
        apply_action(cache, later, _event("ScalingReplicaSet", "Scaled down ReplicaSet web-abc from 1 to 0"))
        pending = cache.events.pending
        await asyncio.sleep(0.5)  # bench-like outage: a few retries fail meanwhile
        stops.append(await asyncio.to_thread(serve_on, cluster.home, port))
        await until(lambda: cache.events.pending == 0)
        return pending, _counts(other, ns)
    pending, counts = _run(cluster, body)
    assert pending == 2  # the abort, and the scale-down (created, then bumped, while waiting)
    assert counts == [("RolloutAborted", "Rollout aborted update to revision 2", 1),
                      ("RolloutStepCompleted", "Rollout step 1/4 completed", 1),
                      ("ScalingReplicaSet", "Scaled down ReplicaSet web-abc from 1 to 0", 2)]


def test_pending_event_writes_are_bounded_and_a_dropped_one_is_logged(
        restartable: tuple[Cluster, list[Any]], caplog: pytest.LogCaptureFixture) -> None:
    cluster, stops = restartable
    port = urlsplit(cluster.url).port
    assert port is not None

    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, int]]:
        cache.events.bound = 2
        await asyncio.to_thread(stops.pop())
        for n in range(4):
            apply_action(cache, _rollout("default", str(40 + n), {"currentStepIndex": n}), _event(f"Step{n}"))
        assert cache.events.pending == 2 and cache.events.dropped == 2
        stops.append(await asyncio.to_thread(serve_on, cluster.home, port))
        await until(lambda: cache.events.pending == 0)
        return _counts(other, "default")
    with caplog.at_level(logging.WARNING, logger="rollouts.kube.events"):
        counts = _run(cluster, body)
    assert counts == [("Step2", "Step2", 1), ("Step3", "Step3", 1)]  # the newest kept
    dropped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event dropped")]
    assert len(dropped) == 2 and "Step0" in dropped[0] and "Step1" in dropped[1], dropped


def test_an_event_create_whose_answer_was_lost_is_retried_without_a_second_event(cluster: Cluster) -> None:
    # The API applied the create and died before answering: the retry is answered 409 AlreadyExists, which
    # means it landed (the name was fixed when the event was made).
    ns = "ev-lost-answer"

    async def body(cache: CachedStore, other: KubeStore) -> tuple[int, list[tuple[str, str, int]]]:
        real = cache.store.create
        lost: list[str] = []

        def create(obj: Mapping[str, Any]) -> JSONObject:
            answer = real(obj)
            if obj.get("kind") == "Event" and not lost:
                lost.append(obj["metadata"]["name"])
                raise Unreachable("the connection broke before the answer came")
            return answer
        cache.store.create = create  # type: ignore[method-assign]
        apply_action(cache, _rollout(ns, "50", HEALTHY), _event("RolloutCompleted", COMPLETED))
        pending = cache.events.pending
        await until(lambda: cache.events.pending == 0)
        return pending, _counts(other, ns)
    pending, counts = _run(cluster, body)
    assert pending == 1
    assert counts == [("RolloutCompleted", COMPLETED, 1)]


def test_a_deferred_event_lands_before_the_next_write_of_the_cache(restartable: tuple[Cluster, list[Any]]) -> None:
    # A decision's events go before its status write, as without the outage: whoever sees the status sees them.
    cluster, stops = restartable
    port = urlsplit(cluster.url).port
    assert port is not None

    async def body(cache: CachedStore, other: KubeStore) -> list[tuple[str, str, int]]:
        cache.events.retry_first = cache.events.retry_max = 600.0  # the backoff task stays out of it
        await asyncio.to_thread(stops.pop())
        apply_action(cache, _rollout("default", "60", {"phase": "Degraded", "abort": True}),
                     _event("RolloutAborted", "Rollout aborted update to revision 2"))
        assert cache.events.pending == 1
        stops.append(await asyncio.to_thread(serve_on, cluster.home, port))
        cache.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after", "namespace": "default"}})
        return _counts(other, "default")
    assert _run(cluster, body) == [("RolloutAborted", "Rollout aborted update to revision 2", 1)]


class Promoting(Controller):
    """Stands in for the engine's decisions on one rollout: at step 1 it moves to step 2; once the analysis has
    passed (`passed`, the world seen by the decision) it promotes from whichever step it reads: RolloutCompleted,
    named after the status the decision started from, then the promoted status (as the engine orders them)."""

    go = False
    passed = False

    def reconcile_rollout(self, obj: Any) -> float | None:
        status = dict(obj.get("status") or {})
        if not self.go or status.get("phase") == "Healthy":
            return None
        if self.passed:
            apply_action(self.store, Rollout.model_validate(obj), _event("RolloutCompleted", COMPLETED))
            status.update(phase="Healthy", stableRS="abc")
        else:
            status["currentStepIndex"] = 2
        try:
            self.store.update_status({**obj, "status": status})
        except Conflict:
            return 0.0  # taken again on the status the 409 re-read
        return 0.0


def test_a_status_write_the_api_applied_but_never_answered_is_not_decided_again_from_the_status_before_it(
        restartable: tuple[Cluster, list[Any]]) -> None:
    # Chaos run 55: the API server applied the operator's status write (step 2) and was killed before answering.
    # The analysis passed meanwhile; the decision retaken from the cache, which never saw that write, promoted
    # from step 1 (its RolloutCompleted named after step 1's status), was refused with 409 and promoted again
    # from step 2: two RolloutCompleted. The operator now re-reads the rollout from the API first.
    cluster, stops = restartable
    port = urlsplit(cluster.url).port
    assert port is not None
    ns = "default"

    async def main() -> tuple[list[tuple[str, str, int]], dict[str, Any]]:
        config = load_config(kubeconfig=cluster.kubeconfig)
        other = KubeStore(config)
        created = other.create({**rollout("web"), "metadata": {"name": "web", "namespace": ns}})
        other.update_status({**created, "status": {"phase": "Progressing", "currentStepIndex": 1,
                                                   "currentPodHash": "abc", "stableRS": "old"}})
        cache = CachedStore.connect(KubeStore(config), kinds=("Rollout",))
        controller = Promoting(store=cache)
        operator = Operator(controller, cache)
        stop = asyncio.Event()
        task = asyncio.ensure_future(operator.run(stop))
        lost: list[str] = []
        real = cache.store.update_status

        def update_status(obj: Mapping[str, Any]) -> JSONObject:
            answer = real(obj)
            if not lost:
                lost.append(answer["metadata"]["resourceVersion"])
                stops.pop()()  # the API server goes away with the answer
                controller.passed = True
                raise Unreachable("the connection broke before the answer came")
            return answer
        cache.store.update_status = update_status  # type: ignore[method-assign]
        try:
            await until(lambda: bool(operator.queues) and cache.peek("Rollout", ns, "web") is not None)
            # The watch that would have brought the applied write back is held off (as a watch that has not
            # reconnected yet): the cache holds step 1 until something re-reads it.
            await cache.informers["Rollout"].stop()
            controller.go = True
            operator.queues[ROLLOUTS].add((ns, "web"))
            await until(lambda: bool(lost))
            await asyncio.sleep(0.5)  # down a while: retakes fail meanwhile
            stops.append(await asyncio.to_thread(serve_on, cluster.home, port))
            await until(lambda: (other.get("Rollout", ns, "web").get("status") or {}).get("phase") == "Healthy",
                        timeout=30)
            await until(lambda: cache.events.pending == 0)
            return _counts(other, ns), other.get("Rollout", ns, "web")["status"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await cache.aclose()
            other.close()

    counts, status = asyncio.run(main())
    assert status["currentStepIndex"] == 2 and status["stableRS"] == "abc"
    assert counts == [("RolloutCompleted", COMPLETED, 1)]
