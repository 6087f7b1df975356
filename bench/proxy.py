"""Ingress proxy benchmark: throughput and added latency of the local ingress proxy against calling the
demo pod directly.

One real demo pod (`python -m rollouts.demo.service`), the real ServiceBalancer and IngressProxy (with its
metrics and access log, as the controller runs them) in a child process, and a load generator of a few
concurrent keep-alive clients in this process. Each mode sends the same number of requests; the pod is
warmed up first. Prints requests/s and p50/p99 latency per mode, and the proxy/direct ratios.

    python bench/proxy.py --requests 3000 --clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

from rollouts.demo.prometheus import free_port

NAMESPACE = "default"


def wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def serve_proxy(pod_port: int, logs: str, ready: Connection) -> None:
    """Child process: balancer + ingress proxy in front of the pod, until the parent closes the pipe."""
    from rollouts.runtime.local.proxy import IngressProxy
    from rollouts.runtime.local.services import Endpoint, ServiceBalancer
    from rollouts.runtime.local.traffic import TrafficStats

    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench", "namespace": NAMESPACE},
               "spec": {"selector": {"app": "bench"}, "ports": [{"port": 80}]}}
    backend = {"service": {"name": "bench", "port": {"number": 80}}}
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "bench", "namespace": NAMESPACE},
               "spec": {"ingressClassName": "nginx",
                        "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}

    async def main() -> None:
        stats = TrafficStats()
        ports: dict[str, int] = {}
        balancer = ServiceBalancer(stats=stats)
        proxy = IngressProxy(balancer, stats=stats, access_log=Path(logs) / "ingress.log", metrics_port=0,
                             on_port=lambda key, port: ports.__setitem__(key, port))
        await proxy.start()
        await balancer.ensure_service(service)
        balancer.set_endpoints(f"{NAMESPACE}/bench", [Endpoint("127.0.0.1", pod_port, "bench-pod", "h1")])
        await proxy.update_ingresses([ingress])
        ready.send(ports[f"{NAMESPACE}/bench"])
        await asyncio.get_running_loop().run_in_executor(None, wait_for_parent)
        await proxy.close()
        await balancer.close()

    def wait_for_parent() -> None:
        try:
            ready.recv_bytes()
        except (EOFError, OSError):  # the parent closed its end: the run is over
            pass

    asyncio.run(main())


async def measure(url: str, requests: int, clients: int) -> tuple[float, list[float], int]:
    """(requests per second, latencies in seconds, failed requests)."""
    latencies: list[float] = []
    failed = 0
    remaining = requests

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, failed
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    failed += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - began
    return requests / wall, latencies, failed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per mode")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients")
    args = parser.parse_args()

    pod_port = free_port()
    env = {**os.environ, "PORT": str(pod_port)}
    pod = subprocess.Popen([sys.executable, "-m", "rollouts.demo.service"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with tempfile.TemporaryDirectory(prefix="rollouts-bench-") as logs:
        proxy = context.Process(target=serve_proxy, args=(pod_port, logs, child), daemon=True)
        try:
            wait_listening(pod_port)
            proxy.start()
            if not parent.poll(30):
                raise SystemExit("the ingress proxy did not start within 30s")
            proxy_port = int(parent.recv())
            modes = {"direct": f"http://127.0.0.1:{pod_port}/", "proxy": f"http://127.0.0.1:{proxy_port}/"}
            for url in modes.values():  # warm up both paths (imports, connections, JIT-free but cached)
                asyncio.run(measure(url, 200, args.clients))
            results = {name: asyncio.run(measure(url, args.requests, args.clients)) for name, url in modes.items()}
        finally:
            parent.close()
            proxy.join(timeout=10)
            if proxy.is_alive():
                proxy.kill()
            pod.terminate()
            pod.wait(timeout=10)

    print(f"{args.requests} requests per mode, {args.clients} concurrent clients, one demo pod")
    print(f"{'mode':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'failed':>7}")
    for name, (rate, latencies, failed) in results.items():
        print(f"{name:<8} {rate:>9.0f} {percentile(latencies, 50) * 1e3:>8.2f} "
              f"{percentile(latencies, 99) * 1e3:>8.2f} {statistics.fmean(latencies) * 1e3:>8.2f} {failed:>7}")
    direct, proxied = results["direct"], results["proxy"]
    added_p50 = percentile(proxied[1], 50) - percentile(direct[1], 50)
    added_p99 = percentile(proxied[1], 99) - percentile(direct[1], 99)
    print(f"throughput ratio proxy/direct: {proxied[0] / direct[0]:.2f}")
    print(f"latency ratio proxy/direct: p50 {percentile(proxied[1], 50) / percentile(direct[1], 50):.2f}, "
          f"p99 {percentile(proxied[1], 99) / percentile(direct[1], 99):.2f}")
    print(f"added latency: p50 {added_p50 * 1e3:+.2f} ms, p99 {added_p99 * 1e3:+.2f} ms")


if __name__ == "__main__":
    main()
