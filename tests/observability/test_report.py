"""`rollouts report`: release metrics from a synthetic history of revisions and events, to the second."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.cluster.conftest import start_cluster
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from rollouts.cluster.store import SQLiteStore
from rollouts.report.releases import (
    Release,
    assess_releases,
    build_releases,
    format_seconds,
    parse_window,
    sparkline,
)
from rollouts.store.home import database_path

NOW = datetime(2024, 3, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Rev:
    revision: int
    created_at: str
    outcome: str = "current"
    updated_at: str = ""


def event(reason: str, message: str, when: str, count: int = 1, last: str | None = None) -> dict[str, Any]:
    return {"kind": "Event", "metadata": {"namespace": "default", "creationTimestamp": when},
            "involvedObject": {"kind": "Rollout", "name": "shop"}, "reason": reason, "message": message,
            "firstTimestamp": when, "lastTimestamp": last or when, "count": count}


REVISIONS = [
    Rev(1, "2024-02-20T00:00:00Z", "promoted", "2024-02-20T00:10:00Z"),  # before the window
    Rev(2, "2024-03-10T00:00:00Z", "promoted", "2024-03-10T00:20:00Z"),
    Rev(3, "2024-03-15T00:00:00Z", "aborted", "2024-03-15T00:05:00Z"),
    Rev(4, "2024-03-15T01:00:00Z", "promoted", "2024-03-15T01:30:00Z"),
    Rev(5, "2024-03-30T00:00:00Z", "aborted", "2024-03-30T00:10:00Z"),  # its events were pruned
    Rev(6, "2024-03-30T12:00:00Z"),  # still progressing
]
EVENTS = [
    event("RolloutCompleted", "Rollout completed update to revision 1 (a1): Initial deploy", "2024-02-20T00:10:00Z"),
    event("RolloutUpdated", "Rollout updated to revision 2", "2024-03-10T00:00:00Z"),
    event("ScalingReplicaSet", "Scaled up ReplicaSet shop-b2 (revision 2) from 0 to 1", "2024-03-10T00:00:05Z"),
    # The event says when it really completed; the outcome's updated_at is later (a history refresh).
    event("RolloutCompleted", "Rollout completed update to revision 2 (b2): Fully promoted", "2024-03-10T00:15:00Z"),
    event("RolloutAborted", "Rollout aborted update to revision 3: analysis failed", "2024-03-15T00:05:00Z"),
    event("RolloutCompleted", "Rollout completed update to revision 4 (d4): Fully promoted", "2024-03-15T01:30:00Z"),
]


def test_releases_pair_revisions_with_their_completion_and_abort() -> None:
    releases = build_releases(REVISIONS, EVENTS)
    got = [(r.revision, r.lead_time, r.aborted.isoformat() if r.aborted else None) for r in releases]
    assert got == [
        (1, 600.0, None),
        (2, 900.0, None),
        (3, None, "2024-03-15T00:05:00+00:00"),
        (4, 1800.0, None),
        (5, None, "2024-03-30T00:10:00+00:00"),
        (6, None, None),
    ]


def test_report_numbers_for_thirty_days() -> None:
    report = assess_releases("default", "shop", build_releases(REVISIONS, EVENTS), since=timedelta(days=30),
                             now=NOW, service="shop-stable")
    assert (report.releases, report.completed, report.aborted) == (5, 2, 2)
    assert report.deployment_frequency == pytest.approx(5 / 30)
    assert (report.lead_time.median, report.lead_time.mean) == (1350.0, 1350.0)
    assert report.change_failure_rate == pytest.approx(0.4)
    # Revision 3 aborted at 00:05 and revision 4 completed at 01:30; revision 5 is not restored yet.
    assert (report.time_to_restore.median, report.unrestored) == (5100.0, 1)
    expected_daily = [0] * 30
    for index in (8, 13, 14, 28, 29):  # 21, 16, 15.96, 1 and 0.5 days ago
        expected_daily[index] = 1
    assert list(report.daily) == expected_daily
    assert report.to_dict()["changeFailureRate"] == pytest.approx(0.4)


def test_retried_release_counts_as_a_failure_and_its_completion_restores() -> None:
    releases = [Release(7, datetime(2024, 3, 20, tzinfo=UTC), completed=datetime(2024, 3, 20, 2, tzinfo=UTC),
                        aborted=datetime(2024, 3, 20, 0, 30, tzinfo=UTC))]
    report = assess_releases("default", "shop", releases, since=timedelta(days=14), now=NOW)
    assert (report.releases, report.completed, report.aborted, report.change_failure_rate) == (1, 1, 1, 1.0)
    assert report.time_to_restore.median == 5400.0
    assert report.lead_time.median == 7200.0


def test_aggregated_abort_event_counts_its_last_occurrence_too() -> None:
    events = [event("RolloutAborted", "Rollout aborted update to revision 3", "2024-03-15T00:05:00Z", count=2,
                    last="2024-03-16T00:00:00Z")]
    releases = build_releases([Rev(3, "2024-03-15T12:00:00Z")], events)  # re-created after the first abort
    assert releases[0].aborted == datetime(2024, 3, 16, tzinfo=UTC)


def test_empty_history() -> None:
    report = assess_releases("default", "shop", [], since=timedelta(days=7), now=NOW)
    assert (report.releases, report.change_failure_rate, report.lead_time.median) == (0, None, None)
    assert report.daily == (0,) * 7


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 2592000), ("2w", 1209600), ("12h", 43200), ("1d12h", 129600), ("90m", 5400)],
    ids=["days", "weeks", "hours", "combined", "minutes"],
)
def test_parse_window(text: str, seconds: int) -> None:
    assert parse_window(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["30", "d", "30x", "0d", "1d 2h"], ids=["no-unit", "no-number", "bad-unit",
                                                                          "zero", "space"])
def test_parse_window_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_window(text)


@pytest.mark.parametrize(
    ("values", "line"),
    [([0, 0, 0], "▁▁▁"), ([0, 1, 2, 4], "▁▃▅█"), ([3], "█")],
    ids=["zeros", "scaled", "single"],
)
def test_sparkline(values: list[int], line: str) -> None:
    assert sparkline(values) == line


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (42, "42s"), (1350, "22m30s"), (5100, "1h25m"),
                                               (3 * 86400 + 7200, "3d02h")], ids=str)
def test_format_seconds(seconds: float | None, text: str) -> None:
    assert format_seconds(seconds) == text


# --- the command against a real store ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _rollout(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"strategy": {"canary": {"stableService": f"{name}-stable"}}}}


def _populate(home: Path) -> datetime:
    """Two releases of shop (one aborted, then fixed) and one of cart in another namespace."""
    clock = Clock()
    start = clock.now - timedelta(days=2)
    store = SQLiteStore(database_path(home), clock=clock)
    try:
        store.create(_rollout("shop", "default"))
        store.create(_rollout("cart", "team"))

        def at(offset: timedelta) -> None:
            clock.now = start + offset

        def emit(ns: str, name: str, reason: str, message: str) -> None:
            store.record_event({"kind": "Rollout", "namespace": ns, "name": name}, "Normal", reason, message)

        at(timedelta(0))
        store.record_revision("default", "shop", 1, "aaa", {"shop": "shop:1"}, {})
        at(timedelta(minutes=10))
        emit("default", "shop", "RolloutCompleted", "Rollout completed update to revision 1 (aaa): Initial deploy")
        at(timedelta(hours=1))
        store.record_revision("default", "shop", 2, "bbb", {"shop": "shop:2"}, {})
        at(timedelta(hours=1, minutes=4))
        emit("default", "shop", "RolloutAborted", "Rollout aborted update to revision 2: analysis failed")
        at(timedelta(hours=1, minutes=30))
        store.record_revision("default", "shop", 3, "ccc", {"shop": "shop:3"}, {})
        at(timedelta(hours=1, minutes=44))
        emit("default", "shop", "RolloutCompleted", "Rollout completed update to revision 3 (ccc): Fully promoted")
        at(timedelta(hours=3))
        store.record_revision("team", "cart", 1, "ddd", {"cart": "cart:1"}, {})
    finally:
        store.close()
    return start


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Path]:
    """_populate's home served API-only: `report` reads it through the Kubernetes API (its release history
    from each rollout's `<rollout>.rollout-history` ConfigMap), not from the SQLite file."""
    _populate(tmp_path)
    _, stop = start_cluster(tmp_path)
    try:
        yield tmp_path
    finally:
        stop()


