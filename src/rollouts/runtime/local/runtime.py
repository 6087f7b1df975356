"""The local runtime as one object the controller drives: pods as processes, a listener per Service,
the ingress proxy, and the traffic counters the `rollouts/traffic` provider reads.

Each `sync()` makes the processes and listeners match the objects in the store; the store stays the
only source of truth, so a restarted controller rebuilds all of it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollouts.analysis.providers.run_target import store_run_target
from rollouts.analysis.providers.sequential import register_sequential_plugin
from rollouts.analysis.providers.traffic import register_traffic_plugin
from rollouts.analysis.sequential.release_start import store_release_start
from rollouts.runtime.local.dataplane import DataPlaneLoop, ThreadedIngressProxy, ThreadedServiceBalancer
from rollouts.runtime.local.endpoints import EndpointsSync
from rollouts.runtime.local.images import ImageResolver
from rollouts.runtime.local.jobs import JobController
from rollouts.runtime.local.lists import KindLists
from rollouts.runtime.local.pods import DEFAULT_MAX_PODS, POD_HASH_LABEL, PodSync
from rollouts.runtime.local.routing import PORT_ANNOTATION
from rollouts.runtime.local.services import Endpoint, TrafficIdentity
from rollouts.runtime.local.supervisor import PodState, PodSupervisor
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.store.protocol import NotFound, ObjectStore

log = logging.getLogger(__name__)


class LocalRuntime:
    def __init__(self, store: ObjectStore, home: Path, *, images: Path | None = None,
                 probe_period: float = 1.0, on_change: Callable[[], None] | None = None,
                 metrics_port: int | None = None, max_pods: int = DEFAULT_MAX_PODS, detached: bool = False) -> None:
        """`detached`: pods outlive this process and are re-adopted by the next one (the local cluster);
        otherwise they die with it and a new runtime starts from no pods (the controller-hosted runtime)."""
        self.store = store
        self.detached = detached
        self.home = home
        self.logs_dir = home / "logs"
        self.stats = TrafficStats()
        self._on_change = on_change
        self.supervisor = PodSupervisor(self.logs_dir, images=ImageResolver(images), probe_period=probe_period,
                                        on_change=self._pod_changed, detached=detached)
        self.lists = KindLists(store)  # the local cluster's feed follower tells it what changed
        self.pods = PodSync(store, self.supervisor, max_pods=max_pods, lists=self.lists)
        # The local cluster keeps core/v1 Endpoints (kubectl get endpoints); the controller-hosted runtime
        # leaves them to the CLI's derived view.
        self.endpoints = EndpointsSync(store) if detached else None
        self.jobs = JobController(store, home, images=self.supervisor.images) if detached else None  # batch/v1 Jobs
        # The proxy and the Service listeners serve on their own loop: a store call blocked on SQLite's
        # lock (another process writing) must not hold up requests.
        self.data_plane = DataPlaneLoop()
        self.balancer = ThreadedServiceBalancer(self.data_plane, stats=self.stats, on_port=self._service_port)
        self.proxy = ThreadedIngressProxy(self.data_plane, self.balancer, stats=self.stats,
                                          access_log=self.logs_dir / "ingress.log", metrics_port=metrics_port,
                                          on_port=self._ingress_port)
        self._ingress_digest = ""

    def _pod_changed(self, state: PodState) -> None:
        if self._on_change is not None:
            self._on_change()

    def _annotate_port(self, kind: str, key: str, port: int) -> None:
        namespace, _, name = key.partition("/")
        try:
            obj = self.store.get(kind, namespace, name)
        except NotFound:
            return
        if (obj["metadata"].get("annotations") or {}).get(PORT_ANNOTATION) != str(port):
            self.store.patch(kind, namespace, name, {"metadata": {"annotations": {PORT_ANNOTATION: str(port)}}})

    def _service_port(self, key: str, port: int) -> None:
        self._annotate_port("Service", key, port)

    def _ingress_port(self, key: str, port: int) -> None:
        self._annotate_port("Ingress", key, port)

    async def start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.detached:
            await self.pods.adopt_recorded_pods()
            if self.endpoints is not None:
                self.endpoints.forget_orphans(self.store.list("Service"))
        else:
            self.pods.forget_stale_pods()
        # Gates without `service` read the owning rollout's service and count only its revision's pods.
        target = store_run_target(self.store.get)
        register_traffic_plugin(self.stats, run_target=target)
        register_sequential_plugin(self.stats, run_target=target, stored_start=store_release_start(self.store.list))
        await self.balancer.start()
        await self.proxy.start()
        if self.jobs is not None:
            await self.jobs.start()

    async def sync(self) -> None:
        await self.pods.sync()
        await self._sync_services()
        await self._sync_ingresses()

    async def _sync_services(self) -> None:
        services = self.lists.list("Service")
        wanted = set()
        ready = [p for p in self.supervisor.pods() if p.ready and not p.terminating]
        for svc in services:
            meta = svc["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            wanted.add(key)
            try:
                await self.balancer.ensure_service(svc)
            except (OSError, ValueError) as exc:
                log.warning("Service %s: cannot listen: %s", key, exc)
                continue
            selector = (svc.get("spec") or {}).get("selector") or {}
            endpoints = [
                Endpoint(host="127.0.0.1", port=p.port, pod=p.name, pod_hash=p.labels.get(POD_HASH_LABEL, ""))
                for p in ready
                if p.namespace == meta["namespace"] and selector
                and all(p.labels.get(k) == v for k, v in selector.items())
            ]
            self.balancer.set_endpoints(key, endpoints)
            role = _blue_green_role(svc)
            if role:
                self.balancer.set_traffic_identity(key, TrafficIdentity(namespace=meta["namespace"],
                                                                        service=role[0], version=role[1]))
        for key in [k for k in self.balancer.ports if k not in wanted]:
            await self.balancer.remove_service(key)
        if self.endpoints is not None:
            self.endpoints.sync(services, self.supervisor.pods())

    async def _sync_ingresses(self) -> None:
        ingresses = self.lists.list("Ingress")
        digest = json.dumps([[i["metadata"].get("resourceVersion"), i["metadata"]["name"]] for i in ingresses])
        if digest == self._ingress_digest:
            return
        table = await self.proxy.update_ingresses(ingresses)
        for problem in table.problems:
            log.warning("ingress: %s", problem)
        self._ingress_digest = digest

    async def close(self) -> None:
        await self.proxy.close()
        await self.balancer.close()
        self.data_plane.stop()
        if self.jobs is not None:
            await self.jobs.close()
        await self.supervisor.close(grace_seconds=5.0)

    def render_metrics(self) -> bytes:
        return self.proxy.render_metrics()


def _blue_green_role(svc: dict[str, Any]) -> tuple[str, str] | None:
    """Direct traffic to a blue/green Service counts as that role (`<name>-preview` -> preview)."""
    name = svc["metadata"]["name"]
    for suffix in ("preview", "active"):
        if name.endswith(f"-{suffix}"):
            return name[: -len(suffix) - 1], suffix
    return None
