"""A real Prometheus server for integration tests: Debian's `prometheus` binary started on 127.0.0.1
with a temporary data folder, scraping targets the test names, stopped at the end."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """One Prometheus process; `address` is its base URL once `start()` returns."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], *, scrape_interval: str = "1s",
                 rule_files: list[Path] | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files or []
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": f"target{i}", "static_configs": [{"targets": [t]}]}
                for i, t in enumerate(self.targets)
            ],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.address}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("prometheus did not become ready")

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(f"{self.address}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict]:
        """Poll until the query returns a non-empty vector (or fail at the deadline)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.25)
        raise TimeoutError(f"no data for {promql!r} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