def test_report_command_json(populated: Path) -> None:
    tmp_path = populated
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--home", str(tmp_path), "--since", "7d", "-o", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    [shop] = body["rollouts"]
    assert (shop["rollout"], shop["service"], shop["releases"], shop["completed"], shop["aborted"]) == (
        "shop", "shop-stable", 3, 2, 1)
    assert shop["deploymentFrequencyPerDay"] == pytest.approx(3 / 7)
    assert shop["leadTimeSeconds"] == {"median": 720.0, "mean": 720.0}  # 10 min and 14 min
    assert shop["changeFailureRate"] == pytest.approx(1 / 3)
    assert shop["timeToRestoreSeconds"] == {"median": 2400.0, "mean": 2400.0}  # 01:04 -> 01:44
    assert shop["unrestored"] == 0
    assert sum(shop["daily"]) == 3 and len(shop["daily"]) == 7

    result = runner.invoke(app, ["report", "--home", str(tmp_path), "-A", "-o", "json"])
    assert [(r["namespace"], r["rollout"], r["releases"]) for r in json.loads(result.output)["rollouts"]] == [
        ("default", "shop", 3), ("team", "cart", 1)]


def test_report_command_table(populated: Path) -> None:
    tmp_path = populated
    result = CliRunner().invoke(app, ["report", "--home", str(tmp_path), "-n", "default"])
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("shop")]
    assert row.split()[:7] == ["shop", "shop-stable", "3", "0.10", "12m", "33%", "(1/3)"]
    assert "40m" in row and "▁" in row


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--since", "soon"], "--since: 'soon' is not a window"), (["-o", "yaml"], '--output: "yaml"'),
     (["-A", "-n", "x"], "exclude each other")],
    ids=["bad-window", "bad-output", "namespace-and-all"],
)
def test_report_command_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["report", "--home", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in result.output


def test_report_reads_release_history_written_through_the_api(tmp_path: Path) -> None:
    """On any cluster: a rollout whose history a client wrote through the Kubernetes API (its
    `<rollout>.rollout-history` ConfigMap) and whose events are core/v1 Events is reported from them,
    with --kubeconfig choosing that cluster over the home."""
    from tests.cluster.conftest import rollout

    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config

    cluster_home = tmp_path / "cluster"
    cluster_home.mkdir()
    cluster, stop = start_cluster(cluster_home)
    try:
        with KubeStore(load_config(kubeconfig=cluster.kubeconfig)) as api:
            api.create(rollout("shop"))
            api.record_revision("default", "shop", 1, "aaa", {"app": "demo:1"}, {})
            api.record_event({"kind": "Rollout", "namespace": "default", "name": "shop"}, "Normal",
                             "RolloutCompleted", "Rollout completed update to revision 1 (aaa): Initial deploy")
            assert api.get("ConfigMap", "default", "shop.rollout-history")["data"]["revision-1"]
        result = CliRunner().invoke(app, ["report", "--home", str(tmp_path / "unused-home"), "--kubeconfig",
                                          str(cluster.kubeconfig), "-o", "json"])
    finally:
        stop()
    assert result.exit_code == 0, result.output
    [shop] = json.loads(result.output)["rollouts"]
    assert (shop["rollout"], shop["releases"], shop["completed"], shop["aborted"]) == ("shop", 1, 1, 0)
    assert not (tmp_path / "unused-home" / "kubeconfig").exists()  # the home's local cluster was not started
