"""The local cluster's API server SIGKILLed and started again under a running operator, mid-canary: the
operator's watches drop, its requests are refused for a while, its informers list again when the server is
back, and the release goes on from where it was to the same end as an undisturbed one (every step completed
once, the new revision stable). Pods outlive the cluster process, so no pod is restarted. A write carrying the
resourceVersion read before the outage is refused (409), and the operator's own refused writes are re-read and
retried."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollouts.cluster.apiserver.server import read_state
from tests.e2e.harness import RemoteCluster, conflicts_retried, stale_write_refused, wait_until
from tests.e2e.processes import alive
from tests.e2e.test_leader_failover import STEPPED

pytestmark = pytest.mark.integration


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[RemoteCluster]:
    with RemoteCluster(tmp_path) as cluster:
        cluster.start_operator("operator")
        yield cluster


def test_api_server_killed_and_restarted_mid_canary_release_ends_right(setup: RemoteCluster, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(STEPPED)
    setup.cli("apply", "-f", str(manifest))
    wait_until(lambda: setup.status("shop").get("phase") == "Healthy", 90, f"the first revision\n{setup.tails()}")
    setup.cli("set", "image", "shop", "shop=rollouts-demo:green")
    wait_until(lambda: int(setup.status("shop").get("currentStepIndex") or 0) >= 1, 60, f"the first step\n{setup.tails()}")

    pods = setup.pod_pids()
    before = setup.read("Rollout", "shop")
    assert before is not None
    port = setup.kill_apiserver()
    assert all(alive(pid) for pid in pods)  # pods are not the API server's to take down
    setup.up()
    restarted = read_state(setup.home)
    assert restarted is not None and restarted.port == port  # the kubeconfig the operator holds stays valid

    wait_until(lambda: (s := setup.status("shop")).get("phase") == "Healthy" and int(s.get("currentStepIndex") or 0) == 6,
               150, f"the release to complete after the restart\n{setup.tails()}")
    status = setup.status("shop")
    assert status["stableRS"] == status["currentPodHash"]
    assert setup.operators["operator"].poll() is None, "the operator exited while its API server was away"
    completed = [e for e in setup.events("shop") if e["reason"] == "RolloutStepCompleted" and "/6" in e["message"]]
    messages = [e["message"] for e in completed]
    assert len(messages) == len(set(messages)) == 6, messages
    assert all(int(e.get("count") or 1) == 1 for e in completed), completed
    # One promotion, one event: not said again by a decision taken again after the outage.
    promoted = [e for e in setup.events("shop") if e["reason"] == "RolloutCompleted" and status["stableRS"] in e["message"]]
    assert sum(int(e.get("count") or 1) for e in promoted) == 1, promoted
    assert "Traceback" not in setup.logs["operator"].read_text()
    # The operator's view from before the outage is stale now: a write carrying it is refused, not applied;
    # and every write of the operator the server refused as stale was re-read and written again.
    assert stale_write_refused(setup.kubeconfig, before)
    conflicts, retried = conflicts_retried(setup.writes())
    print(f"\noperator writes refused 409 across the restart: {conflicts}, re-read and written again: {retried}")
    assert conflicts == retried, setup.writes()
