"""Chaos family "metric-source": the metric source a gate reads is down, slow past the provider timeout, or
answers garbage (HTML, NaN, an empty vector, a 50 MB body), for the `prometheus` and the `web` provider.

`MetricSource` is a small real HTTP server standing in for Prometheus' query API (`/api/v1/query`) and for a
web metric endpoint (`/web`, JSON `{"value": ...}`); its `mode` says how it misbehaves. A release run is a
real canary on a real local cluster and operator whose step analysis reads that source: the run must end
Error (consecutiveErrorLimit 4: five errors in a row) or Inconclusive by Argo's rules, and the rollout must
never advance on missing data: its step index stays on the analysis step, the stable ReplicaSet stays the
old one, an Error aborts the update and an Inconclusive run pauses it. The undisturbed run ("ok") promotes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chaoslib import Outcome
from chaoslib._judged_runs import control_then_faults

FAMILY = "metric-source"
PROVIDERS = ("prometheus", "web")
# Fault kinds, and the run phase Argo's rules give each with the conditions below.
EXPECTED_RUN_PHASE = {
    "refused": "Error",   # nothing listens on the address
    "slow": "Error",      # a good answer, trickled a byte at a time past the provider timeout
    "html": "Error",      # a proxy's HTML page with HTTP 200
    "huge": "Error",      # a 50 MB body: the provider's body cap refuses it
    "empty": "Error",     # an empty vector / no value: result[0] cannot be evaluated
    "nan": "Inconclusive",  # NaN is a value: neither condition holds
}
FAULTS = tuple(EXPECTED_RUN_PHASE)
HUGE_BYTES = 50 * 1024 * 1024
TIMEOUT_SECONDS = 1
GOOD_VALUE = "0.99"


def _prometheus_body(mode: str) -> bytes:
    if mode == "html":
        return b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    sample = {"metric": {"pod": "canary"}, "value": [int(time.time()), "NaN" if mode == "nan" else GOOD_VALUE]}
    result = [] if mode == "empty" else [sample]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def _web_body(mode: str) -> bytes:
    if mode == "html":
        return b"<html><body><h1>Service Unavailable</h1></body></html>"
    if mode == "empty":
        return b"{}"
    # NaN is what Python's json.dumps writes for a float nan: a real service's output.
    return b'{"value": %s}' % (b"NaN" if mode == "nan" else GOOD_VALUE.encode())


class MetricSource:
    """A real HTTP server on 127.0.0.1 answering both paths in the current `mode` (one of FAULTS or "ok";
    "refused" closes the listener so that the port refuses connections). Counts the requests it got."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests = 0
        self._stopping = threading.Event()
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # no Content-Length needed: the body ends when the connection does

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.do_GET()

            def do_GET(self) -> None:
                source.requests += 1
                mode = source.mode
                web = self.path.startswith("/web")
                body = _web_body(mode) if web else _prometheus_body(mode)
                content_type = "text/html" if mode == "html" else "application/json"
                with contextlib.suppress(OSError):  # the client gave up (cap, timeout): expected
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.end_headers()
                    if mode == "huge":
                        self._huge(web)
                    elif mode == "slow":
                        self._trickle(body)
                    else:
                        self.wfile.write(body)

            def _huge(self, web: bool) -> None:
                # Valid JSON that never ends within the cap: a label value 50 MB long.
                self.wfile.write(b'{"value": "' if web else b'{"status":"success","data":{"resultType":'
                                 b'"vector","result":[{"metric":{"pod":"')
                chunk = b"x" * 65536
                for _ in range(HUGE_BYTES // len(chunk)):
                    if source._stopping.is_set():
                        return
                    self.wfile.write(chunk)
                self.wfile.write(b'"}' if web else b'"},"value":[1,"0.99"]}]}}')

            def _trickle(self, body: bytes) -> None:
                for byte in body:
                    if source._stopping.wait(0.25):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        if mode == "refused":
            self.refuse()

    def refuse(self) -> None:
        """Close the listener: the port now refuses connections (nothing else binds it meanwhile: the OS
        does not hand a just-closed ephemeral port out again at once)."""
        self._server.shutdown()
        self._server.server_close()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stopping.set()
        if self.mode != "refused":
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> MetricSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metric_spec(provider: str, address: str) -> dict[str, Any]:
    """The metric (manifest form) reading `address` with `provider`, judged as the runbook's gates are."""
    if provider == "prometheus":
        return {"name": "success-rate", "successCondition": "result[0] >= 0.95",
                "failureCondition": "result[0] < 0.95",
                "provider": {"prometheus": {"address": address, "query": "sum(rate(ok[1m])) / sum(rate(all[1m]))",
                                            "timeout": TIMEOUT_SECONDS}}}
    return {"name": "success-rate", "successCondition": "result >= 0.95", "failureCondition": "result < 0.95",
            "provider": {"web": {"url": f"{address}/web", "jsonPath": "{$.value}",
                                 "timeoutSeconds": TIMEOUT_SECONDS}}}


# --- release-level runs --------------------------------------------------------------------------------

def _rollout(name: str, image: str, provider: str, address: str, error_limit: int | None) -> str:
    metric = metric_spec(provider, address)
    metric.update(interval="0.2s", count=3)
    if error_limit is not None:
        metric["consecutiveErrorLimit"] = error_limit
    template = {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": name},
                "spec": {"metrics": [metric]}}
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "app", "image": image}]}},
                 "strategy": {"canary": {
                                         "steps": [{"setWeight": 50},
                                                   {"analysis": {"templates": [{"templateName": name}]}},
                                                   {"setWeight": 100}]}}},
    }
    # JSON is YAML: one document per line, no escaping questions.
    return f"---\n{json.dumps(template)}\n---\n{json.dumps(rollout)}\n"


