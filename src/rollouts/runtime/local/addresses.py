"""Loopback addresses of the local cluster: every pod gets one of its own from 127.1.0.0/16 and every Service
a cluster IP from 127.2.0.0/16, as a CNI plugin and the Service IP allocator would hand them out. The whole
127.0.0.0/8 block is local on Linux, so these addresses need no set-up on the host.

An `AddressPool` hands out the next free address of its network after the last one it gave (never the
network's first or last address, never 127.0.0.1) and takes back released ones. Addresses already recorded in the store (a
re-adopted pod's `status.podIP`, a Service's `spec.clusterIP`) are reserved first so nothing else gets them.
Not thread-safe: one pool belongs to one event loop.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable

POD_NETWORK = "127.1.0.0/16"
SERVICE_NETWORK = "127.2.0.0/16"


class AddressesExhausted(RuntimeError):
    """Every address of a pool is taken."""


class AddressPool:
    """Unique addresses from one network."""

    def __init__(self, network: str, *, start: int | None = None) -> None:
        """`start`: the offset in the network of the first address to try; by default a random one, so two
        local clusters on one host (two homes) seldom try the same addresses."""
        self.network = ipaddress.IPv4Network(network)
        self._taken: set[int] = set()
        usable = self.network.num_addresses - 2
        offset = secrets.randbelow(usable) if start is None else (start - 1) % usable
        self._next = int(self.network.network_address) + 1 + offset

    def __contains__(self, address: object) -> bool:
        try:
            return ipaddress.IPv4Address(str(address)) in self.network
        except ValueError:
            return False

    def taken(self) -> set[str]:
        return {str(ipaddress.IPv4Address(value)) for value in self._taken}

    def reserve(self, address: str) -> bool:
        """Mark a recorded address as used; False when it is outside the network or already taken."""
        if address not in self:
            return False
        value = int(ipaddress.IPv4Address(address))
        if value in self._taken:
            return False
        self._taken.add(value)
        return True

    def allocate(self) -> str:
        first = int(self.network.network_address) + 1
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        # Scan from where the last allocation stopped, so a just-released address is not handed out again
        # at once (a client still holding it would reach the wrong pod).
        for offset in range(size):
            value = first + (self._next - first + offset) % size
            if value not in self._taken and ipaddress.IPv4Address(value) != ipaddress.IPv4Address("127.0.0.1"):
                self._taken.add(value)
                self._next = value + 1 if value < last else first
                return str(ipaddress.IPv4Address(value))
        raise AddressesExhausted(f"every address of {self.network} is in use")

    def release(self, address: str | None) -> None:
        if address is None or address not in self:
            return
        self._taken.discard(int(ipaddress.IPv4Address(address)))


# Written on a Service by the runtime: its ports that answer on spec.clusterIP ("80,443"), so a client (the
# cluster DNS of kube/dns.py) connects there only when a listener is up.
CLUSTER_PORTS_ANNOTATION = "rollouts.io/cluster-ip-ports"


class ServiceAddresses:
    """Cluster IPs of Services: a recorded `spec.clusterIP` is kept (and reserved), a Service without one
    gets the address it had before in this process (a re-applied manifest omits it) or a new one."""

    def __init__(self, pool: AddressPool | None = None) -> None:
        self.pool = pool or AddressPool(SERVICE_NETWORK)
        self._by_key: dict[str, str] = {}

    def cluster_ip(self, key: str, spec: dict[str, object], bindable: Callable[[str], bool]) -> tuple[str | None, bool]:
        """(address to listen on or None, whether it is newly assigned and must be written to spec.clusterIP).
        None for a headless Service (`clusterIP: None`), an ExternalName one, or an address that is not
        local to this host (a manifest written for another cluster's Service range)."""
        if spec.get("type") == "ExternalName":
            return None, False
        raw = spec.get("clusterIP")
        if raw == "None":
            return None, False
        if isinstance(raw, str) and raw:
            try:
                address = ipaddress.IPv4Address(raw)
            except ValueError:
                return None, False
            if not address.is_loopback:
                return None, False
            if self._by_key.get(key) != raw:
                self.release(key)
                self.pool.reserve(raw)
                self._by_key[key] = raw
            return raw, False
        known = self._by_key.get(key)
        if known is not None:
            return known, True
        tried: list[str] = []
        try:
            for _ in range(64):
                candidate = self.pool.allocate()
                if bindable(candidate):
                    self._by_key[key] = candidate
                    return candidate, True
                tried.append(candidate)  # another local cluster on this host listens there
        finally:
            for other in tried:
                self.pool.release(other)
        return None, False

    def release(self, key: str) -> None:
        self.pool.release(self._by_key.pop(key, None))

    def services(self) -> list[str]:
        return list(self._by_key)
