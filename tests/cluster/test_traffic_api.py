"""The /traffic/v1 paths of the API server answer exactly what the runtime's TrafficStats answers, with the
API's bearer-token auth and 400 Status on bad parameters; a server without a runtime answers zeros/nulls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollouts.runtime.local.traffic import TrafficStats
from rollouts.traffic_window import (
    bucket_of_upper_bound,
    bucket_upper_bound,
    window_from_json,
    window_to_json,
)
from tests.cluster.conftest import Cluster, start_cluster

NOW = 1_700_000_000.0
BASE = "/traffic/v1/namespaces/default/services/shop"


def _fed_stats() -> TrafficStats:
    stats = TrafficStats(clock=lambda: NOW)
    for i in range(120):
        at = NOW - 100 + i * 0.8
        stats.record("default", "shop", "stable", 200 if i % 7 else 503, 0.01 + i / 1000, at=at, pod_hash="aaa")
        if i % 2:
            stats.record("default", "shop", "canary", 500 if i % 5 == 0 else 200, 0.2 + i / 500, at=at,
                         pod_hash="bbb")
    stats.record("default", "shop", "canary", 503, 0.0, at=NOW - 3, served=False)  # no pod: not in windows
    stats.record("other", "shop", "stable", 200, 0.01, at=NOW - 1, pod_hash="aaa")
    return stats


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, TrafficStats]]:
    stats = _fed_stats()
    found, stop = start_cluster(tmp_path_factory.mktemp("traffic-home"), traffic=stats)
    yield found, stats
    stop()


def _get(cluster: Cluster, path: str, params: Any = None, token: str | None = "default") -> Any:
    with cluster.http(token) as http:
        return http.get(path, params=params)


WINDOWS = [
    ({"version": "canary", "seconds": "60", "now": str(NOW)},
     lambda s: s.window("default", "shop", "canary", 60, NOW)),
    ({"version": ["stable", "canary"], "seconds": "30.5", "now": str(NOW)},
     lambda s: s.window("default", "shop", ["stable", "canary"], 30.5, NOW)),
    ({"version": "stable", "seconds": "300", "now": str(NOW), "podHash": "aaa", "notBefore": str(NOW - 40.5)},
     lambda s: s.window("default", "shop", "stable", 300, NOW, pod_hash="aaa", not_before=NOW - 40.5)),
    ({"version": "stable", "seconds": "300", "now": str(NOW), "podHash": "bbb"},
     lambda s: s.window("default", "shop", "stable", 300, NOW, pod_hash="bbb")),
    ({"version": "canary", "seconds": "10"},  # no `now`: the server's clock (here, the stats' own)
     lambda s: s.window("default", "shop", "canary", 10)),
    ({"version": "stable", "seconds": "999999", "now": str(NOW)},
     lambda s: s.window("default", "shop", "stable", 999999, NOW)),
]


@pytest.mark.parametrize(("params", "expected"), WINDOWS,
                         ids=["one-version", "two-versions", "pod-hash-and-not-before", "other-hash",
                              "server-clock", "beyond-horizon"])
def test_traffic_window_endpoint_answers_as_traffic_stats(fed: tuple[Cluster, TrafficStats], params: Any,
                                                          expected: Any) -> None:
    cluster, stats = fed
    answer = _get(cluster, BASE + "/window", params)
    assert answer.status_code == 200, answer.text
    want = expected(stats)
    assert answer.json() == window_to_json(want)
    decoded = window_from_json(answer.json())
    assert decoded == want
    assert (decoded.p50, decoded.p99, decoded.error_rate) == (want.p50, want.p99, want.error_rate)


SINCES = [
    ({"version": "canary", "start": str(NOW - 90), "now": str(NOW)},
     lambda s: s.since("default", "shop", "canary", NOW - 90, NOW)),
    ({"version": ["canary", "stable"], "start": str(NOW - 3600 * 30), "now": str(NOW), "podHash": "aaa"},
     lambda s: s.since("default", "shop", ["canary", "stable"], NOW - 3600 * 30, NOW, pod_hash="aaa")),
]


@pytest.mark.parametrize(("params", "expected"), SINCES, ids=["since-start", "incomplete-with-hash"])
def test_traffic_since_endpoint_answers_as_traffic_stats(fed: tuple[Cluster, TrafficStats], params: Any,
                                                         expected: Any) -> None:
    cluster, stats = fed
    answer = _get(cluster, BASE + "/since", params)
    assert answer.status_code == 200, answer.text
    assert answer.json() == window_to_json(expected(stats))
    assert window_from_json(answer.json()) == expected(stats)


@pytest.mark.parametrize(("path", "params", "expected"), [
    ("/firstseen", {"version": "canary"}, lambda s: {"firstSeen": s.first_seen("default", "shop", "canary")}),
    ("/firstseen", {"version": ["canary", "stable"], "podHash": "bbb"},
     lambda s: {"firstSeen": s.first_seen("default", "shop", ["canary", "stable"], pod_hash="bbb")}),
    ("/firstseen", {"version": "preview"}, lambda s: {"firstSeen": None}),
    ("/rate", {"now": str(NOW)}, lambda s: {"requestRate": s.request_rate("default", "shop", NOW)}),
    ("/rate", {}, lambda s: {"requestRate": s.request_rate("default", "shop")}),
], ids=["first-seen", "first-seen-hash", "first-seen-never", "rate", "rate-server-clock"])
def test_traffic_first_seen_and_rate_endpoints_answer_as_traffic_stats(
        fed: tuple[Cluster, TrafficStats], path: str, params: Any, expected: Any) -> None:
    cluster, stats = fed
    answer = _get(cluster, BASE + path, params)
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected(stats)
    assert answer.json() != {"firstSeen": None} or params == {"version": "preview"}


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/window", {"version": "canary", "seconds": "abc"}, "seconds"),
    ("/window", {"version": "canary"}, "seconds"),
    ("/window", {"version": "canary", "seconds": "0"}, "seconds"),
    ("/window", {"version": "canary", "seconds": "nan"}, "seconds"),
    ("/window", {"seconds": "10"}, "version"),
    ("/window", {"version": "canary", "seconds": "10", "now": "yesterday"}, "now"),
    ("/window", {"version": "canary", "seconds": "10", "notBefore": "inf"}, "notBefore"),
    ("/since", {"version": "canary"}, "start"),
    ("/since", {"version": "canary", "start": "1", "now": "x"}, "now"),
    ("/firstseen", {}, "version"),
    ("/rate", {"now": "soon"}, "now"),
], ids=["seconds-not-number", "seconds-missing", "seconds-zero", "seconds-nan", "version-missing", "now-bad",
        "not-before-infinite", "start-missing", "since-now-bad", "first-seen-version-missing", "rate-now-bad"])
def test_traffic_endpoints_bad_parameters_are_400_status(fed: tuple[Cluster, TrafficStats], path: str,
                                                         params: Any, field: str) -> None:
    answer = _get(fed[0], BASE + path, params)
    assert answer.status_code == 400
    body = answer.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "BadRequest", 400)
    assert body["message"].startswith(field + ":")


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-token", "wrong-token"])
def test_traffic_endpoints_need_the_bearer_token(fed: tuple[Cluster, TrafficStats], token: str | None) -> None:
    answer = _get(fed[0], BASE + "/rate", token=token)
    assert answer.status_code == 401
    assert answer.json()["reason"] == "Unauthorized"


def test_traffic_unknown_path_is_404_status(fed: tuple[Cluster, TrafficStats]) -> None:
    answer = _get(fed[0], BASE + "/quantiles", {"version": "canary"})
    assert answer.status_code == 404 and answer.json()["reason"] == "NotFound"


def test_traffic_endpoints_without_runtime_answer_zeros_and_nulls(tmp_path: Path) -> None:
    cluster, stop = start_cluster(tmp_path)
    try:
        window = _get(cluster, BASE + "/window", {"version": "canary", "seconds": "60", "now": str(NOW)}).json()
        assert window == window_to_json(TrafficStats().window("default", "shop", "canary", 60, NOW))
        assert (window["requests"], window["errors"], window["latency"], window["complete"]) == (0, 0, [], True)
        since = _get(cluster, BASE + "/since", {"version": "canary", "start": str(NOW - 60), "now": str(NOW)})
        assert since.json()["requests"] == 0
        assert _get(cluster, BASE + "/firstseen", {"version": "canary"}).json() == {"firstSeen": None}
        assert _get(cluster, BASE + "/rate").json() == {"requestRate": None}
    finally:
        stop()


@pytest.mark.parametrize("index", [0, 1, 57, 400, 1000], ids=lambda i: f"bucket-{i}")
def test_traffic_latency_bounds_decode_to_their_bucket(index: int) -> None:
    assert bucket_of_upper_bound(bucket_upper_bound(index)) == index
