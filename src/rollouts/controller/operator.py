"""The operator's event-driven loop: informer changes -> keys in work queues -> the controller's per-object
methods, with requeue-after, per-key backoff, bounded workers, a periodic resync and leader election.

This replaces the controller's full pass over the store every 0.5 s (`Controller.run`) when the store is a
`CachedStore`:
- every change the cache reports is mapped to the keys it concerns (`Router`): a Rollout to itself; a
  ReplicaSet, AnalysisRun, canary Ingress or Job to the Rollout that owns it (ownerReferences, through the
  ReplicaSet for a Pod and through the AnalysisRun for a Job); a Service or Ingress to the Rollouts whose
  spec names it; an (Cluster)AnalysisTemplate to the Rollouts that use it; an AnalysisRun (or its Job)
  also to the run itself;
- two de-duplicating queues, named as Argo names them ("Rollouts", "AnalysisRuns"), feed
  `Controller.reconcile_rollout` and `Controller.step_analysis_run`; the seconds they return are the
  requeue-after; a key whose handler raises is retried with capped exponential backoff;
- every `resync` seconds (15 min, Argo's default) all cached Rollouts and AnalysisRuns are queued again,
  the safety net for a missed change;
- with a `LeaderElector`, workers run only while it leads: on a lost lease the queues are shut down at
  once (nothing new is taken), then it campaigns again; on shutdown in-flight keys finish, then the Lease
  is released so another replica takes over without waiting for it to expire. Each key asks the elector
  first (`is_leader` turns false by the clock when renewals stop, even if the loop was too busy to notice);
- on becoming leader every cached Rollout and AnalysisRun is queued (changes seen while standing by were
  not), so the new leader picks up each release where the old one left it;
- shutdown is bounded: in-flight keys get `SHUTDOWN_SECONDS` to finish, the Lease release and the analysis
  executor's close get theirs, and each phase is logged with its duration.

The controller's methods are synchronous and run on the event loop's thread (the analysis executor
starts its measurements as tasks of this loop), one key at a time; each key yields to the loop first so
informers, lease renewals and the stop signal are never starved by a long queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from rollouts.controller.loop import Controller
from rollouts.kube.cache import CachedStore
from rollouts.kube.leader import LeaderElector
from rollouts.kube.workqueue import ExponentialBackoff, QueueMetrics, WorkQueue
from rollouts.store.protocol import ChangeType

log = logging.getLogger("rollouts.controller")

ROLLOUTS, ANALYSIS_RUNS = "Rollouts", "AnalysisRuns"  # Argo's queue names (its workqueue metrics' `name`)
# Argo's --rollout-resync default. A resync reconciles every rollout (~4 ms each measured at 5,000 by
# bench/scale.py): at 20,000 rollouts a 5-minute period alone would keep a quarter of a core busy.
RESYNC_SECONDS = 900.0
# Per-key retry of a handler that raised: 5 ms doubling up to 10 s (a local tool should not wait 1000 s,
# client-go's cap, before retrying a rollout).
BACKOFF_BASE, BACKOFF_CAP = 0.005, 10.0
HEARTBEAT_SECONDS = 1.0
# Graceful stop: how long in-flight keys and in-flight measurements may take to finish (a kubelet sends
# SIGKILL after terminationGracePeriodSeconds, 30 s by default: this leaves room to release the Lease).
SHUTDOWN_SECONDS = 10.0

Key = tuple[str, str]  # (namespace, name)
Ref = tuple[str, str, str]  # (kind, namespace, name) of an object a Rollout's spec names


# -- which rollouts name which objects ------------------------------------------------------------------

def _template_refs(node: Any, namespace: str) -> Iterator[Ref]:
    if isinstance(node, Mapping):
        name = node.get("templateName")
        if isinstance(name, str) and name:
            if node.get("clusterScope"):
                yield "ClusterAnalysisTemplate", "", name
            else:
                yield "AnalysisTemplate", namespace, name
        for value in node.values():
            yield from _template_refs(value, namespace)
    elif isinstance(node, list):
        for value in node:
            yield from _template_refs(value, namespace)


def references(rollout: Mapping[str, Any]) -> set[Ref]:
    """The Services, Ingresses and analysis templates a Rollout's spec names."""
    namespace = str((rollout.get("metadata") or {}).get("namespace") or "")
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    refs: set[Ref] = set(_template_refs(strategy, namespace))
    canary = strategy.get("canary") or {}
    blue_green = strategy.get("blueGreen") or {}
    for field in (canary.get("canaryService"), canary.get("stableService"), blue_green.get("activeService"),
                  blue_green.get("previewService")):
        if isinstance(field, str) and field:
            refs.add(("Service", namespace, field))
    nginx = (canary.get("trafficRouting") or {}).get("nginx") or {}
    for ingress in [nginx.get("stableIngress"), *(nginx.get("stableIngresses") or [])]:
        if isinstance(ingress, str) and ingress:
            refs.add(("Ingress", namespace, ingress))
    return refs


