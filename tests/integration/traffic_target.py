"""A scrape target that exports synthetic service traffic in the shape the runbook's PromQL expects:
`http_requests_total{service, code, version}` and `http_request_duration_seconds_bucket{service, version, le}`.

A background thread adds requests at a fixed rate with a given error ratio and latency, so Prometheus
sees real, moving counters."""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tests.integration.prometheus_server import free_port


class TrafficTarget:
    def __init__(self, *, service: str, error_ratio: float, latency_seconds: float, rps: int = 200,
                 version: str = "canary", seed: int = 7) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "Requests", ["service", "code", "version"],
                                registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "Latency", ["service", "version"],
                                 registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.service, self.version = service, version
        self.error_ratio, self.latency_seconds, self.rps = error_ratio, latency_seconds, rps
        self.random = random.Random(seed)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    def _generate(self) -> None:
        # Ten batches a second keep the counters moving smoothly between 1 s scrapes.
        per_tick = max(1, self.rps // 10)
        while not self._stop.wait(0.1):
            for _ in range(per_tick):
                code = "500" if self.random.random() < self.error_ratio else "200"
                self.requests.labels(self.service, code, self.version).inc()
                jitter = self.random.uniform(0.8, 1.2)
                self.latency.labels(self.service, self.version).observe(self.latency_seconds * jitter)

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._generate, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
