"""The ingress proxy under 10x the demo load while a canary's weights change and the rollout is aborted:
the judge of bench family "proxy-load" (lost requests, answers from a revision out of the weights, the
split's chi-square bound) on hand-made cases, the proxy's "routes updated" line it times periods by, and
one real release under load on a real local cluster with its operator."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from rollouts.runtime.local.proxy import IngressProxy
from rollouts.runtime.local.services import ServiceBalancer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaoslib import proxy_load  # noqa: E402
from chaoslib.proxy_load import Answer, Period, judge, read_periods  # noqa: E402

CANARY = "v2"
# Weight 0 until t=10, 50 % until t=20, 0 again (the abort) from t=20.
PERIODS = [Period(0.0, 0), Period(10.0, 50), Period(20.0, 0)]


def split(start: float, n: int, canary_every: int) -> list[Answer]:
    """n answers sent and answered inside one period, every `canary_every`-th from the canary."""
    return [Answer(i, start + 0.001 * i + 0.01, start + 0.001 * i + 0.02, 200,
                   CANARY if canary_every and i % canary_every == 0 else proxy_load.STABLE) for i in range(n)]


def numbered(answers: list[Answer]) -> list[Answer]:
    return [Answer(i, a.sent, a.received, a.status, a.version) for i, a in enumerate(answers)]


CASES = {
    "clean": (numbered(split(1, 200, 0) + split(11, 400, 2) + split(21, 200, 0)), 0, 0, 0),
    "canary-after-abort-took-effect": (numbered(split(1, 200, 0) + split(11, 400, 2) + split(21, 200, 50)), 0, 4, 0),
    "canary-sent-before-abort-answered-after": (
        numbered(split(11, 400, 2) + [Answer(0, 19.99, 20.05, 200, CANARY)]), 0, 0, 0),
    "unknown-version": (numbered(split(11, 400, 2) + [Answer(0, 12.0, 12.1, 200, "v1-old")]), 0, 1, 0),
    "answered-503": (numbered(split(11, 400, 2) + [Answer(0, 12.0, 12.1, 503, "")]), 1, 0, 0),
    "split-skewed": (numbered(split(11, 400, 4)), 0, 0, 1),
    "stable-during-100-after-abort-service-switch": (
        numbered([Answer(0, 26.0, 26.1, 200, proxy_load.STABLE), Answer(0, 26.2, 26.3, 200, CANARY)]), 0, 0, 0),
}
FULL = [Period(0.0, 0), Period(25.0, 100)]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_proxy_load_judge(case: str) -> None:
    answers, lost, wrong, split_failures = CASES[case]
    periods = FULL if case.startswith("stable-during-100") else PERIODS
    verdict = judge(answers, len(answers), {a.index for a in answers}, periods, CANARY)
    assert (verdict.lost, verdict.wrong, verdict.split_failures) == (lost, wrong, split_failures), verdict.details
    assert verdict.stable_at_full == (1 if periods is FULL else 0)


def test_proxy_load_judge_counts_requests_missing_on_either_side() -> None:
    answers = numbered(split(11, 100, 2))
    unanswered = judge(answers[:-3], len(answers), {a.index for a in answers}, PERIODS, CANARY)
    assert unanswered.lost == 3
    not_logged = judge(answers, len(answers), {a.index for a in answers[:-2]}, PERIODS, CANARY)
    assert not_logged.lost == 2


def test_proxy_load_reads_weight_periods_from_the_cluster_log() -> None:
    log = "\n".join([
        "2026-12-02 04:02:31,001 INFO rollouts.runtime.local.proxy: ingress: routes updated: no canary routes",
        "2026-12-02 04:02:43,966 INFO rollouts.runtime.local.proxy: ingress: routes updated: default/shop */ canary "
        "default/shop-canary weight 10/100",
        "2026-12-02 04:02:44,000 INFO rollouts.cluster.apiserver.app: patch ingresses default/x -> 200",
        "2026-12-02 04:02:44,100 INFO rollouts.runtime.local.proxy: ingress: routes updated: default/shop */ canary "
        "default/shop-canary weight 10/100",
        "2026-12-02 04:02:46,704 INFO rollouts.runtime.local.proxy: ingress: routes updated: default/shop */ canary "
        "default/shop-canary weight 0/100",
    ])
    first = read_periods(log, since=0.0)
    assert [p.weight for p in first] == [0, 0, 10, 0]  # before any line, no canary; repeats merged
    assert round(first[3].start - first[2].start, 3) == 2.738
    later = read_periods(log, since=first[2].start + 1)
    assert [p.weight for p in later] == [10, 0]


def test_ingress_proxy_logs_canary_weights_when_it_swaps_its_routing_table(
        caplog: pytest.LogCaptureFixture) -> None:
    stable = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "shop"},
              "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                  "service": {"name": "shop-stable", "port": {"number": 80}}}}]}}]}}
    canary = {**stable, "metadata": {"name": "shop-canary", "annotations": {
        "nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "25"}},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "shop-canary", "port": {"number": 80}}}}]}}]}}
    caplog.set_level(logging.INFO, logger="rollouts.runtime.local.proxy")

    async def scenario() -> None:
        async with IngressProxy(ServiceBalancer()) as proxy:
            await proxy.update_ingresses([stable, canary])

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "routes updated" in r.getMessage()]
    assert lines == ["ingress: routes updated: default/shop */ canary default/shop-canary weight 25/100"]
    assert read_periods(f"2026-12-02 04:02:43,966 INFO x: {lines[0]}", 0.0)[-1].weight == 25


def test_proxy_at_ten_times_load_through_weights_and_abort_loses_and_misroutes_nothing(tmp_path: Path) -> None:
    [outcome] = proxy_load.run(1, 5, tmp_path, long_seconds=0, period=1.0)
    assert outcome.ok, outcome.detail
    assert outcome.wrong_routes == 0, outcome.detail
    assert outcome.extra["requests"] >= 800 and outcome.extra["rate"] >= 150, outcome.extra
