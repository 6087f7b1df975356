"""The checks that run before any dashboard endpoint (12.5 a, 20.7): the strict Host header, the token of a
mutation before its body is read, the 1 MiB body cap, and the caps on open event streams."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.dashboard.helpers import AUTH, BASE, in_process_client, live_server, seed, seeded_db


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return seeded_db(tmp_path / "state.db", seed)


@pytest.fixture
def client(db: Path) -> Iterator[TestClient]:
    with in_process_client(db) as http:
        yield http


def raw_request(url: str, head: str, body: bytes = b"", *, timeout: float = 5.0) -> bytes:
    """Sends `head` (request line and headers, CRLF-separated, no final blank line) exactly as written."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        answer = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


HOSTS = [
    ("localhost:3100", 200),
    ("127.0.0.1:3100", 200),
    ("127.0.0.1", 200),
    ("[::1]:3100", 200),
    ("LOCALHOST:3100", 200),
    ("localhost:3100@evil.example", 400),
    ("evil.example@localhost:3100", 400),
    ("localhost:3100:80", 400),
    ("localhost:31oo", 400),
    ("localhost:99999", 400),
    ("localhost/evil", 400),
    ("localhost evil", 400),
    ("[::1", 400),
    ("[::1]x", 400),
    ("[evil.example]:3100", 400),
    (":3100", 400),
    ("rebound.example:3100", 421),
    ("127.0.0.1.evil.example", 421),
    ("localhost.evil.example:3100", 421),
]


@pytest.mark.parametrize(("host", "status"), HOSTS, ids=[h for h, _ in HOSTS])
def test_host_header_parsed_strictly_on_the_dashboard(client: TestClient, host: str, status: int) -> None:
    response = client.get("/api/v1/rollouts", headers={"Host": host})
    assert response.status_code == status, response.text
    if status != 200:
        assert "shop" not in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'self'")


def test_userinfo_host_refused_on_the_wire(db: Path) -> None:
    """The probe's request, byte for byte: it got a 200 with the rollout list before."""
    with live_server(db) as url:
        port = urlsplit(url).port
        answer = raw_request(url, f"GET /api/v1/rollouts HTTP/1.1\r\nHost: localhost:{port}@evil.example\r\n"
                                  "Connection: close")
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        ok = raw_request(url, f"GET /api/v1/rollouts HTTP/1.1\r\nHost: localhost:{port}\r\n"
                              f"Authorization: {AUTH['Authorization']}\r\nConnection: close")
        assert ok.startswith(b"HTTP/1.1 200"), ok[:300]


def test_non_loopback_bind_still_refuses_malformed_hosts(db: Path) -> None:
    with in_process_client(db, bind_host="0.0.0.0", base_url="http://10.1.2.3:3100") as http:
        assert http.get("/api/v1/rollouts", headers={**AUTH, "Host": "dash.example:3100"}).status_code == 200
        assert http.get("/api/v1/rollouts", headers={**AUTH, "Host": "a:1@dash.example"}).status_code == 400


def test_mutation_token_checked_before_the_body_is_read(db: Path) -> None:
    """A 64 MiB Content-Length and no body at all: the answer must come without waiting for the body."""
    with live_server(db) as url:
        head = (f"POST {BASE}/set-image HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {64 * 1024 * 1024}")
        started = time.monotonic()
        missing = raw_request(url, head, timeout=3)
        wrong = raw_request(url, head + "\r\nAuthorization: Bearer wrong-token-wrong-token", timeout=3)
        elapsed = time.monotonic() - started
    assert missing.startswith(b"HTTP/1.1 401"), missing[:300]
    assert b"www-authenticate: Bearer" in missing
    assert wrong.startswith(b"HTTP/1.1 403"), wrong[:300]
    assert elapsed < 3


def test_read_with_a_declared_huge_body_is_refused_without_reading_it(db: Path) -> None:
    with live_server(db) as url:
        answer = raw_request(url, f"GET /api/v1/rollouts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  f"Authorization: {AUTH['Authorization']}\r\n"
                                  f"Content-Length: {64 * 1024 * 1024}", timeout=3)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]


def test_body_over_one_mib_is_refused_with_413(db: Path) -> None:
    with live_server(db) as url, httpx.Client(base_url=url, timeout=10, headers=AUTH) as http:
        big = b'{"container": "shop", "image": "' + b"x" * (1024 * 1024) + b'"}'
        declared = http.post(f"{BASE}/set-image", content=big, headers={**AUTH, "Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text
        assert "larger than 1048576 bytes" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
            yield big[: len(big) // 2]
            yield big[len(big) // 2:]

        chunked = http.post(f"{BASE}/set-image", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        assert chunked.status_code == 413, chunked.text
        ok = http.post(f"{BASE}/set-image", json={"container": "shop", "image": "rollouts-demo:green"}, headers=AUTH)
        assert ok.status_code == 200, ok.text


def _open_stream(http: httpx.Client, path: str, opened: threading.Event, stop: threading.Event,
                 statuses: list[int]) -> None:
    with http.stream("GET", path) as response:
        statuses.append(response.status_code)
        if response.status_code != 200:
            return
        for line in response.iter_lines():
            if line.startswith("event: snapshot"):
                opened.set()
            if stop.is_set():
                return


@pytest.mark.parametrize(("limits", "status", "text"), [
    ({"max_streams_per_client": 2, "max_streams": 10}, 429, "at most 2 per client"),
    ({"max_streams_per_client": 10, "max_streams": 2}, 503, "already serves 2 event streams"),
], ids=["per-client", "in-all"])
def test_event_streams_are_capped(db: Path, limits: dict[str, int], status: int, text: str) -> None:
    with live_server(db, heartbeat=0.1, **limits) as url, httpx.Client(base_url=url, timeout=10, headers=AUTH) as http:
        stop = threading.Event()
        statuses: list[int] = []
        threads = []
        for _ in range(2):
            opened = threading.Event()
            thread = threading.Thread(target=_open_stream, args=(http, "/api/v1/rollouts/default/watch", opened,
                                                                  stop, statuses), daemon=True)
            thread.start()
            threads.append(thread)
            assert opened.wait(10), statuses
        refused = http.get(f"{BASE}/watch")
        assert refused.status_code == status, refused.text
        assert text in refused.json()["detail"]
        stop.set()
        for thread in threads:
            thread.join(10)
        # A closed stream gives its place back (the server notices at its next heartbeat).
        deadline = time.monotonic() + 10
        while True:
            with http.stream("GET", f"{BASE}/watch") as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "a closed stream never gave its place back"
            time.sleep(0.05)
    assert statuses == [200, 200]
