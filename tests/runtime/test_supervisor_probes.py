"""Readiness probes: planning from the manifest, threshold counting, and real checks over sockets."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.runtime.local.images import ImageMap, ImageResolver
from rollouts.runtime.local.probes import ProbePlan, ReadinessTracker, check_once, plan_readiness
from rollouts.runtime.local.supervisor import PodSupervisor
from rollouts.spec.pod import Container


def container(probe: dict[str, Any] | None = None) -> Container:
    fields: dict[str, Any] = {
        "name": "app",
        "image": "rollouts-demo:blue",
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    if probe is not None:
        fields["readinessProbe"] = probe
    return Container.model_validate(fields)


PLANS = [
    (None, 1.0, {"kind": "tcp", "port": 5000, "period": 1.0, "failure_threshold": 3}),
    (None, None, {"kind": "tcp", "period": 10.0}),
    (
        {"httpGet": {"path": "/healthz", "port": "http"}},
        1.0,
        {"kind": "http", "path": "/healthz", "port": 8080},
    ),
    ({"httpGet": {"port": 9102}}, 1.0, {"kind": "http", "port": 9102}),
    ({"httpGet": {"port": "metrics"}}, 1.0, {"kind": "http", "port": 5000}),
    (
        {"httpGet": {"path": "ready", "port": 8080, "scheme": "HTTPS"}},
        1.0,
        {"path": "/ready", "scheme": "https"},
    ),
    ({"httpGet": {"port": 8080}, "periodSeconds": 5}, None, {"path": "/", "period": 5.0}),
    ({"httpGet": {"port": 8080}, "periodSeconds": 5}, 0.5, {"period": 0.5}),
    (
        {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 2, "timeoutSeconds": 3},
        1.0,
        {"kind": "tcp", "initial_delay": 2.0, "timeout": 3.0},
    ),
    (
        {"exec": {"command": ["true"]}, "failureThreshold": 1, "successThreshold": 2},
        1.0,
        {"kind": "exec", "command": ("true",), "failure_threshold": 1, "success_threshold": 2},
    ),
    ({"grpc": {"port": 9000}}, 1.0, {"kind": "tcp", "port": 5000}),
]


@pytest.mark.parametrize("probe", [{"httpGet": {"port": "http"}}, {"httpGet": {"port": 8080}},
                                   {"tcpSocket": {"port": 9000}}], ids=["named", "number", "tcp-number"])
def test_probe_of_a_container_declaring_no_port_hits_its_one_port(probe: dict[str, Any]) -> None:
    bare = Container.model_validate({"name": "app", "image": "rollouts-demo:blue", "readinessProbe": probe})
    plan = plan_readiness(bare, 5000, host="127.1.0.7")
    assert (plan.host, plan.port) == ("127.1.0.7", 5000)


@pytest.mark.parametrize(
    ("probe", "override", "expected"),
    PLANS,
    ids=[
        "default-tcp",
        "default-k8s-period",
        "http-named-port-is-its-container-port",
        "http-port-number-as-given",
        "http-unknown-name-is-the-pod-port",
        "http-relative-path-https",
        "manifest-period-honoured",
        "override-wins",
        "tcp-fields",
        "exec-thresholds",
        "grpc-falls-back-to-tcp",
    ],
)
def test_plan_readiness(
    probe: dict[str, Any] | None, override: float | None, expected: dict[str, Any]
) -> None:
    plan = plan_readiness(container(probe), 5000, probe_period=override)
    assert {k: getattr(plan, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("success", "failure", "results", "states"),
    [
        (1, 3, [False, True, False, False, False, True], [False, True, True, True, False, True]),
        (2, 1, [True, False, True, True, False], [False, False, False, True, False]),
        (3, 2, [True, True, True, False, True, False, False], [False, False, True, True, True, True, False]),
    ],
    ids=["defaults", "two-successes-one-failure", "three-two"],
)
def test_tracker_thresholds(success: int, failure: int, results: list[bool], states: list[bool]) -> None:
    tracker = ReadinessTracker(success, failure)
    assert [tracker.observe(r) for r in results] == states


@given(st.integers(1, 5), st.integers(1, 5), st.lists(st.booleans(), max_size=40))
def test_tracker_changes_only_after_a_full_run(success: int, failure: int, results: list[bool]) -> None:
    tracker = ReadinessTracker(success, failure)
    previous = False
    for i, ok in enumerate(results):
        ready = tracker.observe(ok)
        if ready != previous:
            need = success if ready else failure
            run = results[max(0, i - need + 1) : i + 1]
            assert len(run) == need and all(r == ready for r in run)
        previous = ready


async def serve(status: int) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (302, True), (404, False), (500, False)], ids=["200", "302", "404", "500"]
)
def test_http_check_status_classes(status: int, ok: bool) -> None:
    async def scenario() -> bool:
        server, port = await serve(status)
        async with server:
            return await check_once(ProbePlan(kind="http", port=port, path="/healthz"))

    assert asyncio.run(scenario()) is ok


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_checks_fail_on_a_closed_port_and_on_header_injection() -> None:
    async def scenario() -> list[bool]:
        server, port = await serve(200)
        async with server:
            return [
                await check_once(ProbePlan(kind="tcp", port=closed_port())),
                await check_once(ProbePlan(kind="http", port=closed_port())),
                await check_once(ProbePlan(kind="tcp", port=port)),
                await check_once(ProbePlan(kind="http", port=port, headers=(("X-A", "b\r\nEvil: 1"),))),
                await check_once(ProbePlan(kind="http", port=port, headers=(("X-A", "fine"),))),
            ]

    assert asyncio.run(scenario()) == [False, False, True, False, True]


def test_exec_check_uses_exit_code_and_env() -> None:
    code = "import os, sys; sys.exit(0 if os.environ.get('WANT') == 'yes' else 1)"
    plan = ProbePlan(kind="exec", port=0, command=(sys.executable, "-c", code), timeout=10)

    async def scenario() -> list[bool]:
        return [await check_once(plan, {"WANT": "yes"}), await check_once(plan, {"WANT": "no"})]

    assert asyncio.run(scenario()) == [True, False]


def test_http_probe_on_a_named_port_makes_a_demo_pod_ready(tmp_path: Path) -> None:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 30}

    async def scenario() -> None:
        sup = PodSupervisor(tmp_path, images=ImageResolver(image_map=ImageMap()), probe_period=0.1)
        try:
            await sup.ensure_pod("probed", {}, container(probe))
            deadline = time.monotonic() + 10
            while not (state := sup.pod("probed")) or not state.ready:
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.02)
        finally:
            await sup.close()

    asyncio.run(scenario())
