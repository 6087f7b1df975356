"""Operator scale benchmark: N idle rollouts (replicas 0) created through the API of a local cluster process
(API only, no runtime), then the operator (`controller.operator.Operator` over a `CachedStore`) started as its
own process with only the kubeconfig. Prints:

- the creation time, and the API server's RSS;
- for a fresh operator: the initial sync (every informer listed), the time until the first reconcile of every
  rollout is done, the CPU seconds the operator and the API server spent on it, and the operator's own API
  calls per rollout by method and resource (the informers' list and watch left out);
- the same for a restarted operator (everything already reconciled: no calls expected);
- the operator's RSS, and its idle CPU (% of one core) over a quiet window (--idle-seconds, 60 by default),
  with the API server's idle CPU and RSS beside it;
- the latency from a promote / abort written through the API (what `rollouts promote` / `abort` do) to the
  operator's answer (its next write of that Rollout), p50 / p99 over --tries (half promotes, half aborts).

    python bench/scale.py --rollouts 1000            # also 5000, 20000
    python bench/scale.py --rollouts 1000 --per-namespace 1000   # all in one namespace
    python bench/scale.py --rollouts 1000 --profile /tmp/op.prof  # cProfile of the fresh operator's first sync

Rollouts are spread over namespaces of --per-namespace each (default 100), as a cluster's tenants are.
Wall times depend on what else the machine runs; CPU seconds and calls per rollout much less.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rollouts.api import actions
from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.engine import intents
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config

STEPS = [{"setWeight": 20}, {"pause": {}}]


def _rollout(name: str, namespace: str, image: str = "idle:1") -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}},
                     "strategy": {"canary": {"steps": STEPS}}}}


# -- the operator process --------------------------------------------------------------------------------

def _count_calls() -> collections.Counter[str]:
    """Count the operator's own API calls (not the informers' list/watch) by method and resource."""
    calls: collections.Counter[str] = collections.Counter()
    original = KubeStore.request

    def request(self: KubeStore, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        parts = [p for p in path.split("/") if p]
        # /api/v1/namespaces/NS/KIND[/NAME[/SUB]] or /apis/G/V/namespaces/NS/KIND...
        if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
            rest = parts[parts.index("namespaces") + 2:]
            resource = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
        else:
            resource = parts[-1] if parts else "?"
        calls[f"{method} {resource}"] += 1
        return original(self, method, path, *args, **kwargs)

    KubeStore.request = request  # type: ignore[method-assign]
    return calls


def operator_main(kubeconfig: str, report: Path, workers: int, profile: str | None = None) -> None:
    from rollouts.controller.loop import Controller
    from rollouts.controller.operator import ROLLOUTS, Operator
    from rollouts.kube.cache import CachedStore

    calls = _count_calls()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()

    def say(**fields: Any) -> None:
        with report.open("a") as out:
            out.write(json.dumps(fields) + "\n")

    async def main() -> None:
        started = time.monotonic()
        cache = CachedStore.connect(KubeStore(load_config(kubeconfig=kubeconfig)))
        operator = Operator(Controller(store=cache), cache, workers=workers)
        stop = asyncio.Event()
        task = asyncio.ensure_future(operator.run(stop))
        await operator.synced.wait()
        objects = {k: len(i.cache) for k, i in cache.informers.items()}
        if cache.history_informer is not None:
            objects["history ConfigMap"] = len(cache.history_informer.cache)
        say(event="synced", seconds=time.monotonic() - started, objects=objects)
        if profiler is not None:
            profiler.enable()
        while True:
            queue = operator.queues.get(ROLLOUTS)
            if queue is not None and len(queue) == 0 and not queue.processing():
                break
            await asyncio.sleep(0.05)
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        say(event="drained", seconds=time.monotonic() - started, calls=dict(calls.most_common()))
        await task

    asyncio.run(main())


# -- measuring -------------------------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _wait_report(report: Path, event: str, child: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if report.exists():
            for line in report.read_text().splitlines():
                found = json.loads(line)
                if found.get("event") == event:
                    return dict(found)
        if child.poll() is not None:
            raise SystemExit(f"the operator exited with code {child.returncode}")
        time.sleep(0.05)
    raise SystemExit(f"the operator did not report {event!r} within {timeout:.0f}s")


def _create_all(config: Any, n: int, per_namespace: int, threads: int) -> float:
    local = threading.local()

    def create(i: int) -> None:
        store = getattr(local, "store", None)
        if store is None:
            store = local.store = KubeStore(config)
        store.create(_rollout(f"idle-{i:05d}", f"scale-{i // per_namespace:03d}"))

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(n)))
    return time.monotonic() - started


def _next_change(store: KubeStore, namespace: str, name: str, after: int, timeout: float = 30.0) -> dict[str, Any]:
    """The first change of that Rollout with a resourceVersion above `after` (an operator's write)."""
    deadline = time.monotonic() + timeout
    since = after
    while time.monotonic() < deadline:
        for change in store.watch(since, {"Rollout"}, timeout=deadline - time.monotonic()):
            since = max(since, change.resource_version)
            if (change.namespace, change.name) == (namespace, name) and change.resource_version > after:
                return change.object
    raise SystemExit(f"no operator write of {namespace}/{name} within {timeout:.0f}s")


def _until_status(store: KubeStore, namespace: str, name: str, check: Any, timeout: float = 30.0,
                  what: str = "") -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = store.get("Rollout", namespace, name)
        if check(obj.get("status") or {}):
            return obj
        time.sleep(0.01)
    status = dict(obj.get("status") or {})
    status.pop("conditions", None)
    raise SystemExit(f"{namespace}/{name}: {what} not reached within {timeout:.0f}s: {json.dumps(status)[:1500]}")


def _verb(store: KubeStore, namespace: str, name: str, verb: str) -> int:
    """Write the verb's patches as the CLI does (rollouts.api.actions); returns the resourceVersion its last
    write was answered with (a get afterwards could already show the operator's answer)."""
    _, rollout = actions.load_rollout(store, namespace, name)
    patch = intents.promote(rollout) if verb == "promote" else intents.abort(rollout)
    version = 0
    for subresource, body in patch.bodies():
        answer = store.patch("Rollout", namespace, name, body, subresource="status" if subresource else None)
        version = int(answer["metadata"]["resourceVersion"])
    return version


def _promoted(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Healthy" and status.get("stableRS") == status.get("currentPodHash")


def _aborted(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Degraded"


def _action_latencies(store: KubeStore, namespace: str, name: str, tries: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"promote": [], "abort": []}
    for n in range(tries):
        verb = "promote" if n % 2 == 0 else "abort"
        image = f"idle:{n + 2}"
        previous = (store.get("Rollout", namespace, name).get("status") or {}).get("currentPodHash")
        store.patch("Rollout", namespace, name, {"spec": {"template": _rollout(name, namespace, image)["spec"]["template"]}})
        # Untimed: the new revision reaches its pause step.
        _until_status(store, namespace, name, lambda s, old=previous: s.get("phase") == "Paused"
                      and s.get("currentStepIndex") == 1 and s.get("currentPodHash") != old,
                      what=f"try {n} ({verb}): the new revision {image} paused at step 1")
        started = time.monotonic()
        version = _verb(store, namespace, name, verb)
        _next_change(store, namespace, name, version)
        out[verb].append(time.monotonic() - started)
        # Untimed: the release settles (promoted to stable, or aborted back to it) before the next one.
        settled = _promoted if verb == "promote" else _aborted
        _until_status(store, namespace, name, settled, what=f"try {n} ({verb}): settled")
    return out


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def _operator(home: Path, report: Path, workers: int, profile: str | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - fixed argument list
        [sys.executable, __file__, "--operator", str(kubeconfig_path(home)), str(report),
         "--workers", str(workers), *(["--profile", profile] if profile else [])], stdin=subprocess.DEVNULL)


def _objects(synced: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in synced["objects"].items() if v)


def _calls(drained: dict[str, Any], n: int) -> str:
    calls = drained.get("calls") or {}
    total = sum(calls.values())
    detail = ", ".join(f"{k} {v / n:.2f}" for k, v in calls.items())
    return f"{total / n:.2f} API calls per rollout ({detail or 'none'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--per-namespace", type=int, default=100)
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="client threads creating the rollouts")
    parser.add_argument("--profile", metavar="PATH",
                        help="cProfile the fresh operator's first reconcile of every rollout into PATH")
    parser.add_argument("--operator", nargs=2, metavar=("KUBECONFIG", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.operator:
        operator_main(args.operator[0], Path(args.operator[1]), args.workers, args.profile)
        return

    bench_started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rollouts-scale-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        server = start_background(home, runtime=None).pid
        child: subprocess.Popen[bytes] | None = None
        try:
            config = load_config(kubeconfig=str(kubeconfig_path(home)))
            created = _create_all(config, args.rollouts, args.per_namespace, args.threads)
            print(f"created {args.rollouts} rollouts in {created:.1f}s "
                  f"({args.rollouts / created:.0f}/s, {args.per_namespace} per namespace); "
                  f"API server RSS {_rss_mb(server):.0f} MB", flush=True)
            report = Path(tmp) / "operator.jsonl"
            server_cpu = _cpu_seconds(server)
            child = _operator(home, report, args.workers, args.profile)
            # A fresh rollout's first reconcile makes several API writes (its ReplicaSet, status, events,
            # history): allow a generous 0.25 s each on a loaded machine.
            timeout = 120 + args.rollouts * 0.25
            synced = _wait_report(report, "synced", child, timeout)
            drained = _wait_report(report, "drained", child, timeout)
            busy = drained["seconds"] - synced["seconds"]
            print(f"fresh operator: initial sync (informers listed) {synced['seconds']:.1f}s ({_objects(synced)}); "
                  f"first reconcile of every rollout (its ReplicaSet, status, events, history) done at "
                  f"{drained['seconds']:.1f}s ({args.rollouts / max(busy, 1e-9):.0f} rollouts/s); "
                  f"operator CPU {_cpu_seconds(child.pid):.0f}s, API server CPU "
                  f"{_cpu_seconds(server) - server_cpu:.0f}s", flush=True)
            print(f"fresh operator: {_calls(drained, args.rollouts)}", flush=True)
            # What a restarted operator pays: the same rollouts, already reconciled (no writes to make).
            child.terminate()
            child.wait(30)
            report.unlink()
            server_cpu = _cpu_seconds(server)
            child = _operator(home, report, args.workers, None)
            synced = _wait_report(report, "synced", child, timeout)
            drained = _wait_report(report, "drained", child, timeout)
            print(f"restarted operator: initial sync (informers listed) {synced['seconds']:.1f}s "
                  f"({_objects(synced)}); every rollout reconciled at {drained['seconds']:.1f}s; "
                  f"{_calls(drained, args.rollouts)}; API server CPU {_cpu_seconds(server) - server_cpu:.0f}s",
                  flush=True)
            time.sleep(1.0)
            cpu_before, server_before, idle_started = _cpu_seconds(child.pid), _cpu_seconds(server), time.monotonic()
            time.sleep(args.idle_seconds)
            window = time.monotonic() - idle_started
            idle = (_cpu_seconds(child.pid) - cpu_before) / window * 100
            server_idle = (_cpu_seconds(server) - server_before) / window * 100
            print(f"operator RSS {_rss_mb(child.pid):.0f} MB; idle CPU {idle:.2f}% of a core over {window:.0f}s "
                  f"(API server {server_idle:.2f}%); API server RSS {_rss_mb(server):.0f} MB", flush=True)
            store = KubeStore(config)
            try:
                latencies = _action_latencies(store, "scale-000", "idle-00000", args.tries)
            finally:
                store.close()
            every = latencies["promote"] + latencies["abort"]
            for verb, samples in (*latencies.items(), ("all", every)):
                if samples:
                    print(f"{verb} -> operator action: p50 {_pct(samples, 0.5):.0f} ms, p99 {_pct(samples, 0.99):.0f} ms, "
                          f"mean {statistics.mean(samples) * 1000:.0f} ms over {len(samples)}")
            print(f"after the tries: operator RSS {_rss_mb(child.pid):.0f} MB, API server RSS {_rss_mb(server):.0f} MB; "
                  f"bench wall time {time.monotonic() - bench_started:.0f}s", flush=True)
        finally:
            if child is not None:
                child.terminate()
                child.wait(30)
            stop_background(home)


if __name__ == "__main__":
    main()
