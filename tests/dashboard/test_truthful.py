"""12.9, the dashboard tells the truth (API side): the weight history of the current release from its stored
events, threshold lines from compound gate conditions, actions that do not apply refused with the reason the
page shows on hover, and the ReplicaSets of each revision with their pods."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rollouts.api.availability import availability
from rollouts.api.weights import weight_history
from rollouts.cluster.store import SQLiteStore
from tests.dashboard.helpers import AUTH, BASE, in_process_client, seed, seed_mid_release, seeded_db


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return seeded_db(tmp_path / "state.db", seed_mid_release)


@pytest.fixture
def client(db: Path) -> Iterator[TestClient]:
    with in_process_client(db) as http:
        yield http


def _event(reason: str, message: str, at: str, version: int = 0, **extra: Any) -> dict[str, Any]:
    return {"reason": reason, "message": message, "firstTimestamp": at, "lastTimestamp": extra.get("last", at),
            "metadata": {"resourceVersion": str(version)}}


T = "2024-01-01T00:00:"


@pytest.mark.parametrize(("events", "started", "points"), [
    ([], None, []),
    ([_event("RolloutUpdated", "Rollout updated to revision 2", T + "00Z")], T + "00Z", []),
    ([_event("TrafficWeightUpdated", "Traffic weight updated from 10 to 30", T + "20Z", 3),
      _event("RolloutUpdated", "Rollout updated to revision 2", T + "00Z", 1),
      _event("TrafficWeightUpdated", "Traffic weight updated from 0 to 10", T + "10Z", 2)],
     T + "00Z", [(T + "00Z", 0), (T + "10Z", 10), (T + "20Z", 30)]),
    ([_event("RolloutUpdated", "Rollout updated to revision 1", T + "00Z", 1),
      _event("TrafficWeightUpdated", "Traffic weight updated from 0 to 100", T + "05Z", 2),
      _event("RolloutUpdated", "Rollout updated to revision 2", T + "30Z", 3),
      _event("TrafficWeightUpdated", "Traffic weight updated from 0 to 20", T + "40Z", 4)],
     T + "30Z", [(T + "30Z", 0), (T + "40Z", 20)]),
    ([_event("RolloutUpdated", "Rollout updated to revision 2", T + "00Z", 1),
      _event("TrafficWeightUpdated", "Traffic weight updated from 0 to 10", T + "10Z", 2),
      _event("TrafficWeightUpdated", "weight garbled", T + "15Z", 3),
      _event("RolloutAborted", "Rollout aborted update to revision 2", T + "18Z", 4),
      _event("TrafficWeightUpdated", "Traffic weight updated from 10 to 0", T + "20Z", 5)],
     T + "00Z", [(T + "00Z", 0), (T + "10Z", 10), (T + "20Z", 0)]),
], ids=["no-events", "release-without-weights", "unordered", "earlier-release-left-out", "abort-back-to-zero"])
def test_weight_chart_history_drawn_from_release_start(events: list[dict[str, Any]], started: str | None,
                                                        points: list[tuple[str, int]]) -> None:
    found = weight_history(events)
    assert found.started_at == started
    assert [(p.time, p.weight) for p in found.points] == points


def test_weight_history_served_for_a_page_opened_mid_release(client: TestClient, db: Path) -> None:
    with SQLiteStore(db) as store:
        story = [e for e in store.list("Event", "default") if e["reason"] == "TrafficWeightUpdated"]
    expected = [0, 10, 30]
    served = client.get(f"{BASE}/weights").json()
    assert [p["weight"] for p in served["points"]] == expected
    assert served["points"][1]["time"] == next(e["firstTimestamp"] for e in story
                                                if e["message"] == "Traffic weight updated from 0 to 10")
    stream = _first_snapshot(client)
    assert [p["weight"] for p in stream["weightHistory"]["points"]] == expected


def _first_snapshot(client: TestClient) -> dict[str, Any]:
    import json

    with client.stream("GET", f"{BASE}/watch") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))
    raise AssertionError("no snapshot")


def test_gate_chart_threshold_lines_for_the_runbook_conditions(client: TestClient, db: Path) -> None:
    with SQLiteStore(db) as store:
        run = store.get("AnalysisRun", "default", "shop-bbb222-2-2")
        run["spec"]["metrics"][0]["successCondition"] = "len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.995"
        run["spec"]["metrics"][0]["failureCondition"] = "len(result) > 0 && !isNaN(result[0]) && result[0] < 0.995"
        store.update(run)
    [metric] = client.get(f"{BASE}/analysisruns").json()["items"][0]["metrics"]
    assert [(t["kind"], t["operator"], t["value"], t["index"]) for t in metric["thresholds"]] == [
        ("success", ">=", 0.995, 0), ("failure", "<", 0.995, 0)]


def _status(**fields: Any) -> dict[str, Any]:
    rollout = {"spec": {"strategy": {"canary": {"steps": [{"setWeight": 30}, {"pause": {}}]}}}, "status": {}}
    rollout["status"].update(fields)
    return rollout


MID = {"currentPodHash": "b", "stableRS": "a", "currentStepIndex": 1}
STATES = [
    ("mid-release", _status(**MID), {"promote", "promote-full", "abort", "pause", "restart"}),
    ("paused-step", _status(**MID, pauseConditions=[{"reason": "CanaryPauseStep"}]),
     {"promote", "promote-full", "abort", "pause", "resume", "restart"}),
    ("aborted", _status(**MID, abort=True), {"retry", "pause", "restart"}),
    ("healthy", _status(currentPodHash="a", stableRS="a", currentStepIndex=2), {"pause", "restart"}),
    ("paused-by-user", {**_status(currentPodHash="a", stableRS="a"), "spec": {"paused": True}}, {"resume", "restart"}),
]


@pytest.mark.parametrize(("rollout", "allowed"), [(r, a) for _, r, a in STATES], ids=[s[0] for s in STATES])
def test_actions_that_cannot_apply_are_disabled_with_a_reason(rollout: dict[str, Any], allowed: set[str]) -> None:
    found = availability(rollout)
    assert {verb for verb, a in found.items() if a.allowed} == allowed
    assert all(a.reason for a in found.values() if not a.allowed)
    assert all(not a.reason for a in found.values() if a.allowed)


def test_api_still_refuses_actions_the_page_disables(client: TestClient, db: Path) -> None:
    detail = _first_snapshot(client)
    assert detail["actions"]["retry"] == {"allowed": False, "reason": "retry applies only to an aborted rollout"}
    before = SQLiteStore(db).get("Rollout", "default", "shop")["metadata"]["resourceVersion"]
    refused = client.post(f"{BASE}/retry", headers=AUTH)
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("retry does not apply to rollout default/shop now: "
                                        "retry applies only to an aborted rollout")
    live = next(r["revision"] for r in detail["history"] if r["live"])
    undo = client.post(f"{BASE}/undo/{live}", headers=AUTH)
    assert undo.status_code == 409 and "already the rollout's pod template" in undo.json()["detail"]
    with SQLiteStore(db) as store:
        assert store.get("Rollout", "default", "shop")["metadata"]["resourceVersion"] == before
    assert client.post(f"{BASE}/abort", headers=AUTH).status_code == 200
    assert client.get(f"{BASE}/actions").json()["abort"]["reason"] == "the rollout is already aborted"
    assert client.post(f"{BASE}/abort", headers=AUTH).status_code == 409
    assert client.post(f"{BASE}/retry", headers=AUTH).status_code == 200


def test_replica_set_and_pod_view_per_revision(client: TestClient) -> None:
    revisions = client.get(BASE).json()["revisions"]
    by_rs = {rs["name"]: rs for rev in revisions for rs in rev["replicaSets"]}
    canary = by_rs["shop-bbb222"]
    assert canary["canary"] and canary["images"] == ["rollouts-demo:yellow"]
    assert [(p["name"], p["status"], p["ready"]) for p in canary["pods"]] == [
        ("shop-bbb222-y1", "Running", "1/1"), ("shop-bbb222-y2", "CrashLoopBackOff", "0/1")]
    assert by_rs["shop-aaa111"]["stable"] and len(by_rs["shop-aaa111"]["pods"]) == 2


def test_seed_without_release_events_has_no_weight_history(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "state.db") as store:
        seed(store)
        for item in store.list("Event", "default"):
            store.delete("Event", "default", item["metadata"]["name"])
    with in_process_client(tmp_path / "state.db") as http:
        assert http.get(f"{BASE}/weights").json() == {"startedAt": None, "points": []}
