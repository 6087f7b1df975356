"""The demo HTTP service: one "version" of an app whose color, error rate and latency come from env.

    PORT        port to listen on (required), on HOST, else POD_IP (the pod's own address, when the
                runtime gives it one), else 127.0.0.1
    COLOR       the color it reports (default "blue")
    VERSION     the version it reports (default: COLOR)
    ERROR_RATE  fraction 0..1 of `/` and `/color` requests answered with HTTP 500 (default 0)
    LATENCY_MS  delay added to `/` and `/color`, with +-5 % jitter (default 0)
    SEED        seeds the error/jitter RNG so a run is reproducible (optional)
    SERVICE_NAME  the `service` label of its request metrics; default: POD_LABEL_APP (the pod's `app`
                label, which the local runtime passes), else "rollouts-demo"

`GET /` answers {"color": .., "version": ..}; `GET /color` answers the color as a JSON string, like
Argo's rollouts-demo image.

`/healthz` never errors and is never slowed, so readiness stays stable while `/` misbehaves.
`GET /metrics` exports `http_requests_total{service, code, method}` and the `http_request_duration_seconds`
histogram (see rollouts.demo.http_metrics) for every request except probes and scrapes, so probe traffic
does not dilute the success rate a gate reads.
SIGTERM stops accepting connections, lets in-flight requests finish and exits 0.

Built on the standard library's threaded HTTP server: it starts in well under half a second.
Run with `python -m rollouts.demo.service`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from rollouts.demo.http_metrics import CONTENT_TYPE, RequestMetrics

DEFAULT_SERVICE_NAME = "rollouts-demo"


class ConfigError(ValueError):
    """An env variable with a value the service cannot use."""


@dataclass(frozen=True)
class DemoConfig:
    port: int
    host: str = "127.0.0.1"
    color: str = "blue"
    version: str = "blue"
    error_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None
    service: str = DEFAULT_SERVICE_NAME

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DemoConfig:
        if not env.get("PORT"):
            raise ConfigError("PORT is required (the port to listen on)")
        port = _int(env, "PORT")
        if not 0 < port < 65536:
            raise ConfigError(f"PORT: {port} is not between 1 and 65535")
        error_rate = _float(env, "ERROR_RATE")
        if not 0.0 <= error_rate <= 1.0:
            raise ConfigError(f"ERROR_RATE: {error_rate} is not between 0 and 1")
        latency = _float(env, "LATENCY_MS")
        if latency < 0:
            raise ConfigError(f"LATENCY_MS: {latency} is negative")
        color = env.get("COLOR") or "blue"
        seed = _int(env, "SEED") if env.get("SEED") else None
        return cls(
            port=port,
            host=env.get("HOST") or env.get("POD_IP") or "127.0.0.1",
            color=color,
            version=env.get("VERSION") or color,
            error_rate=error_rate,
            latency_ms=latency,
            seed=seed,
            service=env.get("SERVICE_NAME") or env.get("POD_LABEL_APP") or DEFAULT_SERVICE_NAME,
        )


def _raw(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw if raw else None


def _int(env: Mapping[str, str], name: str, default: int = 0) -> int:
    raw = _raw(env, name)
    try:
        return default if raw is None else int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from exc


def _float(env: Mapping[str, str], name: str, default: float = 0.0) -> float:
    raw = _raw(env, name)
    try:
        return default if raw is None else float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {raw!r} is not a number") from exc


class _Behaviour:
    """The injected faults; one RNG shared by handler threads, so it is guarded by a lock."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self.metrics = RequestMetrics(config.service)

    def draw(self) -> tuple[bool, float]:
        """(fail this request?, seconds to delay it)."""
        with self._lock:
            fail = self.config.error_rate > 0 and self._rng.random() < self.config.error_rate
            jitter = self._rng.uniform(-0.05, 0.05)
        return fail, self.config.latency_ms * (1.0 + jitter) / 1000.0


def _handler(behaviour: _Behaviour) -> type[BaseHTTPRequestHandler]:
    config = behaviour.config

    class Handler(BaseHTTPRequestHandler):
        server_version = "rollouts-demo"
        # HTTP/1.0: one request per connection, so shutdown never waits on an idle keep-alive socket.
        protocol_version = "HTTP/1.0"
        _status = 0  # the status of the answer being sent, for the request metrics

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok", "text/plain")
                return
            if path == "/metrics":
                self._send(200, behaviour.metrics.render(), CONTENT_TYPE)
                return
            started = time.perf_counter()
            self._status = 0
            try:
                self._answer(path)
            finally:
                # Counted also when the client went away mid-answer: the service did the work.
                behaviour.metrics.observe(self.command, self._status or 500, time.perf_counter() - started)

        def _answer(self, path: str) -> None:
            if path not in ("/", "/color"):
                self._send(404, b'{"error":"not found"}', "application/json")
                return
            fail, delay = behaviour.draw()
            if delay > 0:
                time.sleep(delay)
            body: dict[str, object] = {"color": config.color, "version": config.version}
            if fail:
                body["error"] = "injected failure"
            status = 500 if fail else 200
            if path == "/color" and not fail:
                self._send(status, json.dumps(config.color).encode(), "application/json")
                return
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self._status = status
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Version", config.version)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature fixed by base
            # Access logs at the demo's request rates would swamp the pod log; errors still go to stderr.
            return

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() then waits for in-flight requests
    block_on_close = True
    allow_reuse_address = True


def make_server(config: DemoConfig) -> ThreadingHTTPServer:
    return _Server((config.host, config.port), _handler(_Behaviour(config)))


def serve(config: DemoConfig) -> None:
    """Serve until SIGTERM or SIGINT, then drain and return."""
    server = make_server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this (the main) thread:
        # call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"rollouts-demo {config.version} ({config.color}) listening on {config.host}:{config.port} "
        f"error_rate={config.error_rate} latency_ms={config.latency_ms}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    print("rollouts-demo stopped", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    try:
        config = DemoConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"rollouts-demo: {exc}", file=sys.stderr)
        return 2
    try:
        serve(config)
    except OSError as exc:
        print(f"rollouts-demo: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
