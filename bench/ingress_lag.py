"""How long a canary-weight change written to an Ingress takes to reach the local cluster's ingress proxy.

Starts a real local cluster (the API server with its runtime, `python -m rollouts.cluster.apiserver.server`)
on a temporary home, with two demo ReplicaSets (`blue` stable, `green` canary) behind two Services, a stable
Ingress and a canary Ingress. Each sample writes `canary-weight` (100, then 0, alternately) to the canary
Ingress through the API, as the operator does, and takes the lag from the start of that write to the proxy's
`ingress: routes updated: ... weight W/100` log line (written when it swaps its routing table, before it
routes the next request; millisecond stamps), and from the API's answer to it (negative: the proxy had the
weight before the answer reached the client); one request through the proxy then confirms the version the
weight sends it to.

`--cpu N` runs N busy processes beside it and `--churn R` scales a third ReplicaSet between 0 and R pods
every second while sampling, so the runtime has many pods to reconcile while weights change. Every process
started here is stopped at the end; nothing runs longer than `--deadline` seconds.

    python bench/ingress_lag.py --samples 30
    python bench/ingress_lag.py --samples 30 --cpu 8 --churn 30

`--from-logs LOG...` reads cluster logs already written (the proxy-load chaos family's
`home-*/logs/apiserver.log`) instead: for each weight change of a route, the lag from the API's log line for
the last write to a canary Ingress before it to the proxy's `routes updated` line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from rollouts.cluster.apiserver.kubeconfig import api_token
from rollouts.cluster.apiserver.server import state_path
from rollouts.cluster.apiserver.tls import CERT_FILE

_LINE = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: ingress: routes updated: (.*)$", re.M)
_WEIGHT = re.compile(rb"default/web \S+ canary \S+ weight (\d+)/(\d+)")
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


def _service(name: str, track: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web", "track": track}, "ports": [{"port": 80, "targetPort": 8080}]}}


def _replica_set(name: str, labels: dict[str, str], replicas: int, container: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}}}


def _ingress(name: str, service: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}}


def _path(kind: str, name: str = "") -> str:
    base = {"Service": "/api/v1/namespaces/default/services",
            "ReplicaSet": "/apis/apps/v1/namespaces/default/replicasets",
            "Ingress": "/apis/networking.k8s.io/v1/namespaces/default/ingresses"}[kind]
    return f"{base}/{name}" if name else base


def _stamp(text: bytes) -> float:
    value = text.decode()
    return time.mktime(datetime.strptime(value, "%Y-%m-%d %H:%M:%S,%f").timetuple()) + int(value[-3:]) / 1000


def _wait(what: str, check: Any, deadline: float) -> Any:
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log = home, log
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rollouts.cluster.apiserver.server", "--home", str(home), "--no-prometheus",
             "--probe-period", "0.2"], stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=env)
        deadline = time.monotonic() + 60
        _wait("the API server", lambda: state_path(home).exists() and (home / CERT_FILE).exists(), deadline)
        port = json.loads(state_path(home).read_text())["port"]
        self.http = httpx.Client(base_url=f"https://127.0.0.1:{port}", timeout=30,
                                 headers={"Authorization": f"Bearer {api_token(home)}"},
                                 verify=ssl.create_default_context(cafile=str(home / CERT_FILE)))
        _wait("the API", lambda: self._ready(), deadline)

    def _ready(self) -> bool:
        try:
            return self.http.get("/api/v1/namespaces/default/services").status_code == 200
        except httpx.HTTPError:
            return False

    def create(self, obj: dict[str, Any]) -> None:
        answer = self.http.post(_path(obj["kind"]), json=obj)
        if answer.status_code >= 300:
            raise SystemExit(f"create {obj['kind']} {obj['metadata']['name']}: {answer.status_code} {answer.text}")

    def patch(self, kind: str, name: str, body: dict[str, Any]) -> None:
        answer = self.http.patch(_path(kind, name), content=json.dumps(body),
                                 headers={"Content-Type": "application/merge-patch+json"})
        if answer.status_code >= 300:
            raise SystemExit(f"patch {kind} {name}: {answer.status_code} {answer.text}")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.http.get(_path(kind, name)).json())

    def close(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _version(port: int) -> str:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    except httpx.HTTPError as exc:
        return f"error {exc.__class__.__name__}"
    return str(answer.json().get("version")) if answer.status_code == 200 else f"HTTP {answer.status_code}"


def _burners(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


_WRITE = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: (?:create|patch|update) "
                    rb"ingresses\.networking\.k8s\.io (\S+) -> 2\d\d", re.M)
_ANY_WEIGHT = re.compile(rb"(\S+) \S+ canary (\S+) weight (\d+)/(\d+)")


def figures(values: list[float]) -> str:
    ordered = sorted(values)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"p50 {quantile(0.5):.3f} s  p90 {quantile(0.9):.3f} s  max {ordered[-1]:.3f} s"


def lags_from_log(text: bytes) -> list[float]:
    """Seconds from each canary Ingress write to the table swap that changed a route's weight. The API logs a
    write once it has answered, so the swap can come first: then the write logged next (before any other swap)
    is the one it applied, and the lag is negative."""
    events: list[tuple[int, str, bytes]] = [(m.start(), "write", m[1]) for m in _WRITE.finditer(text)]
    events += [(m.start(), "swap", m[0]) for m in _LINE.finditer(text)]
    events.sort()
    lags: list[float] = []
    weights: dict[bytes, bytes] = {}
    written: float | None = None  # the last write logged since the previous swap
    awaiting: float | None = None  # a weight-changing swap logged before any write since the previous swap
    for _, what, line in events:
        if what == "write":
            if awaiting is not None:
                lags.append(awaiting - _stamp(line))
                awaiting = None
            else:
                written = _stamp(line)
            continue
        match = _LINE.match(line)
        assert match is not None
        now = {m[1]: m[3] + b"/" + m[4] for m in _ANY_WEIGHT.finditer(match[2])}
        changed = any(weights.get(route, weight) != weight for route, weight in now.items())
        weights.update(now)
        awaiting = None
        if changed:
            if written is not None:
                lags.append(_stamp(match[1]) - written)
            else:
                awaiting = _stamp(match[1])
        written = None
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--cpu", type=int, default=0, help="busy processes beside the cluster")
    parser.add_argument("--churn", type=int, default=0, help="scale a third ReplicaSet 0 <-> N pods every second")
    parser.add_argument("--deadline", type=float, default=600.0, help="stop everything after this many seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--from-logs", nargs="+", type=Path, metavar="LOG", help="judge these cluster logs")
    args = parser.parse_args()
    if args.from_logs:
        found = [lag for log in args.from_logs for lag in lags_from_log(log.read_bytes())]
        if not found:
            raise SystemExit("no weight change found in those logs")
        print(f"ingress weight lag, {len(found)} weight changes in {len(args.from_logs)} logs")
        print(f"  from the API's log line for the write to the proxy's table swap: {figures(found)}")
        return
    rand = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ingress-lag-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        log = Path(tmp) / "cluster.log"
        cluster = Cluster(home, log)
        burners: list[subprocess.Popen[bytes]] = []
        stop = threading.Event()
        churner: threading.Thread | None = None
        try:
            for track, color in (("stable", "blue"), ("canary", "green")):
                labels = {"app": "web", "track": track}
                cluster.create(_service(f"web-{track}", track))
                cluster.create(_replica_set(f"web-{track}", labels, 1,
                                            {"name": "web", "image": f"rollouts-demo:{color}"}))
            cluster.create(_ingress("web", "web-stable", {}))
            cluster.create(_ingress("web-canary", "web-canary", {
                "nginx.ingress.kubernetes.io/canary": "true", CANARY_WEIGHT: "0"}))
            deadline = time.monotonic() + 120
            port = int(_wait("the proxy's port", lambda: (cluster.get("Ingress", "web")["metadata"].get(
                "annotations") or {}).get("rollouts.io/port"), deadline))
            _wait("the stable pod behind the proxy", lambda: _version(port) == "blue", deadline)
            cluster.patch("Ingress", "web-canary", {"metadata": {"annotations": {CANARY_WEIGHT: "100"}}})
            _wait("the canary pod behind the proxy", lambda: _version(port) == "green", deadline)
            cluster.patch("Ingress", "web-canary", {"metadata": {"annotations": {CANARY_WEIGHT: "0"}}})
            _wait("the proxy back on stable", lambda: _version(port) == "blue", deadline)

            remaining = max(10.0, args.deadline - (time.monotonic() - started))
            burners = _burners(args.cpu, remaining)
            if args.churn:
                cluster.create(_replica_set("churn", {"app": "churn"}, 0, {
                    "name": "sleep", "image": "sleep", "command": ["sleep", "3600"]}))

                def churn() -> None:
                    replicas = 0
                    while not stop.wait(1.0):
                        replicas = args.churn if replicas == 0 else 0
                        try:
                            cluster.patch("ReplicaSet", "churn", {"spec": {"replicas": replicas}})
                        except (SystemExit, httpx.HTTPError) as exc:
                            print(f"churn: {exc}", file=sys.stderr)

                churner = threading.Thread(target=churn, daemon=True)
                churner.start()
                time.sleep(2.0)  # let the first wave of pods start before sampling

            lags: list[float] = []
            after_answer: list[float] = []
            writes: list[float] = []
            wrong = 0
            for i in range(args.samples):
                if time.monotonic() - started > args.deadline:
                    print(f"deadline reached after {i} samples", file=sys.stderr)
                    break
                weight = 100 if i % 2 == 0 else 0
                offset = log.stat().st_size
                sent = time.time()
                cluster.patch("Ingress", "web-canary", {"metadata": {"annotations": {CANARY_WEIGHT: str(weight)}}})
                answered = time.time()
                writes.append(answered - sent)

                def applied(offset: int = offset, weight: int = weight) -> float | None:
                    data = log.read_bytes()[offset:]
                    for match in _LINE.finditer(data):
                        found = _WEIGHT.search(match[2])
                        if found and int(found[1]) == weight:
                            return _stamp(match[1])
                    return None

                stamp = _wait(f"weight {weight} in the proxy", applied, time.monotonic() + 60)
                lags.append(stamp - sent)
                after_answer.append(stamp - answered)
                if _version(port) != ("green" if weight == 100 else "blue"):
                    wrong += 1
                time.sleep(rand.uniform(0.2, 0.6))  # spacing between samples, not a wait for a condition
        finally:
            stop.set()
            if churner is not None:
                churner.join(10)
            for burner in burners:
                burner.kill()
                burner.wait(10)
            cluster.close()
    if not lags:
        raise SystemExit("no sample taken")

    print(f"ingress weight lag, {len(lags)} samples, cpu burners {args.cpu}, churn {args.churn} pods, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  from the write's start to the proxy's table swap: {figures(lags)}")
    print(f"  from the API's answer to the proxy's table swap:  {figures(after_answer)}")
    print(f"  the write itself (API round trip): median {statistics.median(writes):.3f} s")
    print(f"  requests confirming the weight's version: {len(lags) - wrong}/{len(lags)}")


if __name__ == "__main__":
    main()