class RolloutIndex:
    """Reverse index: object an analysis template / Service / Ingress -> the Rollouts naming it."""

    def __init__(self) -> None:
        self._refs: dict[Key, set[Ref]] = {}
        self._users: dict[Ref, set[Key]] = defaultdict(set)

    def update(self, rollout: Mapping[str, Any]) -> None:
        meta = rollout.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        self.remove(key)
        refs = references(rollout)
        self._refs[key] = refs
        for ref in refs:
            self._users[ref].add(key)

    def remove(self, key: Key) -> None:
        for ref in self._refs.pop(key, set()):
            users = self._users.get(ref)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._users[ref]

    def users(self, kind: str, namespace: str, name: str) -> set[Key]:
        return set(self._users.get((kind, namespace, name), ()))


# -- from a change to the keys it wakes -----------------------------------------------------------------

class Router:
    def __init__(self, cache: CachedStore, index: RolloutIndex) -> None:
        self.cache, self.index = cache, index

    def _owners(self, obj: Mapping[str, Any], kind: str) -> Iterator[dict[str, Any]]:
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if isinstance(ref, Mapping) and ref.get("kind") == kind and ref.get("name"):
                yield dict(ref)

    def _owning_rollouts(self, obj: Mapping[str, Any]) -> set[Key]:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "")
        return {(namespace, str(ref["name"])) for ref in self._owners(obj, "Rollout")}

    def keys(self, kind: str, obj: Mapping[str, Any]) -> tuple[set[Key], set[Key]]:
        """(rollout keys, analysis-run keys) a change of `obj` concerns."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        rollouts: set[Key] = set()
        runs: set[Key] = set()
        if kind == "Rollout":
            rollouts.add((namespace, name))
        elif kind in ("ReplicaSet", "AnalysisRun", "Ingress", "Service"):
            rollouts |= self._owning_rollouts(obj)
            if kind == "AnalysisRun":
                runs.add((namespace, name))
            if kind in ("Ingress", "Service"):
                rollouts |= self.index.users(kind, namespace, name)
        elif kind == "Pod":
            for ref in self._owners(obj, "ReplicaSet"):
                rs = self.cache.peek("ReplicaSet", namespace, str(ref["name"]))
                if rs is not None:
                    rollouts |= self._owning_rollouts(rs)
        elif kind == "Job":
            for ref in self._owners(obj, "AnalysisRun"):
                runs.add((namespace, str(ref["name"])))
        elif kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
            rollouts |= self.index.users(kind, namespace if kind == "AnalysisTemplate" else "", name)
        return rollouts, runs


# -- work-queue metrics, in client-go's / Argo's names ------------------------------------------------

# client-go's workqueue histogram buckets: 10 ns .. 10 s, by powers of ten.
BUCKETS: tuple[float, ...] = tuple(1e-8 * 10**i for i in range(10))


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1


class WorkQueueMetrics:
    """workqueue_depth, workqueue_adds_total, workqueue_retries_total, workqueue_queue_duration_seconds and
    workqueue_work_duration_seconds per queue `name`; `render()` is Prometheus text the metrics server
    appends (`MetricsServer.extra.append(metrics.render)`)."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueMetrics] = {}
        self._latency: dict[str, _Histogram] = {}
        self._work: dict[str, _Histogram] = {}

    def for_queue(self, name: str) -> QueueMetrics:
        if name not in self.queues:
            self._latency[name], self._work[name] = _Histogram(), _Histogram()
            self.queues[name] = QueueMetrics(on_latency=self._latency[name].observe,
                                             on_work_duration=self._work[name].observe)
        return self.queues[name]

    def render(self) -> bytes:
        lines: list[str] = []

        def family(metric: str, kind: str, help_text: str, values: Callable[[str], list[str]]) -> None:
            lines.append(f"# HELP {metric} {help_text}")
            lines.append(f"# TYPE {metric} {kind}")
            for name in sorted(self.queues):
                lines.extend(values(name))

        def histogram(metric: str, found: dict[str, _Histogram]) -> Callable[[str], list[str]]:
            def values(name: str) -> list[str]:
                h = found[name]
                out = [f'{metric}_bucket{{name="{name}",le="{bound:.0e}"}} {count}'
                       for bound, count in zip(BUCKETS, h.counts, strict=True)]
                out.append(f'{metric}_bucket{{name="{name}",le="+Inf"}} {h.total}')
                out.append(f'{metric}_sum{{name="{name}"}} {h.sum:.9f}')
                out.append(f'{metric}_count{{name="{name}"}} {h.total}')
                return out
            return values

        family("workqueue_depth", "gauge", "Current depth of workqueue",
               lambda n: [f'workqueue_depth{{name="{n}"}} {self.queues[n].depth}'])
        family("workqueue_adds_total", "counter", "Total number of adds handled by workqueue",
               lambda n: [f'workqueue_adds_total{{name="{n}"}} {self.queues[n].adds}'])
        family("workqueue_retries_total", "counter", "Total number of retries handled by workqueue",
               lambda n: [f'workqueue_retries_total{{name="{n}"}} {self.queues[n].retries}'])
        family("workqueue_queue_duration_seconds", "histogram",
               "How long in seconds an item stays in workqueue before being requested",
               histogram("workqueue_queue_duration_seconds", self._latency))
        family("workqueue_work_duration_seconds", "histogram",
               "How long in seconds processing an item from workqueue takes",
               histogram("workqueue_work_duration_seconds", self._work))
        return ("\n".join(lines) + "\n").encode()