def _judge(fault: str, rollout: dict[str, Any], runs: list[dict[str, Any]], old_hash: str, requests: int,
           max_step: int, error_limit: int | None) -> tuple[bool, int, str, str]:
    """(ok, unsafe promotions, final state, detail) for one run. `max_step`: the highest currentStepIndex
    seen while the run went on (the analysis step is index 1: anything past it advanced on no evidence)."""
    status = rollout.get("status") or {}
    phase_of_runs = [r.get("status", {}).get("phase") for r in runs]
    stable, step = status.get("stableRS"), status.get("currentStepIndex")
    final = (f"{status.get('phase')} step {step} (max seen {max_step}) abort={bool(status.get('abort'))} "
             f"runs={phase_of_runs}")
    if fault == "ok":
        ok = stable == status.get("currentPodHash") and stable != old_hash and phase_of_runs == ["Successful"]
        return ok, 0, final, "" if ok else "the undisturbed release did not promote"
    unsafe = int(stable != old_hash or max_step > 1)
    errors_expected = (4 if error_limit is None else error_limit) + 1
    expected = EXPECTED_RUN_PHASE[fault]
    measurements = [m for r in runs for mr in r.get("status", {}).get("metricResults") or []
                    for m in mr.get("measurements") or []]
    problems = []
    if phase_of_runs != [expected]:
        problems.append(f"run phases {phase_of_runs}, expected [{expected}]")
    if expected == "Error":
        if not status.get("abort") or status.get("phase") != "Degraded":
            problems.append("the update was not aborted")
        if len(measurements) != errors_expected or any(m.get("phase") != "Error" for m in measurements):
            problems.append(f"measurements {[m.get('phase') for m in measurements]}, expected "
                            f"{errors_expected} Errors")
    else:
        reasons = [c.get("reason") for c in status.get("pauseConditions") or []]
        if status.get("abort") or "InconclusiveAnalysisRun" not in reasons:
            problems.append(f"not paused on the inconclusive run (pauseConditions {reasons})")
    if fault == "refused" and requests:
        problems.append(f"the refusing source answered {requests} requests")
    if fault != "refused" and not requests:
        problems.append("the source was never asked")
    detail = "; ".join(problems) + (f"; last error: {measurements[-1].get('message', '')[:160]}"
                                    if measurements and problems else "")
    return not problems and not unsafe, unsafe, final, detail


