"""Process faults of the chaos bench (bench/chaos.py, families operator-kill, apiserver-restart and
leader-failover): the judgements they rest on, from the API server's write log (one actor at a time, 409s
re-read and retried); the driver (families found, the table, exit 1 on any failure); and one real run of two
families on a real local cluster with its operator, judged against an undisturbed run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rollouts.controller.loop import Controller
from rollouts.kube.client import KubeStore
from rollouts.kube.config import load_config
from tests.cluster.conftest import Cluster, start_cluster
from tests.cluster.conftest import rollout as cluster_rollout
from tests.e2e.harness import Write, actor_spans, conflicts_retried

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from chaoslib import Outcome, operator_kill  # noqa: E402
from chaoslib._release import Recorded  # noqa: E402
from chaoslib.leader_failover import overlaps  # noqa: E402

import chaos  # noqa: E402


def write(at: float, who: str, target: str = "default/shop/status", code: int = 200,
          resource: str = "rollouts.argoproj.io", verb: str = "update") -> Write:
    agent = f"rollouts-controller/{who}" if who else "rollouts"
    return Write(at, verb, resource, target, code, agent)


# (writes, the stopped leader, its successor, actions taken while another actor acted)
HANDOVERS = [
    ([write(1, "a"), write(2, "a"), write(5, "b"), write(6, "b")], "a", "b", 0),
    ([write(1, "a"), write(2, "", "default/shop"), write(5, "b")], "a", "b", 0),  # the CLI is no actor
    ([write(1, "a"), write(3, "b"), write(4, "a"), write(5, "b")], "a", "b", 3),  # interleaved
    ([write(1, "a"), write(3, "b"), write(4, "a")], "a", "b", 2),  # the stopped leader wrote after b began
    ([write(1, "a"), write(2, "b", "default/lock", resource="leases.coordination.k8s.io"), write(3, "a")],
     "a", "b", 0),  # Lease writes are the election, not actions
]


@pytest.mark.parametrize(("writes", "stopped", "successor", "expected"), HANDOVERS,
                         ids=["clean-handover", "cli-writes-ignored", "interleaved", "late-write", "lease-ignored"])
def test_leader_failover_counts_actions_of_two_actors_at_once(writes: list[Write], stopped: str, successor: str,
                                                              expected: int) -> None:
    assert overlaps(actor_spans(writes), stopped, successor) == expected


# (writes, (409s answered to an operator, of those written again afterwards))
CONFLICTS = [
    ([write(1, "a", code=409), write(2, "a")], (1, 1)),
    ([write(1, "a", code=409), write(2, "a", "default/other")], (1, 0)),  # another object is no retry
    ([write(1, "a"), write(2, "", code=409)], (0, 0)),  # a client's 409 is not the operator's
    ([write(1, "a", code=409, verb="create"), write(2, "a")], (0, 0)),  # AlreadyExists is no stale write
]


@pytest.mark.parametrize(("writes", "expected"), CONFLICTS,
                         ids=["retried", "not-retried", "other-client", "create-conflict"])
def test_apiserver_restart_counts_stale_writes_refused_and_retried(writes: list[Write],
                                                                   expected: tuple[int, int]) -> None:
    assert conflicts_retried(writes) == expected


def test_chaos_driver_finds_the_process_fault_families() -> None:
    found = chaos.families()
    assert {"operator-kill", "apiserver-restart", "leader-failover"} <= set(found)
    assert all(not module.__name__.split(".")[-1].startswith("_") for module in found.values())


def _fake(outcome: Outcome) -> ModuleType:
    module = ModuleType("fake")
    module.FAMILY = "fake"  # type: ignore[attr-defined]
    module.run = lambda runs, seed, workdir: [outcome] * runs  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(("outcome", "code"), [
    (Outcome("fake", "nothing", "Healthy", ok=True), 0),
    (Outcome("fake", "SIGKILL", "Healthy", ok=True, lost_writes=1), 1),
    (Outcome("fake", "SIGKILL", "Degraded", ok=False), 1),
], ids=["clean", "a-lost-write", "not-ok"])
def test_chaos_driver_exits_1_on_any_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], outcome: Outcome,
                                             code: int) -> None:
    monkeypatch.setattr(chaos, "families", lambda: {"fake": _fake(outcome)})
    assert chaos.main(["--runs", "2", "--families", "fake", "--workdir", str(tmp_path)]) == code
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:2] == ["family", "runs"]
    assert ("FAILED fake: SIGKILL" in printed) == bool(code)


# One real run of the operator-kill family; the API server's SIGKILL under a release is run for real by
# tests/e2e/test_apiserver_restart.py (the same fault, the same checks), so its bench family is not run twice.
@pytest.mark.integration
@pytest.mark.parametrize("family", [operator_kill], ids=["operator-kill"])
def test_process_fault_run_ends_as_the_undisturbed_release(family: ModuleType, tmp_path: Path) -> None:
    outcomes = family.run(1, 7, tmp_path)
    assert len(outcomes) == 1
    (outcome,) = outcomes
    assert outcome.failures == 0, (outcome.fault, outcome.final, outcome.detail)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Cluster, KubeStore]]:
    (tmp_path / "home").mkdir()
    found, stop = start_cluster(tmp_path / "home")
    store = KubeStore(load_config(kubeconfig=found.kubeconfig))
    try:
        yield found, store
    finally:
        store.close()
        stop()


def test_operator_decision_from_a_stale_read_is_refused_409_and_taken_again_from_a_fresh_one(
        api: tuple[Cluster, KubeStore]) -> None:
    """What the operator does with a view that missed a write (as a cache may after an API server restart):
    its status write carries the old resourceVersion, the API refuses it, the key is retried at once (0 s)
    from a fresh read, and nothing decided from the stale view is stored."""
    cluster, store = api
    store.create(cluster_rollout("shop", image="demo:1"))
    stale = store.get("Rollout", "default", "shop")  # before the first status write
    controller = Controller(store=store)
    controller.reconcile_rollout(store.get("Rollout", "default", "shop"))
    stored = store.get("Rollout", "default", "shop")
    assert stored["status"] and stored["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]

    assert controller.reconcile_rollout(stale) == 0.0  # refused: retried at once, not given up
    assert store.get("Rollout", "default", "shop") == stored  # nothing from the stale view was stored
    assert controller.reconcile_rollout(store.get("Rollout", "default", "shop")) != 0.0  # a fresh read: settled


def test_chaos_records_each_outcome_so_a_run_cut_short_still_prints_its_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = Recorded(tmp_path / "outcomes.jsonl")
    recorded.append(Outcome("operator-kill", "SIGKILL at analysis", "Healthy stable=new", ok=True, seconds=2.0,
                            extra={"repeated events": 0.0}))
    recorded.append(Outcome("operator-kill", "SIGKILL at abort", "Healthy stable=new", ok=False,
                            unsafe_promotions=1))
    assert chaos.main(["--from-records", str(recorded.path)]) == 1
    printed = capsys.readouterr().out
    assert printed.splitlines()[1].split()[:6] == ["operator-kill", "2", "1", "0", "1", "0"]
    assert "FAILED operator-kill: SIGKILL at abort" in printed
