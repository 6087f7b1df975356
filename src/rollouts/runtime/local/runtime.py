"""The local runtime as one object the controller drives: pods as processes, a listener per Service,
the ingress proxy, and the traffic counters the `rollouts/traffic` provider reads.

Each `sync()` makes the processes and listeners match the objects in the store; the store stays the
only source of truth, so a restarted controller rebuilds all of it. Once `follow_ingresses()` is called
(the local cluster does), Ingress changes reach the proxy through their own feed (ingress_feed.py) rather
than through `sync()`, so a weight change never waits behind the pods' work."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollouts.analysis.providers.run_target import store_run_target
from rollouts.analysis.providers.sequential import register_sequential_plugin
from rollouts.analysis.providers.traffic import register_traffic_plugin
from rollouts.analysis.sequential.release_start import store_release_start
from rollouts.runtime.local.addresses import CLUSTER_PORTS_ANNOTATION, ServiceAddresses
from rollouts.runtime.local.dataplane import DataPlaneLoop, ThreadedIngressProxy, ThreadedServiceBalancer
from rollouts.runtime.local.endpoints import EndpointsSync, target_ports
from rollouts.runtime.local.images import ImageResolver
from rollouts.runtime.local.ingress_feed import IngressFeed
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
                                        on_change=self._pod_changed, detached=detached,
                                        owner=str(home.resolve()) if detached else None)
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
        self.ingress_feed: IngressFeed | None = None
        self.service_addresses = ServiceAddresses()
        self._cluster_warned: dict[str, str] = {}  # Service key -> the listen problem last reported

    def _pod_changed(self, state: PodState) -> None:
        # The Services' listeners learn a pod's readiness the moment it changes, before any pass writes it to
        # the store: the operator acts on the stored Ready (it raises the canary's weight), and with the
        # ingress feed that weight reaches the proxy at once, so the canary Service must already send to it.
        try:
            self._refresh_endpoints(state.namespace)
        except Exception:  # the next pass sets them anyway
            log.exception("pod %s: updating its Services' endpoints failed", state.name)
        if self._on_change is not None:
            self._on_change()

    def _ready_endpoints(self, svc: dict[str, Any]) -> list[Endpoint]:
        """The Service's endpoints from the pods' readiness as it is now."""
        namespace = svc["metadata"]["namespace"]
        selector = (svc.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return [_endpoint(svc, p) for p in self.supervisor.pods(namespace, selector) if p.ready and not p.terminating]

    def _refresh_endpoints(self, namespace: str) -> None:
        for svc in self.lists.list("Service"):
            meta = svc["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            if meta["namespace"] == namespace and key in self.balancer.ports:
                self.balancer.set_endpoints(key, self._ready_endpoints(svc))

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

    def follow_ingresses(self) -> IngressFeed:
        """From now on apply Ingress changes from the store's change feed, on a thread of their own, as they
        are written; `sync()` then leaves the proxy's routes to it. Call after `start()`."""
        if self.ingress_feed is None:
            self.ingress_feed = IngressFeed(self.store, self.proxy.update_ingresses_from_thread)
        self.ingress_feed.start()
        return self.ingress_feed

    async def sync(self) -> None:
        await self.pods.sync()
        await self._sync_services()
        if self.ingress_feed is None:
            await self._sync_ingresses()

    async def _sync_services(self) -> None:
        services = self.lists.list("Service")
        wanted = set()
        for svc in services:
            meta = svc["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            wanted.add(key)
            try:
                await self.balancer.ensure_service(svc)
            except (OSError, ValueError) as exc:
                log.warning("Service %s: cannot listen: %s", key, exc)
                continue
            await self._sync_cluster_ip(svc, key)
            # Readiness read now, after the awaits above: a snapshot from before them could undo what
            # `_pod_changed` set meanwhile.
            self.balancer.set_endpoints(key, self._ready_endpoints(svc))
            role = _blue_green_role(svc)
            if role:
                self.balancer.set_traffic_identity(key, TrafficIdentity(namespace=meta["namespace"],
                                                                        service=role[0], version=role[1]))
        for key in [k for k in self.balancer.ports if k not in wanted]:
            await self.balancer.remove_service(key)
        for key in [k for k in self.service_addresses.services() if k not in wanted]:
            self.service_addresses.release(key)
            self._cluster_warned.pop(key, None)
        if self.endpoints is not None:
            self.endpoints.sync(services, self.supervisor.pods())

    async def _sync_cluster_ip(self, svc: dict[str, Any], key: str) -> None:
        """Give the Service a cluster IP (spec.clusterIP) and listen there on each of its ports; what cannot
        be listened on is a Warning event on the Service (the host-port listener still serves it)."""
        meta, spec = svc["metadata"], svc.get("spec") or {}
        ports = [int(p["port"]) for p in spec.get("ports") or [] if isinstance(p.get("port"), int)]
        ip, assigned = self.service_addresses.cluster_ip(key, spec, lambda ip: all(_bindable(ip, p) for p in ports))
        if assigned and ip is not None:
            try:
                self.store.patch("Service", meta["namespace"], meta["name"],
                                 {"spec": {"clusterIP": ip, "clusterIPs": [ip]}})
            except NotFound:
                return
        problems = await self.balancer.ensure_cluster_ip(key, ip, ports)
        listening = ",".join(str(port) for _, port in self.balancer.cluster_addresses(key))
        if (meta.get("annotations") or {}).get(CLUSTER_PORTS_ANNOTATION, "") != listening:
            try:
                self.store.patch("Service", meta["namespace"], meta["name"],
                                 {"metadata": {"annotations": {CLUSTER_PORTS_ANNOTATION: listening or None}}})
            except NotFound:
                return
        message = "; ".join(problems)
        if message and self._cluster_warned.get(key) != message:
            text = (f"Service {key}: not listening on its cluster IP: {message}; it is still served on "
                    f"127.0.0.1 at its {PORT_ANNOTATION} port")
            log.warning(text)
            try:
                self.store.record_event({"kind": "Service", "namespace": meta["namespace"], "name": meta["name"],
                                         "uid": meta.get("uid", ""), "apiVersion": "v1"},
                                        "Warning", "ClusterIPNotListening", text, source="rollouts-local-runtime")
            except Exception:  # an event is best effort
                log.exception("cannot record the event for Service %s", key)
        self._cluster_warned[key] = message

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
        if self.ingress_feed is not None:
            # Off the loop: the feed's thread may be waiting on the data plane, which this loop does not run.
            await asyncio.to_thread(self.ingress_feed.stop)
        await self.proxy.close()
        await self.balancer.close()
        self.data_plane.stop()
        if self.jobs is not None:
            await self.jobs.close()
        await self.supervisor.close(grace_seconds=5.0)

    def render_metrics(self) -> bytes:
        return self.proxy.render_metrics()


def _bindable(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError as exc:
            # EACCES (a port below 1024 without the right): the address is free, the listener will say why.
            return exc.errno == errno.EACCES
        return True


def _endpoint(svc: dict[str, Any], pod: PodState) -> Endpoint:
    """A ready pod as the Service's listeners reach it: its own address, the first Service port's target port
    for the host-port listener, and each Service port's target port for the cluster-IP listeners."""
    ports = target_ports(svc, pod)
    declared = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
    targets = tuple((int(port), int(target["port"])) for port, target in zip(declared, ports, strict=False)
                    if isinstance(port, int))
    return Endpoint(host=pod.ip, port=int(ports[0]["port"]), pod=pod.name,
                    pod_hash=pod.labels.get(POD_HASH_LABEL, ""), targets=targets)


def _blue_green_role(svc: dict[str, Any]) -> tuple[str, str] | None:
    """Direct traffic to a blue/green Service counts as that role (`<name>-preview` -> preview)."""
    name = svc["metadata"]["name"]
    for suffix in ("preview", "active"):
        if name.endswith(f"-{suffix}"):
            return name[: -len(suffix) - 1], suffix
    return None
