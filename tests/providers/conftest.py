"""Fixtures for the provider tests: a small real HTTP server on 127.0.0.1 whose answers each test scripts,
a closed port, metric builders and process-liveness polling."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from rollouts.analysis.providers import MeasureContext
from rollouts.spec.analysis import Metric


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())

    def params(self) -> dict[str, str]:
        """Query-string and form parameters, single-valued."""
        merged = {**self.query, **(self.form() if self.method == "POST" else {})}
        return {key: values[0] for key, values in merged.items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = ""
    content_type: str | None = None
    hold: bool = False  # answer only when the test ends: makes the client time out


Route = Reply | Callable[[Seen], Reply]


@dataclass
class ScriptedServer:
    """Answers `routes[(method, path)]` (or `routes[path]`); 404 otherwise. Records every request."""

    routes: dict[Any, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, seen: Seen) -> Reply:
        route = self.routes.get((seen.method, seen.path), self.routes.get(seen.path))
        if route is None:
            return Reply(404, "no route")
        return route(seen) if callable(route) else route


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()),
                        self.rfile.read(length))
            server.seen.append(seen)
            reply = server.answer(seen)
            if reply.hold:
                server.release.wait(30)
            body = reply.body
            content_type = reply.content_type
            if not isinstance(body, str | bytes):
                body, content_type = json.dumps(body), content_type or "application/json"
            payload = body.encode() if isinstance(body, str) else body
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type or "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def scripted_server(routes: dict[Any, Route] | None = None) -> Iterator[ScriptedServer]:
    """A ScriptedServer listening until the block ends (other test folders use it too)."""
    scripted = ScriptedServer(dict(routes or {}))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(scripted))
    httpd.daemon_threads = True
    scripted.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        scripted.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as scripted:
        yield scripted


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_ctx(**overrides: Any) -> MeasureContext:
    fields: dict[str, Any] = {
        "namespace": "default", "run_name": "guestbook-6c54b-2", "metric_name": "m", "measurement_index": 1,
    }
    fields.update(overrides)
    return MeasureContext(**fields)


def metric(name: str = "m", **provider: Any) -> Metric:
    """A metric from its manifest form, e.g. metric(prometheus={"address": ..., "query": ...})."""
    return Metric.model_validate({"name": name, "provider": provider})


def job_metric(argv: list[str], *, name: str = "check", env: dict[str, str] | None = None,
               **job_spec: Any) -> Metric:
    container: dict[str, Any] = {
        "name": "check", "image": "python:3.11", "command": argv[:1], "args": argv[1:],
    }
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    spec = {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}, **job_spec}
    return metric(name, job={"spec": spec})


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (absent, or a zombie waiting for a parent that is not us)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


async def async_wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


def run(awaitable: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await awaitable

    return asyncio.run(main())
