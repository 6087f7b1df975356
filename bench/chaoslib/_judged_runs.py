"""The run loop the release-level families on one local operator share (metric-source, pod-faults): one local
cluster and operator (`rollouts controller` on a temporary home), an undisturbed control release first, which
must pass or nothing is judged (a failing control means the bench, not the fault, is broken), then the
faulted releases a few at a time on that same operator.
Not a family (no FAMILY): `bench/chaos.py` skips it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chaoslib import Outcome

Run = Callable[[Any], Outcome]  # one release on the operator (a tests.e2e.harness.ControllerProcess)


def control_then_faults(workdir: Path, control: Run, faulted: Sequence[Run], parallel: int) -> list[Outcome]:
    """`control` on a fresh operator; when it passes, every one of `faulted`, `parallel` at a time, in order.
    Returns the outcomes of `faulted`, or the control's alone when it failed."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.e2e.harness import ControllerProcess

    workdir.mkdir(parents=True, exist_ok=True)
    ctl = ControllerProcess(workdir / "home")
    ctl.start()
    try:
        first = control(ctl)
        if not first.ok:
            return [first]
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(run, ctl) for run in faulted]
            try:
                return [future.result() for future in futures]
            except BaseException:
                # An interrupted bench stops at the runs under way, not after every queued one.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        ctl.stop_leaving_no_pods()
