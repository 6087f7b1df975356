"""Runs the whole demo: the home's local cluster (started in the background when it is not running: it
runs the pods, the Service listeners and the ingress proxy), the operator as a background task of this
process talking to it through the Kubernetes API, the demo objects written through the same API, a load
generator through the ingress, then a good and a bad release. Publishes a `DemoState` after every poll
for a view to draw, and returns one `ReleaseResult` per release. A stop event (SIGINT/SIGTERM) ends it
early; the cluster, when the demo started it, is then stopped with every pod."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
from rollouts.cluster.apiserver.server import start_background, status, stop_background
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.controller.service import run_controller
from rollouts.demo import manifests as m
from rollouts.demo.load import LoadGenerator, LoadSnapshot
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from rollouts.runtime.local.routing import PORT_ANNOTATION
from rollouts.store.lock import HomeLock
from rollouts.store.protocol import NotFound, ObjectStore

POLL_SECONDS = 0.25
READY_TIMEOUT = 30.0
RELEASE_TIMEOUT = 90.0
WARMUP_SECONDS = 2.0
VERIFY_SECONDS = 3.0
PROBE_PERIOD = 0.2
PROMOTED = "promoted"
ROLLED_BACK = "rolled back automatically"


class DemoStopped(Exception):
    """The demo was interrupted, or the controller stopped under it."""


@dataclass(frozen=True)
class Release:
    label: str
    image: str
    expected: str

    @property
    def version(self) -> str:
        return self.image.rsplit(":", 1)[-1]


RELEASES = (
    Release("good", m.GOOD_IMAGE, PROMOTED),
    Release("bad", m.BAD_IMAGE, ROLLED_BACK),
)


@dataclass(frozen=True)
class ReleaseResult:
    release: Release
    outcome: str  # PROMOTED, ROLLED_BACK or what happened instead
    seconds: float
    canary_requests: int
    failed_requests: int
    detail: str = ""

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.release.expected and not self.detail


@dataclass(frozen=True)
class GateValue:
    metric: str
    value: str
    phase: str


@dataclass(frozen=True)
class DemoState:
    """What the view shows; replaced (never mutated) on every poll."""

    stage: str = "starting"
    home: str = ""
    port: int | None = None
    release: Release | None = None
    step: str = ""
    set_weight: int | None = None
    canary_weight: int = 0
    phase: str = ""
    message: str = ""
    load: LoadSnapshot = field(default_factory=LoadSnapshot)
    rate: float = 0.0
    gate_run: str = ""
    gate_phase: str = ""
    gates: tuple[GateValue, ...] = ()
    last_gate: str = ""
    results: tuple[ReleaseResult, ...] = ()
    elapsed: float = 0.0


class DemoRunner:
    def __init__(self, home: Path, *, stop: asyncio.Event, on_update: Callable[[DemoState], None] | None = None,
                 rate: float = 50.0, prometheus_address: str | None = None,
                 proxy_metrics_port: int | None = None) -> None:
        """With `prometheus_address` the gates are PromQL queries to that Prometheus, which is expected to
        scrape the ingress proxy's metrics on `proxy_metrics_port`."""
        self.home = home
        self.prometheus_address = prometheus_address
        self.proxy_metrics_port = proxy_metrics_port
        self.stop = stop
        self.rate = rate
        self._on_update = on_update or (lambda state: None)
        self.state = DemoState(home=str(home))
        self._started = time.monotonic()
        self._store: KubeStore | None = None
        self._operator_store: KubeStore | None = None
        self._started_cluster = False
        self._controller: asyncio.Task[None] | None = None
        self._load: LoadGenerator | None = None

    # -- public ------------------------------------------------------------------------------------

    async def run(self) -> tuple[ReleaseResult, ...]:
        HomeLock(self.home).acquire().release()  # fail fast, before writing, if a controller runs here
        try:
            await self._start_cluster()
            config = load_config(kubeconfig_path(self.home))
            self._store, self._operator_store = KubeStore(config), KubeStore(config)
            self._apply_objects(self._store)
            self._controller = asyncio.create_task(
                run_controller(self._operator_store, home=self.home, stop=self.stop,
                               prometheus_address=self.prometheus_address),
                name="demo-controller")
            port = await self._wait_ready(self._store)
            self._load = LoadGenerator(f"http://127.0.0.1:{port}/", rate=self.rate)
            self._load.start()
            self._publish(stage=f"serving {m.STABLE_IMAGE}", port=port)
            await self._sleep(WARMUP_SECONDS)
            results: list[ReleaseResult] = []
            for release in RELEASES:
                result = await self._release(self._store, release)
                results.append(result)
                self._publish(results=tuple(results))
            self._publish(stage="done", release=None)
            return tuple(results)
        finally:
            await self.close()

    async def _start_cluster(self) -> None:
        self._publish(stage="starting the local cluster")
        if await asyncio.to_thread(status, self.home) is not None:
            return  # the user's own cluster: used as it is, and left running
        options = RuntimeOptions(probe_period=PROBE_PERIOD, ingress_metrics_port=self.proxy_metrics_port)
        try:
            await asyncio.to_thread(start_background, self.home, runtime=options)
        except (OSError, RuntimeError) as exc:
            raise DemoStopped(f"cannot start the local cluster of {self.home}: {exc}") from exc
        self._started_cluster = True

    async def close(self) -> None:
        """Stop the load, the operator, and the local cluster with every pod when the demo started it;
        close the API clients; safe to call twice."""
        if self._load is not None:
            await self._load.stop()
        self.stop.set()
        if self._controller is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._controller), timeout=30)
            if not self._controller.done():
                self._controller.cancel()
                with contextlib.suppress(BaseException):
                    await self._controller
        for store in (self._store, self._operator_store):
            if store is not None:
                store.close()
        self._store = self._operator_store = None
        if self._started_cluster:
            await asyncio.to_thread(stop_background, self.home, 60.0)
            self._started_cluster = False

    # -- phases ------------------------------------------------------------------------------------

    def _apply_objects(self, store: ObjectStore) -> None:
        # A reused home may hold an earlier demo: start from the manifests again (deleting the Rollout
        # also deletes what it owns: ReplicaSets, pods, AnalysisRuns).
        objects = m.all_objects(prometheus=self.prometheus_address is not None)
        for obj in reversed(objects):
            with contextlib.suppress(NotFound):
                store.delete(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        for obj in objects:
            store.create(obj)

    async def _wait_ready(self, store: ObjectStore) -> int:
        self._publish(stage=f"starting the operator and {m.STABLE_IMAGE}")
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            rollout = store.get("Rollout", m.NAMESPACE, m.ROLLOUT)
            status = rollout.get("status") or {}
            self._show_rollout(rollout)
            port = _ingress_port(store)
            if port is not None and status.get("phase") == "Healthy" and status.get("availableReplicas") == 2:
                return port
            await self._sleep(POLL_SECONDS)
        raise DemoStopped(f"rollout {m.ROLLOUT} did not become Healthy within {READY_TIMEOUT:.0f}s")

    async def _release(self, store: ObjectStore, release: Release) -> ReleaseResult:
        assert self._load is not None
        before = self._load.snapshot()
        old_hash = (store.get("Rollout", m.NAMESPACE, m.ROLLOUT).get("status") or {}).get("currentPodHash")
        self._publish(stage=f"{release.label} release", release=release, gates=(), gate_run="",
                      gate_phase="", last_gate="")
        started = time.monotonic()
        store.patch("Rollout", m.NAMESPACE, m.ROLLOUT, {"spec": {"template": m.pod_template(release.image)}})
        deadline = started + RELEASE_TIMEOUT
        outcome = ""
        while not outcome:
            if time.monotonic() > deadline:
                outcome = f"no decision within {RELEASE_TIMEOUT:.0f}s"
                break
            rollout = store.get("Rollout", m.NAMESPACE, m.ROLLOUT)
            self._show_rollout(rollout)
            status = rollout.get("status") or {}
            pod_hash = status.get("currentPodHash")
            if status.get("abort"):
                outcome = ROLLED_BACK
            elif (pod_hash and pod_hash != old_hash and status.get("stableRS") == pod_hash
                  and status.get("phase") == "Healthy"):
                outcome = PROMOTED
            else:
                await self._sleep(POLL_SECONDS)
        seconds = time.monotonic() - started
        served = self._load.snapshot() - before
        detail = ""
        if outcome == ROLLED_BACK:
            detail = await self._verify_rolled_back(store, release)
        elif outcome == PROMOTED:
            image = _image(store.get("Rollout", m.NAMESPACE, m.ROLLOUT))
            detail = "" if image == release.image else f"the rollout runs {image} after the promotion"
        return ReleaseResult(release, outcome, seconds, served.by_version.get(release.version, 0),
                             served.failed, detail)

    async def _verify_rolled_back(self, store: ObjectStore, release: Release) -> str:
        """After an abort the canary weight must drop to 0 and every request must reach the stable version."""
        assert self._load is not None
        deadline = time.monotonic() + 10.0
        while True:
            rollout = store.get("Rollout", m.NAMESPACE, m.ROLLOUT)
            self._show_rollout(rollout)
            status = rollout.get("status") or {}
            weight = ((status.get("canary") or {}).get("weights") or {}).get("canary", {}).get("weight", 0)
            if weight == 0 and status.get("phase") == "Degraded":
                break
            if time.monotonic() > deadline:
                return f"after the abort: phase {status.get('phase')}, canary weight {weight}"
            await self._sleep(POLL_SECONDS)
        await self._sleep(1.0)  # requests already routed to the canary may still finish
        before = self._load.snapshot()
        await self._sleep(VERIFY_SECONDS)
        after = self._load.snapshot() - before
        stray = {v: n for v, n in after.by_version.items() if v != m.GOOD_IMAGE.rsplit(":", 1)[-1]}
        if not after.total or stray:
            return f"after the abort {after.total} requests were answered, {stray or 'none'} not by the stable"
        return ""

    # -- helpers -----------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        if self._controller is not None and self._controller.done():
            error = None if self._controller.cancelled() else self._controller.exception()
            if error is not None:
                raise DemoStopped(f"the controller stopped: {error}") from error
            raise DemoStopped("the controller stopped")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        if self.stop.is_set():
            raise DemoStopped("interrupted")
        if self._load is not None:
            self._publish(load=self._load.snapshot())

    def _show_rollout(self, rollout: dict[str, Any]) -> None:
        status = rollout.get("status") or {}
        steps = rollout["spec"]["strategy"]["canary"]["steps"]
        index = status.get("currentStepIndex")
        step_text, set_weight = "", None
        if isinstance(index, int):
            step_text = f"{min(index + 1, len(steps))}/{len(steps)}"
            if index < len(steps):
                step_text += " " + _describe(steps[index])
            else:
                step_text += " (all steps done)"
            for previous in steps[: index + 1]:
                if "setWeight" in previous:
                    set_weight = int(previous["setWeight"])
        canary = status.get("canary") or {}
        weight = ((canary.get("weights") or {}).get("canary") or {}).get("weight", 0)
        changes: dict[str, Any] = dict(step=step_text, set_weight=set_weight, canary_weight=int(weight or 0),
                                       phase=status.get("phase", ""), message=status.get("message") or "")
        run = (canary.get("currentStepAnalysisRunStatus") or {}).get("name") or self.state.gate_run
        if run and self._store is not None:
            with contextlib.suppress(NotFound):
                changes.update(_gate(self._store.get("AnalysisRun", m.NAMESPACE, run)))
        self._publish(**changes)

    def _publish(self, **changes: Any) -> None:
        changes.setdefault("elapsed", time.monotonic() - self._started)
        if self._load is not None:
            changes.setdefault("rate", self._load.rate)
        self.state = replace(self.state, **changes)
        self._on_update(self.state)


def _describe(step: dict[str, Any]) -> str:
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}"
    if "analysis" in step:
        return "analysis " + ", ".join(t.get("templateName", "?") for t in step["analysis"].get("templates", []))
    return next(iter(step), "")


