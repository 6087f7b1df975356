"""Canary pods that crash-loop or never become ready, on a real local cluster and operator behind its real
ingress: no request reaches them or is lost, they never appear in Endpoints, and the progress deadline
aborts the update naming the ReplicaSet (Argo's ProgressDeadlineExceeded wording)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaoslib import pod_faults  # noqa: E402

pytestmark = pytest.mark.integration


def test_pod_faults_crash_looping_canary_gets_no_traffic_and_the_deadline_aborts(tmp_path: Path) -> None:
    outcomes = pod_faults.run(1, seed=3, workdir=tmp_path, only="crash-loop")
    assert len(outcomes) == 1, [o.detail or o.final for o in outcomes]  # the control release promoted
    outcome = outcomes[0]
    assert outcome.ok and outcome.failures == 0, (outcome.final, outcome.detail)
    assert outcome.extra["requests"] > 0
