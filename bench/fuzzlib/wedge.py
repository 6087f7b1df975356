"""After a fuzz run: nothing stored may wedge the operator. Every stored object goes through the operator's
routing (`Router.keys`, the Rollout reference index), every Rollout through one `reconcile_rollout` and every
AnalysisRun through one `step_analysis_run`, over the same Kubernetes API the operator uses.

Counted per object: `escaped` (an exception out of the operator's code: a worker would die or spin),
`failed` (a reconcile failure the controller caught and reported, which it would retry forever), and
`unreadable` (an object the API admitted that the controller's models refuse: it would be ignored forever).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from rollouts.controller.loop import Controller
from rollouts.controller.operator import RolloutIndex, Router
from rollouts.kube.cache import DEFAULT_KINDS
from rollouts.kube.client import KubeStore
from rollouts.spec.analysis import AnalysisRun
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import NotFound

KINDS = (*DEFAULT_KINDS, "Experiment", "ConfigMap", "Secret")
WEDGING = ("unreadable", "failed", "escaped")  # the counts of which any one means an operator would wedge


@dataclass
class WedgeReport:
    objects: int = 0
    reconciled: int = 0
    unreadable: int = 0
    failed: int = 0
    escaped: int = 0
    slowest: float = 0.0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str, detail: str) -> None:
        if len(self.examples) < 8:
            self.examples.append(f"{what}: {detail[-1200:]}")

    @property
    def clean(self) -> bool:
        return clean(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def clean(report: Mapping[str, Any]) -> bool:
    """A report (as a `WedgeReport` or its JSON, which the fuzz driver gets from its worker) without a wedge."""
    return "error" not in report and not any(report[count] for count in WEDGING)


def line(report: Mapping[str, Any]) -> str:
    """The fuzz bench's `operator` line of a report, with the check's `seconds`, or why the check failed."""
    if "error" in report:
        return f"operator    check failed: {report['error'][:1500]}"
    return (f"operator    stored_objects={report['objects']} reconciled={report['reconciled']} "
            f"unreadable={report['unreadable']} reconcile_failures={report['failed']} escaped={report['escaped']} "
            f"slowest={report['slowest']:.2f}s total={report['seconds']:.1f}s")


class _StorePeek:
    """What `Router` asks its cache for (`peek`), answered from the API."""

    def __init__(self, store: KubeStore) -> None:
        self.store = store

    def peek(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.store.get(kind, namespace, name)
        except NotFound:
            return None


class _RecordingController(Controller):
    """The controller, noting every failure it reports instead of only logging it."""

    failures: list[str]

    def _report_failure(self, obj: Mapping[str, Any], exc: Exception, *, condition: bool) -> None:
        meta = obj.get("metadata") or {}
        self.failures.append(f"{obj.get('kind')} {meta.get('namespace')}/{meta.get('name')}: "
                             + "".join(traceback.format_exception(exc))[-1000:])
        super()._report_failure(obj, exc, condition=condition)


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace') or ''}/{meta.get('name')}"


async def _check(store: KubeStore, report: WedgeReport) -> None:
    controller = _RecordingController(store=store)
    controller.failures = []
    router = Router(_StorePeek(store), RolloutIndex())  # type: ignore[arg-type]
    for kind in KINDS:
        for obj in store.list(kind):
            report.objects += 1
            try:
                router.keys(kind, obj)
                if kind == "Rollout":
                    router.index.update(obj)
            except Exception as exc:  # noqa: BLE001 - that is what is counted
                report.escaped += 1
                report.note("escaped from routing", f"{_name(obj)}: {exc!r}")
    for kind, model, step in (("Rollout", Rollout, controller.reconcile_rollout),
                              ("AnalysisRun", AnalysisRun, controller.step_analysis_run)):
        for obj in store.list(kind):
            try:
                model.model_validate(obj)
            except ValidationError as exc:
                report.unreadable += 1
                report.note("unreadable", f"{_name(obj)}: {exc.errors()[0].get('loc')}: {exc.errors()[0].get('msg')}")
                continue
            before = len(controller.failures)
            started = time.monotonic()
            try:
                step(obj)
                report.reconciled += 1
            except Exception:  # noqa: BLE001 - that is what is counted
                report.escaped += 1
                report.note("escaped from the controller", f"{_name(obj)}: {traceback.format_exc()}")
            report.slowest = max(report.slowest, time.monotonic() - started)
            for failure in controller.failures[before:]:
                report.failed += 1
                report.note("reconcile failed", failure)
            await asyncio.sleep(0)  # let measurements the executor started begin (and fail) like in the operator
    await controller.executor.close()


def check_stored(store: KubeStore) -> WedgeReport:
    """Run every stored object through the operator's paths once (see the module docstring)."""
    report = WedgeReport()
    asyncio.run(_check(store, report))
    return report
