"""Local cluster API server benchmark: requests/s and p50/p99 latency of get, list (1,000 objects) and a
watch fan-out (100 watchers each receiving every write), against a real server process over HTTPS; and
what a fresh process pays to get one Rollout through the API: `rollouts get rollout web` itself (the
CLI's own path, the target is < 0.5 s), and for comparison lightkube and bare `http.client`, each as a
ratio to `python -c pass` (medians of --runs fresh processes).

    python bench/api.py --requests 300 --concurrency 4 --watchers 100 --writes 50 --runs 9
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rollouts.cluster.apiserver.kubeconfig import api_token
from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.cluster.apiserver.tls import CERT_FILE
from rollouts.cluster.store import SQLiteStore
from rollouts.store.home import database_path


def _populate(home: Path, pods: int) -> None:
    store = SQLiteStore(database_path(home))
    with store.transaction():
        store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}},
                                            "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                               "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}}})
        for n in range(pods):
            store.create({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": f"web-{n:04d}", "labels": {"app": "web", "n": str(n % 10)}},
                          "spec": {"containers": [{"name": "web", "image": "web:1"}]},
                          "status": {"phase": "Running"}})
    store.close()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def _load(client: httpx.AsyncClient, path: str, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    todo = iter(range(requests))

    async def worker() -> None:
        for _ in todo:
            started = time.perf_counter()
            answer = await client.get(path)
            answer.raise_for_status()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    p50, p99 = _percentiles(latencies)
    return {"rps": requests / elapsed, "p50_ms": p50, "p99_ms": p99}


async def _fan_out(client: httpx.AsyncClient, watchers: int, writes: int) -> dict[str, float]:
    """Each write's delivery delay to every watcher; throughput is deliveries per second."""
    path = "/api/v1/namespaces/bench/configmaps"
    version = (await client.get(path)).json()["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    delays: list[float] = []
    ready = asyncio.Semaphore(0)

    async def watch() -> None:
        seen = 0
        async with client.stream("GET", path, params={"watch": "1", "resourceVersion": version,
                                                      "allowWatchBookmarks": "false"}) as stream:
            ready.release()
            async for line in stream.aiter_lines():
                if not line:
                    continue
                arrived = time.perf_counter()
                name = json.loads(line)["object"]["metadata"]["name"]
                delays.append(arrived - sent[name])
                seen += 1
                if seen == writes:
                    return

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    for _ in range(watchers):
        await ready.acquire()
    started = time.perf_counter()
    for n in range(writes):
        name = f"fan-{n}"
        sent[name] = time.perf_counter()
        answer = await client.post(path, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
        answer.raise_for_status()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    elapsed = time.perf_counter() - started
    p50, p99 = _percentiles(delays)
    return {"deliveries_per_s": len(delays) / elapsed, "p50_ms": p50, "p99_ms": p99}


async def _run(url: str, token: str, ca: Path, args: Any) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    limits = httpx.Limits(max_connections=args.watchers + args.concurrency + 4)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, verify=context,
                                 timeout=httpx.Timeout(60, read=None), limits=limits) as client:
        results = {
            "get rollout": await _load(client, "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/web",
                                       args.requests, args.concurrency),
            f"list {args.pods} pods": await _load(client, "/api/v1/namespaces/default/pods",
                                                  max(10, args.requests // 10), args.concurrency),
            "list pods -l n=3": await _load(client, "/api/v1/namespaces/default/pods?labelSelector=n%3D3",
                                            max(10, args.requests // 10), args.concurrency),
        }
        for name, figures in results.items():
            print(f"{name:22} {figures['rps']:8.1f} req/s   p50 {figures['p50_ms']:7.1f} ms   "
                  f"p99 {figures['p99_ms']:7.1f} ms")
        fan = await _fan_out(client, args.watchers, args.writes)
        print(f"watch fan-out {args.watchers}x{args.writes} {fan['deliveries_per_s']:8.1f} events/s  "
              f"p50 {fan['p50_ms']:7.1f} ms   p99 {fan['p99_ms']:7.1f} ms  (write to delivery)")


_GET_ROLLOUT = """
import sys
from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
Rollout = create_namespaced_resource("argoproj.io", "v1alpha1", "Rollout", "rollouts")
client = Client(config=KubeConfig.from_file(sys.argv[1]))
assert client.get(Rollout, "web", namespace="default").metadata.name == "web"
"""


# The same with the standard library only (the token and CA read from the kubeconfig), for comparison.
_GET_ROLLOUT_STDLIB = """
import base64, http.client, json, ssl, sys, tempfile, urllib.parse
import yaml
config = yaml.safe_load(open(sys.argv[1]))
cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
url = urllib.parse.urlsplit(cluster["server"])
context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
conn = http.client.HTTPSConnection(url.hostname, url.port, context=context)
conn.request("GET", "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts/web",
             headers={"Authorization": "Bearer " + user["token"]})
assert json.loads(conn.getresponse().read())["metadata"]["name"] == "web"
"""


def _process_cost(home: Path, runs: int) -> dict[str, float]:
    """Median wall time of a fresh process getting one Rollout (the CLI, lightkube, stdlib) and of
    `python -c pass`. The commands take turns, run by run, so a change in the machine's load weighs on
    all of them alike (the ratios stay meaningful on a shared machine)."""
    kubeconfig = home / "kubeconfig"
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("KUBECONFIG", None)
    cli = [sys.executable, "-m", "rollouts", "get", "rollout", "web", "--home", str(home)]
    commands = {"rollouts get rollout": cli,
                "rollouts get rollout --kubeconfig": [*cli[:-2], "--kubeconfig", str(kubeconfig)],
                "lightkube": [sys.executable, "-c", _GET_ROLLOUT, str(kubeconfig)],
                "http.client": [sys.executable, "-c", _GET_ROLLOUT_STDLIB, str(kubeconfig)],
                "python -c pass": [sys.executable, "-c", "pass"]}
    times: dict[str, list[float]] = {label: [] for label in commands}
    for run in range(runs + 1):
        for label, args in commands.items():
            started = time.perf_counter()
            subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S603 (fixed arguments)
            if run:  # the first round warms the file cache
                times[label].append(time.perf_counter() - started)
    return {label: statistics.median(samples) for label, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--runs", type=int, default=9, help="Fresh processes for the get-rollout cost.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        _populate(home, args.pods)
        running = start_background(home, runtime=None)
        try:
            asyncio.run(_run(running.url, api_token(home), home / CERT_FILE, args))
            costs = _process_cost(home, args.runs)
            baseline = costs.pop("python -c pass")
            for label, cost in costs.items():
                print(f"get rollout from a fresh process ({label}): {cost:.3f} s median of {args.runs}, "
                      f"{cost / baseline:.1f}x python -c pass ({baseline:.3f} s)")
            if costs["rollouts get rollout"] >= 0.5:
                print("rollouts get rollout is over its 0.5 s target")
        finally:
            stop_background(home)
    print(f"(python {sys.version.split()[0]}, one server process, "
          f"{args.concurrency} concurrent clients)")


if __name__ == "__main__":
    main()
