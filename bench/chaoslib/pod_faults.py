"""Chaos family "pod-faults": the canary's pods crash-loop (the process exits at once) or never become ready
(the readiness probe always fails), on a real local cluster and operator, behind its real ingress proxy.

Judged per run: no request through the ingress is lost or answered by the faulty revision (`wrong_routes`
counts every answer that is not the stable color with HTTP 200), the canary Service's Endpoints never list
a faulty pod, the stable ReplicaSet stays the old one (else `unsafe_promotions`), and the progress deadline
aborts the update with Argo's wording, naming the ReplicaSet: Progressing False, reason
ProgressDeadlineExceeded, `ReplicaSet "<name>" has timed out progressing.`. The undisturbed control run
(a healthy new image) promotes.
"""

from __future__ import annotations

import collections
import functools
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from chaoslib import Outcome
from chaoslib._judged_runs import control_then_faults

FAMILY = "pod-faults"
FAULTS = ("crash-loop", "never-ready")
DEADLINE_SECONDS = 4
HASH_LABEL = "rollouts-pod-template-hash"


def _container(fault: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "rollouts-demo:yellow"}
    if fault == "crash-loop":
        # Argument list, no shell: the process exits with 3 as soon as it starts.
        container["command"] = [sys.executable, "-c", "raise SystemExit(3)"]
    elif fault == "never-ready":
        container["readinessProbe"] = {"exec": {"command": [sys.executable, "-c", "raise SystemExit(1)"]},
                                       "periodSeconds": 1, "failureThreshold": 1}
    return container


def manifest(name: str, container: dict[str, Any]) -> str:
    """A canary behind its own Services and Ingress, with a short progress deadline that aborts."""
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {
            "replicas": 1, "progressDeadlineSeconds": DEADLINE_SECONDS, "progressDeadlineAbort": True,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}},
            "strategy": {"canary": {
                "canaryService": f"{name}-canary", "stableService": f"{name}-stable",
                "abortScaleDownDelaySeconds": 0,
                "trafficRouting": {"nginx": {"stableIngress": name}},
                "steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}]}},
        },
    }
    services = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-{role}"},
                 "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
                for role in ("stable", "canary")]
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
               "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [
                   {"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": f"{name}-stable", "port": {"number": 80}}}}]}}]}}
    return "".join(f"---\n{json.dumps(doc)}\n" for doc in (*services, ingress, rollout))