# -- the operator ---------------------------------------------------------------------------------------

class Operator:
    def __init__(self, controller: Controller, cache: CachedStore, *, workers: int = 2,
                 elector: LeaderElector | None = None, metrics: WorkQueueMetrics | None = None,
                 resync: float = RESYNC_SECONDS, sync_timeout: float | None = None) -> None:
        self.controller, self.cache = controller, cache
        self.workers, self.elector, self.resync, self.sync_timeout = workers, elector, resync, sync_timeout
        self.metrics = metrics or WorkQueueMetrics()
        self.index = RolloutIndex()
        self.router = Router(cache, self.index)
        self.queues: dict[str, WorkQueue[Key]] = {}
        self.terms = 0  # how many times it started working (became leader)
        self.synced = asyncio.Event()

    @property
    def working(self) -> bool:
        return bool(self.queues) and (self.elector is None or self.elector.is_leader)

    # -- changes -> keys ---------------------------------------------------------------------------------

    def _on_change(self, kind: str, event: ChangeType, obj: dict[str, Any]) -> None:
        if kind == "Rollout":
            meta = obj.get("metadata") or {}
            if event == "DELETED":
                self.index.remove((str(meta.get("namespace") or ""), str(meta.get("name") or "")))
            else:
                self.index.update(obj)
        if not self.queues:
            return  # not leading: everything is queued when it starts to
        rollouts, runs = self.router.keys(kind, obj)
        for key in rollouts:
            self.queues[ROLLOUTS].add(key)
        for key in runs:
            self.queues[ANALYSIS_RUNS].add(key)

    def _enqueue_all(self) -> None:
        for name, kind in ((ROLLOUTS, "Rollout"), (ANALYSIS_RUNS, "AnalysisRun")):
            queue = self.queues.get(name)
            if queue is None:
                continue
            for obj in self.cache.cached(kind):
                meta = obj.get("metadata") or {}
                queue.add((str(meta.get("namespace") or ""), str(meta.get("name") or "")))

    # -- keys -> the controller --------------------------------------------------------------------------

    def _handler(self, kind: str, method: Callable[[dict[str, Any]], float | None]
                 ) -> Callable[[Key], Awaitable[float | None]]:
        async def handle(key: Key) -> float | None:
            await asyncio.sleep(0)  # let the informers, the elector and the stop signal in between keys
            if not self.working:
                return None  # the lease was lost while this key waited
            # Re-read from the API first if a write of it went unanswered (raising, so retried with backoff,
            # while the API is away): a decision retaken from the state that write replaced acts twice.
            obj = self.cache.confirmed(kind, *key)
            if obj is None:
                return None  # deleted since it was queued
            return method(obj)
        return handle

    async def _heartbeat(self) -> None:
        # /healthz reads `last_pass`: an idle operator whose loop still turns is alive.
        while True:
            self.controller.last_pass = self.controller.clock.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            self._enqueue_all()

    async def _work(self, stop: asyncio.Event, lost: asyncio.Task[None] | None) -> None:
        """Run the queues until stopped or the lease is lost; in-flight keys finish before it returns."""
        self.queues = {
            name: WorkQueue(ExponentialBackoff(BACKOFF_BASE, BACKOFF_CAP), self.metrics.for_queue(name))
            for name in (ROLLOUTS, ANALYSIS_RUNS)
        }
        self.terms += 1
        self._enqueue_all()
        workers = asyncio.gather(
            self.queues[ROLLOUTS].run(self._handler("Rollout", self.controller.reconcile_rollout), self.workers),
            self.queues[ANALYSIS_RUNS].run(self._handler("AnalysisRun", self.controller.step_analysis_run),
                                          self.workers))
        resync = asyncio.ensure_future(self._resync())
        stopped = asyncio.ensure_future(stop.wait())
        waiting: set[asyncio.Future[Any]] = {stopped, workers, resync}
        if lost is not None:
            waiting.add(lost)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            queues, self.queues = self.queues, {}
            for queue in queues.values():
                await queue.shutdown(drain=False)  # queued keys are dropped; in-flight ones finish
            began = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(asyncio.shield(workers), SHUTDOWN_SECONDS)
            except TimeoutError:
                log.warning("in-flight keys did not finish in %.0fs: cancelled", SHUTDOWN_SECONDS)
                workers.cancel()
                await asyncio.gather(workers, return_exceptions=True)
            log.info("work stopped: in-flight keys finished in %.1fs", asyncio.get_running_loop().time() - began)
            resync.cancel()
            stopped.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        unsubscribe = self.cache.subscribe(self._on_change)
        heartbeat = asyncio.ensure_future(self._heartbeat())
        try:
            await self.cache.start()
            synced = asyncio.ensure_future(self.cache.wait_synced(self.sync_timeout))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not synced.done():
                synced.cancel()
                return
            synced.result()
            self.synced.set()
            for obj in self.cache.cached("Rollout"):
                self.index.update(obj)
            while not stop.is_set():
                lost: asyncio.Task[None] | None = None
                if self.elector is not None:
                    self.elector.may_acquire.set()  # synced: it may take the Lease now
                    lost = self.elector.start()
                    leading = asyncio.ensure_future(self.elector.leading.wait())
                    stopped = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({leading, stopped, lost}, return_when=asyncio.FIRST_COMPLETED)
                    leading.cancel()
                    stopped.cancel()
                    if not self.elector.is_leader:
                        if stop.is_set():
                            break
                        continue  # the campaign ended without leading (it only does when cancelled)
                    log.info("leading", extra={"fields": {"identity": self.elector.identity}})
                await self._work(stop, lost)
                if lost is not None and lost.done() and not stop.is_set():
                    log.warning("leadership lost: stopped working, campaigning again",
                                extra={"fields": {"identity": self.elector.identity if self.elector else ""}})
                    continue
                break
        finally:
            unsubscribe()
            heartbeat.cancel()
            if self.elector is not None:
                await self.elector.stop(release=True)  # workers are done: another replica may start now
            try:
                await asyncio.wait_for(self.controller.executor.close(), SHUTDOWN_SECONDS)
            except TimeoutError:
                log.warning("in-flight measurements did not stop in %.0fs", SHUTDOWN_SECONDS)


async def run_operator(controller: Controller, cache: CachedStore, stop: asyncio.Event, *, workers: int = 2,
                       elector: LeaderElector | None = None, metrics: WorkQueueMetrics | None = None,
                       resync: float = RESYNC_SECONDS) -> None:
    """Run `controller` over `cache` event-driven until `stop` is set (see the module docstring).

    The cache's informers are started here; the caller closes the cache (`await cache.aclose()`)."""
    await Operator(controller, cache, workers=workers, elector=elector, metrics=metrics, resync=resync).run(stop)
