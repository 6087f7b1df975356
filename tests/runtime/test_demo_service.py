"""The demo service as a real process over real HTTP: answers, injected errors and latency, SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from rollouts.demo.prometheus import free_port
from rollouts.demo.service import ConfigError, DemoConfig

Start = Callable[..., tuple[str, subprocess.Popen[bytes]]]


def wait_healthy(url: str, process: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"demo service exited with {process.returncode}"
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} did not become healthy within {deadline_s}s")


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


@pytest.fixture
def start() -> Iterator[Start]:
    started: list[subprocess.Popen[bytes]] = []

    def run(**env: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "rollouts.demo.service"],
            env={**os.environ, "PORT": str(port), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        return url, process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()


def test_answers_root_color_and_healthz(start: Start) -> None:
    url, _ = start(COLOR="green", VERSION="v2")
    root = httpx.get(url + "/")
    assert root.status_code == 200
    assert root.json() == {"color": "green", "version": "v2"}
    assert root.headers["x-version"] == "v2"
    assert httpx.get(url + "/color").json() == "green"
    health = httpx.get(url + "/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    assert httpx.get(url + "/nope").status_code == 404


def test_starts_fast() -> None:
    port = free_port()
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "rollouts.demo.service"],
        env={**os.environ, "PORT": str(port)},
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
        # The target is < 0.5 s; the bound leaves room for a loaded CI machine.
        assert time.monotonic() - began < 1.5
    finally:
        process.kill()
        process.wait()


def status_of(url: str, path: str) -> int:
    # http.client rather than httpx: 500 sequential requests are the slow part of this suite.
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_error_rate_gives_about_a_fifth_500s_and_healthz_stays_up(start: Start) -> None:
    url, _ = start(COLOR="red", ERROR_RATE="0.2", SEED="7")
    statuses = [status_of(url, "/") for _ in range(500)]
    health = [status_of(url, "/healthz") for _ in range(50)]
    errors = statuses.count(500)
    assert set(statuses) <= {200, 500}
    assert 0.12 <= errors / 500 <= 0.28, errors
    assert set(health) == {200}


def test_latency_adds_about_a_second_to_root_only(start: Start) -> None:
    url, _ = start(COLOR="green", LATENCY_MS="1000")
    began = time.monotonic()
    assert httpx.get(url + "/", timeout=5).status_code == 200
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed <= 1.6, elapsed
    began = time.monotonic()
    httpx.get(url + "/healthz", timeout=5)
    assert time.monotonic() - began < 0.5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_finishes_in_flight_request_and_exits_zero(start: Start) -> None:
    url, process = start(COLOR="blue", LATENCY_MS="600")
    result: dict[str, int] = {}

    def slow_request() -> None:
        result["status"] = httpx.get(url + "/", timeout=5).status_code

    deadline = time.monotonic() + 5
    while threads_of(process.pid) != 1:  # the health check's handler thread has finished
        assert time.monotonic() < deadline, "the server kept extra threads"
        time.sleep(0.01)
    client = threading.Thread(target=slow_request)
    client.start()
    # In flight means a handler thread is serving it: wait for the server's second thread.
    while threads_of(process.pid) < 2:
        assert time.monotonic() < deadline, "the request never reached a handler thread"
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    client.join(timeout=5)
    assert result == {"status": 200}
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=0.5)


def test_missing_port_exits_with_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    done = subprocess.run(
        [sys.executable, "-m", "rollouts.demo.service"], env=env, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 2
    assert "PORT is required" in done.stderr


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"PORT": "http"}, "PORT: 'http' is not a whole number"),
        ({"PORT": "70000"}, "PORT: 70000 is not between 1 and 65535"),
        ({"PORT": "80", "ERROR_RATE": "1.5"}, "ERROR_RATE: 1.5 is not between 0 and 1"),
        ({"PORT": "80", "ERROR_RATE": "nan"}, "ERROR_RATE"),
        ({"PORT": "80", "LATENCY_MS": "-3"}, "LATENCY_MS: -3.0 is negative"),
        ({"PORT": "80", "SEED": "x"}, "SEED"),
    ],
    ids=["port-not-int", "port-range", "rate-range", "rate-nan", "latency-negative", "seed"],
)
def test_invalid_config(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        DemoConfig.from_env(env)
    assert fragment in str(err.value)


def test_config_defaults() -> None:
    config = DemoConfig.from_env({"PORT": "8080", "COLOR": "red"})
    assert (config.port, config.color, config.version, config.error_rate, config.latency_ms, config.seed) == (
        8080,
        "red",
        "red",
        0.0,
        0.0,
        None,
    )