class Requests:
    """Requests through the ingress, back to back, counted by `color:status` (or `error`)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(0.05):
                try:
                    answer = client.get(self.url)
                    color = answer.json().get("color", "?") if answer.status_code == 200 else "?"
                    self.counts[f"{color}:{answer.status_code}"] += 1
                except (httpx.HTTPError, ValueError):
                    self.counts["error"] += 1

    def __enter__(self) -> Requests:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _endpoint_names(ctl: Any, service: str) -> set[str]:
    with ctl.store() as store:
        try:
            endpoints = store.get("Endpoints", "default", service)
        except Exception:  # not created yet
            return set()
    return {str((address.get("targetRef") or {}).get("name"))
            for subset in endpoints.get("subsets") or [] for address in subset.get("addresses") or []}


def one_run(ctl: Any, index: int, fault: str, workdir: Path) -> Outcome:
    from tests.e2e.harness import wait_until

    started = time.monotonic()
    name = f"pf{index}"
    path = workdir / f"{name}.yaml"
    path.write_text(manifest(name, {"name": "app", "image": "rollouts-demo:blue"}))
    ctl.cli("apply", "-f", str(path))
    ctl.cli("status", name, "--timeout", "60s", timeout=90)
    port = ctl.ingress_port(name)
    old_hash = ctl.rollout(name)["status"]["stableRS"]
    faulty_in_endpoints: set[str] = set()
    seen: dict[str, Any] = {}

    def settled() -> bool:
        status = ctl.rollout(name).get("status") or {}
        new_hash = status.get("currentPodHash")
        if new_hash == old_hash:
            return False
        with ctl.store() as store:
            pods = {p["metadata"]["name"] for p in store.list("Pod", "default")
                    if p["metadata"].get("labels", {}).get(HASH_LABEL) == new_hash}
        if fault != "ok":
            faulty_in_endpoints.update(pods & (_endpoint_names(ctl, f"{name}-canary")
                                               | _endpoint_names(ctl, f"{name}-stable")))
        seen["status"], seen["hash"] = status, new_hash
        if fault == "ok":
            return status.get("phase") == "Healthy" and status.get("stableRS") == new_hash
        return bool(status.get("abort")) and status.get("phase") == "Degraded"

    with Requests(port) as requests:
        path.write_text(manifest(name, _container(fault)))
        ctl.cli("apply", "-f", str(path))
        try:
            wait_until(settled, 90, f"rollout {name} to settle")
            settle_error = ""
        except AssertionError as exc:
            settle_error = str(exc)[:300]
        time.sleep(0.5)  # nothing may move after the decision
    status = ctl.rollout(name).get("status") or {}
    counts = dict(requests.counts)
    stable = "old" if status.get("stableRS") == old_hash else "new"
    final = f"{status.get('phase')} abort={bool(status.get('abort'))} stable={stable}"
    problems = [settle_error] if settle_error else []
    wrong = 0
    unsafe = 0
    if fault == "ok":
        wrong = sum(v for k, v in counts.items() if k not in ("blue:200", "yellow:200"))
    else:
        wrong = sum(v for k, v in counts.items() if k != "blue:200")
        unsafe = int(status.get("stableRS") != old_hash)
        progressing: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), {})
        rs_name = f"{name}-{seen.get('hash')}"
        expected = f'ReplicaSet "{rs_name}" has timed out progressing.'
        # With progressDeadlineAbort the condition becomes RolloutAborted carrying the deadline as its cause
        # ("Rollout aborted update to revision 2: ReplicaSet ... has timed out progressing."), as Argo's does;
        # the ProgressDeadlineExceeded event carries the message alone.
        if not str(progressing.get("message", "")).endswith(expected):
            problems.append(f"Progressing condition {progressing.get('reason')}: {progressing.get('message')!r}, "
                            f"expected it to end with {expected!r}")
        with ctl.store() as store:
            events = [(e.get("reason"), e.get("message")) for e in
                      store.list("Event", "default", field_selector=f"involvedObject.name={name}")]
        if ("ProgressDeadlineExceeded", expected) not in events:
            problems.append(f"no ProgressDeadlineExceeded event {expected!r} (events {events[-5:]})")
        if faulty_in_endpoints:
            problems.append(f"faulty pods listed in Endpoints: {sorted(faulty_in_endpoints)}")
    if not counts.get("blue:200"):
        problems.append("no request was answered during the run")
    ctl.cli("delete", "rollout", name, check=False)
    return Outcome(FAMILY, f"canary pods {fault}" if fault != "ok" else "undisturbed release (no fault)",
                   final, not problems and not wrong and not unsafe, unsafe_promotions=unsafe, wrong_routes=wrong,
                   seconds=time.monotonic() - started, detail="; ".join(problems + [f"answers {counts}"]),
                   extra={"requests": float(sum(counts.values()))})


def run(runs: int, seed: int, workdir: Path, parallel: int = 6, only: str | None = None) -> list[Outcome]:
    """`runs` releases on one local cluster and operator, faults in a seed-shuffled cycle, after an
    undisturbed control release that must promote (or nothing is judged)."""
    order = list(FAULTS)
    random.Random(seed).shuffle(order)
    chosen = [only or order[i % len(order)] for i in range(runs)]
    faulted = [functools.partial(one_run, index=i + 1, fault=fault, workdir=workdir) for i, fault in enumerate(chosen)]
    return control_then_faults(workdir, functools.partial(one_run, index=0, fault="ok", workdir=workdir), faulted,
                               parallel)
