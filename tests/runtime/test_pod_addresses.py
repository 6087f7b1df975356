"""Pods and Services with addresses of their own: each local pod gets a loopback address from 127.1.0.0/16
(status.podIP) and listens there on the containerPort its manifest declares; each Service gets a cluster IP
from 127.2.0.0/16 (spec.clusterIP) with a listener per Service port; Endpoints list the pods' own addresses
and the resolved targetPort. Real pods (the demo service), a real SQLite store, real HTTP."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.addresses import (
    CLUSTER_PORTS_ANNOTATION,
    AddressesExhausted,
    AddressPool,
    ServiceAddresses,
)
from rollouts.runtime.local.runtime import LocalRuntime

POD_NETWORK = ipaddress.IPv4Network("127.1.0.0/16")
SERVICE_NETWORK = ipaddress.IPv4Network("127.2.0.0/16")
CONTAINER_PORT = 8080


def service(name: str = "shop", cluster_ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name},
                            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def replica_set(name: str = "shop", replicas: int = 2) -> dict[str, Any]:
    container = {"name": "app", "image": "rollouts-demo:blue",
                 "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}]}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{name}-abc", "namespace": "default",
                         "labels": {"app": name, "rollouts-pod-template-hash": "abc"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name},
                                               "annotations": {"prometheus.io/scrape": "true"}},
                                  "spec": {"containers": [container]}}}}


async def sync_until(runtime: LocalRuntime, what: str, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await runtime.sync()
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def ready_endpoints(store: SQLiteStore, count: int) -> Callable[[], bool]:
    def done() -> bool:
        try:
            subsets = store.get("Endpoints", "default", "shop")["subsets"]
        except Exception:  # noqa: BLE001 (not written yet)
            return False
        return sum(len(s.get("addresses") or []) for s in subsets) == count
    return done


def in_network(address: str, network: ipaddress.IPv4Network) -> bool:
    return ipaddress.IPv4Address(address) in network


def test_two_pods_of_one_replica_set_with_the_same_container_port_serve_on_their_own_addresses(
        tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    store.create(service())
    store.create(replica_set())

    async def scenario() -> None:
        runtime = LocalRuntime(store, tmp_path, probe_period=0.1, detached=True)
        await runtime.start()
        try:
            await sync_until(runtime, "two ready endpoints", ready_endpoints(store, 2))
            await sync_until(runtime, "the cluster IP listener", lambda: (store.get("Service", "default", "shop")[
                "metadata"].get("annotations") or {}).get(CLUSTER_PORTS_ANNOTATION) == "80")
            pods = sorted(store.list("Pod", "default"), key=lambda p: p["metadata"]["name"])
            ips = [p["status"]["podIP"] for p in pods]
            assert len(set(ips)) == 2 and all(in_network(ip, POD_NETWORK) for ip in ips), ips
            assert [p["status"]["podIPs"] for p in pods] == [[{"ip": ip}] for ip in ips]
            assert [p["metadata"]["annotations"]["rollouts.io/port"] for p in pods] == [str(CONTAINER_PORT)] * 2
            assert [p["spec"]["containers"][0]["ports"] for p in pods] == [
                [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}]] * 2
            # The template's annotations are the pod's (Prometheus' pod discovery reads them).
            assert all(p["metadata"]["annotations"]["prometheus.io/scrape"] == "true" for p in pods)
            async with httpx.AsyncClient(timeout=5) as client:
                for ip in ips:  # the same containerPort, each pod on its own address
                    assert (await client.get(f"http://{ip}:{CONTAINER_PORT}/")).json()["color"] == "blue"

                endpoints = store.get("Endpoints", "default", "shop")
                assert endpoints["subsets"] == [{
                    "addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "namespace": "default",
                                                           "name": p["metadata"]["name"]}}
                                  for ip, p in zip(ips, pods, strict=True)],
                    "ports": [{"name": "http", "port": CONTAINER_PORT, "protocol": "TCP"}]}]

                svc = store.get("Service", "default", "shop")
                cluster_ip = svc["spec"]["clusterIP"]
                assert in_network(cluster_ip, SERVICE_NETWORK) and svc["spec"]["clusterIPs"] == [cluster_ip]
                answered = [(await client.get(f"http://{cluster_ip}:80/")).status_code for _ in range(4)]
                assert answered == [200] * 4
                host_port = int(svc["metadata"]["annotations"]["rollouts.io/port"])  # still served, for the CLI
                assert (await client.get(f"http://127.0.0.1:{host_port}/")).status_code == 200
        finally:
            await runtime.close()

    asyncio.run(scenario())


def test_cluster_ip_that_cannot_be_listened_on_is_a_warning_event_and_the_host_port_still_serves(
        tmp_path: Path) -> None:
    taken = "127.2.254.9"
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind((taken, 80))
    except OSError as exc:
        blocker.close()
        pytest.skip(f"cannot hold {taken}:80 for the test: {exc}")
    blocker.listen()
    store = SQLiteStore(tmp_path / "state.db")
    store.create(service(cluster_ip=taken))
    store.create(replica_set(replicas=1))

    async def scenario() -> None:
        runtime = LocalRuntime(store, tmp_path, probe_period=0.1, detached=True)
        await runtime.start()
        try:
            await sync_until(runtime, "one ready endpoint", ready_endpoints(store, 1))
            events = [e for e in store.list("Event", "default") if e.get("reason") == "ClusterIPNotListening"]
            assert len(events) == 1, events
            assert f"{taken}:80" in events[0]["message"] and "spec.clusterIP" in events[0]["message"]
            svc = store.get("Service", "default", "shop")
            assert svc["spec"]["clusterIP"] == taken  # an address given is kept
            assert CLUSTER_PORTS_ANNOTATION not in (svc["metadata"].get("annotations") or {})
            await runtime.sync()  # the same problem is not reported again
            assert len([e for e in store.list("Event", "default") if e.get("reason") == "ClusterIPNotListening"]) == 1
            host_port = int(svc["metadata"]["annotations"]["rollouts.io/port"])
            async with httpx.AsyncClient(timeout=5) as client:
                assert (await client.get(f"http://127.0.0.1:{host_port}/")).status_code == 200
        finally:
            await runtime.close()

    try:
        asyncio.run(scenario())
    finally:
        blocker.close()


def test_address_pool_hands_out_unique_addresses_never_the_hosts_own() -> None:
    pool = AddressPool("127.0.0.0/29", start=0)  # 127.0.0.1 .. .6 usable; .1 is the host's
    given = [pool.allocate() for _ in range(5)]
    assert sorted(given) == [f"127.0.0.{i}" for i in range(2, 7)]
    with pytest.raises(AddressesExhausted, match="127.0.0.0/29"):
        pool.allocate()
    pool.release("127.0.0.4")
    assert pool.allocate() == "127.0.0.4"


@pytest.mark.parametrize(("address", "reserved"), [
    pytest.param("127.1.0.9", True, id="free"),
    pytest.param("127.3.0.1", False, id="outside-the-network"),
    pytest.param("not-an-ip", False, id="not-an-address"),
])
def test_address_pool_reserves_recorded_addresses(address: str, reserved: bool) -> None:
    pool = AddressPool("127.1.0.0/16")
    assert pool.reserve(address) is reserved
    assert pool.reserve(address) is False  # once
    assert (address in pool.taken()) is reserved


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"clusterIP": "None"}, (None, False), id="headless-stays-headless"),
    pytest.param({"type": "ExternalName", "externalName": "example.com"}, (None, False), id="external-name"),
    pytest.param({"clusterIP": "127.2.3.4"}, ("127.2.3.4", False), id="recorded-is-kept"),
    pytest.param({"clusterIP": "10.96.0.10"}, (None, False), id="another-clusters-range"),
])
def test_service_cluster_ip_of_a_spec(spec: dict[str, Any], expected: tuple[str | None, bool]) -> None:
    assert ServiceAddresses().cluster_ip("default/shop", spec, lambda ip: True) == expected


def test_service_cluster_ip_is_assigned_once_and_again_for_a_reapplied_manifest() -> None:
    addresses = ServiceAddresses()
    ip, assigned = addresses.cluster_ip("default/shop", {}, lambda ip: True)
    assert assigned and ip is not None and in_network(ip, SERVICE_NETWORK)
    assert addresses.cluster_ip("default/shop", {"clusterIP": ip}, lambda ip: True) == (ip, False)
    assert addresses.cluster_ip("default/shop", {}, lambda ip: True) == (ip, True)  # re-applied without it
    other, _ = addresses.cluster_ip("default/web", {}, lambda candidate: candidate != ip)
    assert other not in (None, ip)
    addresses.release("default/shop")
    assert ip not in addresses.pool.taken()
