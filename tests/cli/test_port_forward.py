"""`rollouts port-forward`: bytes reach the Service's local listener and come back; its errors."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.cli import interrupting
from tests.cli.verbs_support import run, seeded_home, store


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def backend() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(tmp_path: Path, backend: int) -> Path:
    home = seeded_home(tmp_path)
    with store(home) as s:
        s.patch("Service", "default", "shop-stable", {"metadata": {"annotations": {"rollouts.io/port": str(backend)}}})
    return home


def test_forwards_http_to_the_service(home: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rollouts", "port-forward", "service/shop-stable", "0:80"],
                            env=interrupting.env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line)
        assert match, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        port = int(match.group(1))
        for path in ("/health", "/x?y=1"):
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert response.status_code == 200 and response.text == f"hello {path}"
    finally:
        returncode = interrupting.interrupt(proc)
    assert returncode in (0, 130)


def _free_port_in_use() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("args, message", [
    (["service/nope", "8080:80"], 'services "nope" in namespace "default" not found'),
    (["rollout/shop", "8080:80"], "cannot forward to a Rollout"),
    (["service/shop-canary", "8080:80"], "has no local port yet"),
    (["service/shop-stable", "8080:81"], "does not have a service port 81"),
    (["service/shop-stable", "a:b"], "is not LOCAL:REMOTE"),
    (["service/shop-stable", "8080:70000"], "between 1 and 65535"),
], ids=["unknown", "wrong-kind", "no-port", "wrong-remote", "not-numbers", "out-of-range"])
def test_port_forward_errors(home: Path, args: list[str], message: str) -> None:
    result = run(home, "port-forward", *args)
    assert result.exit_code == 1 and message in result.stderr


def test_local_port_in_use(home: Path) -> None:
    sock = _free_port_in_use()
    try:
        result = run(home, "port-forward", "svc/shop-stable", f"{sock.getsockname()[1]}:80")
    finally:
        sock.close()
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.stderr