def _gate(run: dict[str, Any]) -> dict[str, Any]:
    status = run.get("status") or {}
    values = []
    for result in status.get("metricResults") or []:
        measurements = result.get("measurements") or []
        last = measurements[-1] if measurements else {}
        values.append(GateValue(result.get("name", ""), _short(last.get("value", "")),
                                last.get("phase", "") or result.get("phase", "")))
    phase = status.get("phase", "") or "Pending"
    changes: dict[str, Any] = {"gate_run": run["metadata"]["name"], "gate_phase": phase, "gates": tuple(values)}
    if phase in ("Successful", "Failed", "Error", "Inconclusive"):
        changes["last_gate"] = f"{run['metadata']['name']}: {phase}"
    return changes


def _short(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value or "")


def _image(rollout: dict[str, Any]) -> str:
    containers = rollout["spec"]["template"]["spec"]["containers"]
    return str(next((c.get("image") for c in containers if c.get("name") == m.CONTAINER), ""))


def _ingress_port(store: ObjectStore) -> int | None:
    try:
        ingress = store.get("Ingress", m.NAMESPACE, m.INGRESS)
    except NotFound:
        return None
    raw = ((ingress.get("metadata") or {}).get("annotations") or {}).get(PORT_ANNOTATION)
    return int(raw) if raw else None