def one_run(ctl: Any, index: int, fault: str, provider: str, workdir: Path,
            error_limit: int | None = None) -> Outcome:
    from tests.e2e.harness import wait_until

    started = time.monotonic()
    name = f"ms{index}-{fault}-{provider[:3]}"
    manifest = workdir / f"{name}.yaml"
    max_step = [0]
    with MetricSource("ok" if fault == "ok" else fault) as source:
        manifest.write_text(_rollout(name, "rollouts-demo:blue", provider, source.address, error_limit))
        ctl.cli("apply", "-f", str(manifest))
        ctl.cli("status", name, "--timeout", "60s", timeout=90)
        old_hash = ctl.rollout(name)["status"]["stableRS"]
        ctl.cli("set", "image", name, "app=rollouts-demo:yellow")

        def settled() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            rollout = ctl.rollout(name)
            with ctl.store() as store:
                runs = [r for r in store.list("AnalysisRun", "default")
                        if r["metadata"]["name"].startswith(f"{name}-")]
            status = rollout.get("status") or {}
            if status.get("currentPodHash") != old_hash:
                max_step[0] = max(max_step[0], int(status.get("currentStepIndex") or 0))
            done = (status.get("phase") in ("Healthy", "Degraded", "Paused") and runs
                    and all(r.get("status", {}).get("phase") in ("Successful", "Error", "Inconclusive", "Failed")
                            for r in runs) and status.get("currentPodHash") != old_hash)
            return (rollout, runs) if done else None

        try:
            rollout, runs = wait_until(settled, 90, f"rollout {name} to settle")
        except AssertionError as exc:
            return Outcome(FAMILY, f"{fault} {provider}", "did not settle", False,
                           seconds=time.monotonic() - started, detail=str(exc)[:300])
        # A little longer: nothing may advance after the decision.
        time.sleep(0.5)
        rollout = ctl.rollout(name)
        max_step[0] = max(max_step[0], int((rollout.get("status") or {}).get("currentStepIndex") or 0))
        ok, unsafe, final, detail = _judge(fault, rollout, runs, old_hash, source.requests, max_step[0],
                                           error_limit)
    ctl.cli("delete", "rollout", name, check=False)
    return Outcome(FAMILY, f"metric source {fault} ({provider} provider) during step analysis", final, ok,
                   unsafe_promotions=unsafe, seconds=time.monotonic() - started, detail=detail)


def cases(runs: int, seed: int) -> list[tuple[str, str]]:
    """The (fault, provider) of each run: every combination in turn, in an order the seed shuffles."""
    combos = [(fault, provider) for fault in FAULTS for provider in PROVIDERS]
    random.Random(seed).shuffle(combos)
    return [combos[i % len(combos)] for i in range(runs)]


def run(runs: int, seed: int, workdir: Path, parallel: int = 8, error_limit: int | None = None,
        only: tuple[str, str] | None = None) -> list[Outcome]:
    """`runs` release-level runs on one local cluster and operator (plus an undisturbed control run first,
    which must promote, or no faulted run is judged). An Error retries after 10 s (as our analysis
    schedules it), so five in a row take ~50 s: runs go `parallel` at a time. `error_limit` overrides
    consecutiveErrorLimit (default 4) and `only` pins the (fault, provider) of every run, for fast tests."""

    def control(ctl: Any) -> Outcome:
        outcome = one_run(ctl, 0, "ok", "prometheus", workdir)
        if not outcome.ok:
            outcome.fault = "undisturbed control run (no fault)"
        return outcome

    chosen = [only] * runs if only else cases(runs, seed)
    faulted = [functools.partial(one_run, index=i + 1, fault=fault, provider=provider, workdir=workdir,
                                 error_limit=error_limit) for i, (fault, provider) in enumerate(chosen)]
    return control_then_faults(workdir, control, faulted, parallel)
