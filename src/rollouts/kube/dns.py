"""Cluster DNS for our own clients: the names a manifest uses for a Service, mapped to the local cluster's
listener of that Service, so `http://prometheus.prometheus.svc:9090` in an AnalysisTemplate reaches the
local Prometheus without any change on the host (no /etc/hosts edit, no DNS server).

Names resolved, as a pod's resolver would (case-insensitive, a trailing dot allowed):
- `<svc>.<ns>.svc.cluster.local` and `<svc>.<ns>.svc`: the Service must exist, else the lookup fails with a
  message naming it (no host could resolve such a name anyway);
- `<svc>` (one label): a Service of that name in the caller's namespace, else the name is left to the host's
  own resolver (`localhost`, a host in /etc/hosts).
`<svc>.<ns>` (the search-path form) is not resolved: any dotted host name would cost an API read.

The address connected to is the Service's cluster IP and the URL's port (`spec.clusterIP`, 127.2.x.y) when
the runtime listens there (the port is in its `rollouts.io/cluster-ip-ports` annotation), as a pod's
connection to a Service's ClusterIP would go; otherwise the host-port listener, the Service's
`rollouts.io/port` annotation on 127.0.0.1 (one HTTP listener per Service that serves every Service port).
The URL's port (default 80, 443 for https) must be one of the Service's `spec.ports[].port`. The
listeners speak plain HTTP, so an https URL is sent as http to them; the Host header
keeps the name the URL gave. Services are read through an ObjectStore (a KubeStore in the operator) and kept
for `ttl` seconds.

The operator installs a resolver with `set_resolver(ClusterResolver(store))` when it runs against the local
cluster; the prometheus and web providers call `resolve_url`, which leaves every URL unchanged while none
is installed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from rollouts.store.protocol import NotFound, ObjectStore

PORT_ANNOTATION = "rollouts.io/port"
CLUSTER_PORTS_ANNOTATION = "rollouts.io/cluster-ip-ports"
LISTENER_HOST = "127.0.0.1"
CLUSTER_DOMAIN = "cluster.local"
DEFAULT_TTL_SECONDS = 2.0


class ResolveError(LookupError):
    """A cluster name whose Service is missing, has no local listener, or lacks the port asked for."""


@dataclass(frozen=True)
class Resolved:
    url: str
    host: str | None = None  # the Host header to send (the name the URL gave); None when the URL is unchanged


@dataclass(frozen=True)
class _Entry:
    found: bool
    listener: int | None
    ports: tuple[int, ...]
    at: float
    cluster_ip: str | None = None
    cluster_ports: tuple[int, ...] = ()  # the ports that answer on cluster_ip


def cluster_name(host: str) -> tuple[str, str | None, bool] | None:
    """(service, namespace or None for the caller's, must exist) when `host` is a cluster Service name."""
    name = host.lower().rstrip(".")
    if not name:
        return None
    labels = name.split(".")
    if labels[-2:] == CLUSTER_DOMAIN.split("."):
        labels = labels[:-2]
        if len(labels) != 3 or labels[2] != "svc":
            return None
    if len(labels) == 3 and labels[2] == "svc" and all(labels[:2]):
        return labels[0], labels[1], True
    if len(labels) == 1 and name != "localhost" and not _is_ip(name):
        return name, None, False
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return text.isdigit()  # "2130706433" is an address to the C resolver
    return True


class ClusterResolver:
    """Maps cluster Service names in URLs to the local cluster's Service listeners. Thread-safe."""

    def __init__(self, store: ObjectStore, *, ttl: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], _Entry] = {}

    def resolve(self, url: str, namespace: str) -> Resolved:
        """The URL to connect to for `url` as a client in `namespace` would mean it."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        named = cluster_name(host)
        if named is None:
            return Resolved(url)
        service, service_namespace, must_exist = named
        namespace = service_namespace or namespace
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ResolveError(f"{url}: {exc}") from None
        entry = self._lookup(namespace, service)
        if not entry.found:
            if not must_exist:
                return Resolved(url)
            raise ResolveError(f'{host} names Service "{service}" in namespace "{namespace}", which the cluster '
                               "does not have: apply it, or give the address of a server outside the cluster")
        if entry.ports and port not in entry.ports:
            raise ResolveError(f"{host}:{port}: Service {namespace}/{service} has no port {port} "
                               f"(spec.ports[].port: {', '.join(map(str, entry.ports))})")
        if entry.cluster_ip is not None and port in entry.cluster_ports:
            return Resolved(_with_address(parts, entry.cluster_ip, port), host=parts.netloc.rpartition("@")[2])
        if entry.listener is None:
            raise ResolveError(f"Service {namespace}/{service} has no local listener yet "
                               f"(metadata.annotations.{PORT_ANNOTATION} is not set): is the local cluster "
                               "running with its runtime (`rollouts cluster up`)?")
        return Resolved(_with_listener(parts, entry.listener), host=parts.netloc.rpartition("@")[2])

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def _lookup(self, namespace: str, service: str) -> _Entry:
        key = (namespace, service)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached.at < self._ttl:
            return cached
        try:
            obj: dict[str, Any] | None = self._store.get("Service", namespace, service)
        except NotFound:
            obj = None
        except Exception as exc:  # the API unreachable, forbidden...: a measurement error, not a crash
            raise ResolveError(f"cannot read Service {namespace}/{service} from the cluster: {exc}") from exc
        entry = _Entry(found=False, listener=None, ports=(), at=now) if obj is None else _entry(obj, now)
        with self._lock:
            self._cache[key] = entry
        return entry


def _entry(service: dict[str, Any], now: float) -> _Entry:
    raw = ((service.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    try:
        listener: int | None = int(raw) if raw else None
    except ValueError:
        listener = None
    if listener is not None and not 0 < listener < 65536:
        listener = None
    spec = service.get("spec") or {}
    ports = tuple(int(p["port"]) for p in spec.get("ports") or []
                  if isinstance(p, dict) and isinstance(p.get("port"), int))
    raw_ip = spec.get("clusterIP")
    cluster_ip = raw_ip if isinstance(raw_ip, str) and _is_loopback(raw_ip) else None
    listening = ((service.get("metadata") or {}).get("annotations") or {}).get(CLUSTER_PORTS_ANNOTATION) or ""
    cluster_ports = tuple(int(p) for p in str(listening).split(",") if p.strip().isdigit())
    return _Entry(found=True, listener=listener, ports=ports, at=now, cluster_ip=cluster_ip,
                  cluster_ports=cluster_ports)


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def _with_listener(parts: SplitResult, listener: int) -> str:
    return _with_address(parts, LISTENER_HOST, listener)


def _with_address(parts: SplitResult, host: str, port: int) -> str:
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    # The listeners speak plain HTTP (see the module docstring).
    return urlunsplit(("http", netloc, parts.path, parts.query, parts.fragment))


_installed: ClusterResolver | None = None


def set_resolver(resolver: ClusterResolver | None) -> None:
    """Install (or, with None, remove) the resolver the providers use for every URL they connect to."""
    global _installed
    _installed = resolver


def current_resolver() -> ClusterResolver | None:
    return _installed


async def resolve_url(url: str, namespace: str) -> Resolved:
    """`url` mapped by the installed resolver (unchanged without one, or for a host that is not a cluster
    name); the Service is read in a thread, as the store's client blocks. Raises ResolveError."""
    resolver = _installed
    if resolver is None:
        return Resolved(url)
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return Resolved(url)  # the provider's HTTP client reports a malformed URL itself
    if cluster_name(host) is None:
        return Resolved(url)
    return await asyncio.to_thread(resolver.resolve, url, namespace)
